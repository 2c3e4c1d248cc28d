"""Metrics, health and status against real prefork and solo workers."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Worker, wait_for
from wowevent_kombu import EventBus, HealthRules
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.core import wire
from wowevent_kombu.observability.status import ClusterReader

pytestmark = pytest.mark.integration

APP = "tests.apps.observed"


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Scrape ``url`` and index every sample by name and sorted labels."""
    with urllib.request.urlopen(url, timeout=5) as reply:
        text = reply.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def deliveries(scraped: dict[Any, float], exchange: str) -> dict[tuple[str, str], float]:
    """(subscriber, outcome) -> count from ``wowevent_deliveries_total``."""
    out = {}
    for (name, labels), value in scraped.items():
        if name == "wowevent_deliveries_total":
            found = dict(labels)
            if found["exchange"] == exchange:
                out[(found["subscriber"], found["outcome"])] = value
    return out


def metrics_port(client: redis.Redis, exchange: str) -> int:
    """The metrics port the (single) worker announced in its heartbeat."""

    def announced() -> int | None:
        for raw in client.hgetall(f"{exchange}:workers").values():
            port = json.loads(raw).get("metrics_port")
            if port:
                return int(port)
        return None

    return int(wait_for(announced, 20, 0.05, "the worker's heartbeat"))


def publisher(redis_url: str, exchange: str) -> EventBus:
    return EventBus(Celery("pub", broker=redis_url, set_as_current=False), exchange=exchange)


def test_counters_match_a_known_workload_on_a_prefork_worker_of_two_children(
    start_worker: Callable[..., Worker],
    redis_client: redis.Redis,
    redis_url: str,
    exchange: str,
    tmp_path: Path,
) -> None:
    multiproc = tmp_path / "prom"
    multiproc.mkdir()
    (multiproc / "counter_999999.db").write_bytes(b"stale file from an earlier run")
    env = {
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
        "WOWEVENT_METRICS_PORT": "0",
        "WOWEVENT_HEALTH_BUCKET_SECONDS": "1",
    }
    start_worker(APP, env=env, pool="prefork", concurrency=2)
    port = metrics_port(redis_client, exchange)
    bus = publisher(redis_url, exchange)
    # Two slow deliveries first: while one child sleeps, the other must take the second.
    bus.publish("obs.slow", {"sleep": 0.5})
    bus.publish("obs.slow", {"sleep": 0.5})
    for _ in range(20):
        bus.publish("obs.ok", {})
    for _ in range(5):
        bus.publish("obs.flaky", {"fail_times": 2})
    for _ in range(3):
        bus.publish("obs.doomed", {"dlq": True})
    for _ in range(2):
        bus.publish("obs.doomed", {})
    # A message whose event is not a valid CloudEvent: rejected, and a consume-stage failure.
    bad = wire.prepare('{"specversion": "1.0", "type": "obs.ok"}', event_type="obs.ok")
    message = wire.task_message(
        bad, task="ok", task_id=str(uuid.uuid4()), queue=f"{exchange}.ok", sender="test"
    )
    redis_client.lpush(f"{exchange}.ok", message)
    expected = {
        ("slow", "succeeded"): 2,
        ("ok", "rejected"): 1,
        ("ok", "succeeded"): 20,
        ("flaky", "retried"): 10,
        ("flaky", "succeeded"): 5,
        ("doomed", "dead_lettered"): 5,  # the bus's dead-letter store takes every final failure
    }
    url = f"http://127.0.0.1:{port}/metrics"

    def settled() -> bool:
        return deliveries(samples(url), exchange) == expected

    try:
        wait_for(settled, 30, 0.2, f"deliveries {expected}")
    except AssertionError:
        raise AssertionError(f"counted {deliveries(samples(url), exchange)}") from None
    scraped = samples(url)
    consume = (("exchange", exchange), ("stage", "consume"))
    assert scraped[("wowevent_validation_failures_total", consume)] == 1
    for sub, count in (("ok", 20), ("flaky", 15), ("doomed", 5)):
        labels = (("exchange", exchange), ("subscriber", sub))
        first = tuple(sorted((*labels, ("replayed", "false"))))
        assert scraped[("wowevent_end_to_end_latency_seconds_count", first)] == count
        assert scraped[("wowevent_delivery_latency_seconds_count", first)] == count
        assert scraped[("wowevent_handler_duration_seconds_count", labels)] == count
    # Both pool children did work, and their counts were added up, not one of them shown.
    assert len(list(multiproc.glob("counter_*.db"))) >= 2
    assert not (multiproc / "counter_999999.db").exists()

    # The rolling window (written by the children to Redis) agrees with the counters.
    rules = HealthRules(bucket_seconds=1, window_seconds=60, min_attempts=1000)
    reader = ClusterReader(make_client(bus.settings), exchange, rules)

    def window_complete() -> Any:
        status = reader.snapshot()
        got = {
            (s.name, outcome): n
            for s in status.subscribers
            for outcome, n in s.window.outcomes.items()
            if n
        }
        return status if got == expected else None

    status = wait_for(window_complete, 10, 0.2, "the window statistics")
    by_name = {s.name: s for s in status.subscribers}
    assert by_name["ok"].window.latency("end_to_end")["p99"] is not None
    assert by_name["ok"].consumers == 1
    assert by_name["doomed"].window.error_rate == 1.0
    bus.close()


def test_health_flips_under_a_failing_handler_and_back(
    start_worker: Callable[..., Worker],
    redis_client: redis.Redis,
    redis_url: str,
    exchange: str,
) -> None:
    env = {"WOWEVENT_HEALTH_BUCKET_SECONDS": "1", "WOWEVENT_HEALTH_HEARTBEAT_SECONDS": "1"}
    worker = start_worker(APP, env=env)
    bus = publisher(redis_url, exchange)
    rules = HealthRules(
        bucket_seconds=1, window_seconds=2, min_attempts=3, heartbeat_seconds=1,
        degraded_error_rate=0.1, unhealthy_error_rate=0.5,
    )  # fmt: skip
    reader = ClusterReader(make_client(bus.settings), exchange, rules)

    def health() -> str:
        return {s.name: s for s in reader.snapshot().subscribers}["toggle"].health

    def publish_and_expect(state: str) -> Callable[[], bool]:
        def check() -> bool:
            for _ in range(3):
                bus.publish("obs.toggle", {})
            return health() == state

        return check

    wait_for(publish_and_expect("healthy"), 15, 0.3, "healthy while succeeding")
    redis_client.set(f"{exchange}:test:failing", 1)
    wait_for(publish_and_expect("unhealthy"), 15, 0.3, "unhealthy while failing")
    redis_client.delete(f"{exchange}:test:failing")
    wait_for(publish_and_expect("healthy"), 15, 0.3, "healthy again after recovery")

    # Without a live consumer the verdict turns too: idle -> degraded, backlog -> unhealthy.
    queue = f"{exchange}.toggle"
    wait_for(lambda: redis_client.llen(queue) == 0, 10, 0.05, "the queue to drain")
    worker.stop()
    status = {s.name: s for s in reader.snapshot().subscribers}["toggle"]
    assert (status.health, status.backlog, status.consumers) == ("degraded", 0, 0)
    bus.publish("obs.toggle", {})
    snapshot = {s.name: s for s in reader.snapshot().subscribers}["toggle"]
    assert snapshot.health == "unhealthy"
    assert snapshot.backlog == 1
    assert any("no live worker" in r for r in snapshot.reasons)
    bus.close()


def test_a_prefork_worker_port_without_multiprocess_mode_is_flagged(
    start_worker: Callable[..., Worker], redis_client: redis.Redis, exchange: str
) -> None:
    env = {"WOWEVENT_METRICS_PORT": "0"}
    worker = start_worker(APP, env=env, pool="prefork", concurrency=2)
    metrics_port(redis_client, exchange)
    assert "set it to an empty directory per worker" in worker.text()
    assert "PROMETHEUS_MULTIPROC_DIR" in worker.text()
