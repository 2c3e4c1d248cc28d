"""Replaying hour-old events on a real worker leaves first-delivery latency untouched.

Replayed deliveries are timed from their re-publish under ``replayed="true"``; the
``replayed="false"`` series and the status window (first deliveries only) do not move.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from tests.conftest import Worker, wait_for
from tests.integration.test_observability import metrics_port, publisher, samples
from wowevent_kombu import HealthRules
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.observability.status import ClusterReader, SubscriberStatus

pytestmark = pytest.mark.integration

E2E = "wowevent_end_to_end_latency_seconds"


def series(scraped: dict[Any, float], exchange: str, replayed: str) -> dict[str, float]:
    """``le`` -> cumulative count (and ``count``) of subscriber ok's end-to-end histogram."""
    out = {}
    for (name, labels), value in scraped.items():
        found = dict(labels)
        if found.get("exchange") != exchange or found.get("subscriber") != "ok":
            continue
        if found.get("replayed") != replayed:
            continue
        if name == f"{E2E}_bucket":
            out[found["le"]] = value
        elif name == f"{E2E}_count":
            out["count"] = value
    return out


def test_a_replay_of_hour_old_events_leaves_first_delivery_latency_unchanged(
    start_worker: Callable[..., Worker], redis_client: redis.Redis, redis_url: str, exchange: str
) -> None:
    bus = publisher(redis_url, exchange)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    # Logged while nobody is bound yet: in the log, delivered to no one.
    for n in range(10):
        bus.publish("obs.ok", {"n": n}, time=hour_ago + timedelta(seconds=n))
    start_worker("tests.apps.observed", env={"WOWEVENT_METRICS_PORT": "0"})
    url = f"http://127.0.0.1:{metrics_port(redis_client, exchange)}/metrics"
    for n in range(10):
        bus.publish("obs.ok", {"fresh": n})
    reader = ClusterReader(make_client(bus.settings), exchange, HealthRules())

    def ok_window(attempts: int) -> SubscriberStatus | None:
        sub = {s.name: s for s in reader.snapshot(window_seconds=900).subscribers}["ok"]
        return sub if sub.window.attempts >= attempts else None

    wait_for(lambda: series(samples(url), exchange, "false").get("count") == 10, 30, 0.05,
             "the first deliveries")  # fmt: skip
    first = series(samples(url), exchange, "false")
    before = wait_for(lambda: ok_window(10), 30, 0.1, "the window to hold the first deliveries")

    report = bus.replay(["ok"])  # all 20 logged events, 10 of them an hour old
    assert report.delivered == {"ok": 20}
    wait_for(lambda: series(samples(url), exchange, "true").get("count") == 20, 30, 0.05,
             "the replayed deliveries")  # fmt: skip
    after = wait_for(lambda: ok_window(30), 30, 0.1, "the window to count the replays")

    assert series(samples(url), exchange, "false") == first  # not one first-delivery sample moved
    assert after.window.outcomes["succeeded"] == 30
    for which in ("delivery", "end_to_end"):
        assert after.window.latency(which) == before.window.latency(which)
    # Timed from the re-publish: none of the replayed deliveries counts as an hour late.
    replayed = series(samples(url), exchange, "true")
    assert replayed["60.0"] == replayed["count"] == 20
    bus.close()
