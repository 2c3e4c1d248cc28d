"""The cluster view read from Redis, the collector and the ``status`` command."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from celery import Celery
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest

from wowevent_kombu import EventBus, HealthRules
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.cli import cli
from wowevent_kombu.core import wire
from wowevent_kombu.core.event import Event
from wowevent_kombu.deadletters.record import Attempt, DeadLetter
from wowevent_kombu.observability.collector import ClusterCollector
from wowevent_kombu.observability.status import ClusterReader, oldest_event_age
from wowevent_kombu.observability.window import WindowRecorder


def make_bus(redis_url: str, exchange: str) -> EventBus:
    bus = EventBus(Celery("st", broker=redis_url, set_as_current=False), exchange=exchange)

    @bus.subscriber("order.*", name="billing")
    def billing(event: Any) -> None:
        return None

    @bus.subscriber("order.#", name="audit")
    def audit(event: Any) -> None:
        return None

    bus.declare()
    return bus


def test_backlog_oldest_age_and_log_length(redis_url: str, exchange: str) -> None:
    bus = make_bus(redis_url, exchange)
    old = datetime.now(UTC) - timedelta(seconds=90)
    bus.publish("order.placed", {"n": 1}, time=old)
    bus.publish("order.placed", {"n": 2})
    bus.publish("order.x.y", {"n": 3})
    reader = ClusterReader(make_client(bus.settings), exchange, HealthRules())
    status = reader.snapshot()
    subs = {s.name: s for s in status.subscribers}
    assert (subs["billing"].backlog, subs["audit"].backlog) == (2, 3)
    age = subs["billing"].oldest_age
    assert age is not None
    assert 90 <= age < 120
    assert subs["billing"].health == "unhealthy"  # events wait and no worker consumes
    assert subs["billing"].dlq_size == 0  # nothing dead-lettered
    assert status.log_length == 3
    doc = json.loads(json.dumps(status.as_dict()))
    assert doc["subscribers"][0]["subscriber"] == "audit"
    bus.close()


def test_dead_letters_are_counted_per_subscriber_from_the_store(
    redis_url: str, exchange: str
) -> None:
    bus = make_bus(redis_url, exchange)
    event = Event(type="order.placed", data={}, source="test")
    for number, subscriber in ((1, "billing"), (2, "billing"), (3, "gone")):
        bus.dead_letters.write(
            DeadLetter(
                id=f"rec-{number}", subscriber=subscriber, event_id=event.id,
                event_type=event.type, event=event.to_cloudevent(), reason="exhausted",
                attempts=(Attempt(1, "ValueError", "no", "", 1_700_000_000.0 + number),),
            )
        )  # fmt: skip
    reader = ClusterReader(make_client(bus.settings), exchange, HealthRules())
    subs = {s.name: s for s in reader.snapshot().subscribers}
    assert (subs["billing"].dlq_size, subs["audit"].dlq_size) == (2, 0)
    registry = CollectorRegistry()
    registry.register(ClusterCollector(reader))
    text = generate_latest(registry).decode()
    assert f'wowevent_dlq_events{{exchange="{exchange}",subscriber="billing"}} 2.0' in text
    assert f'wowevent_dlq_events{{exchange="{exchange}",subscriber="audit"}} 0.0' in text
    assert 'subscriber="gone"' not in text  # not bound: not a subscriber of the status
    assert f'wowevent_bound_subscribers{{exchange="{exchange}"}} 2.0' in text
    runner = CliRunner()
    args = ["--broker", redis_url, "--exchange", exchange]
    doc = json.loads(runner.invoke(cli, [*args, "--json", "status"]).output)
    assert {s["subscriber"]: s["dlq_size"] for s in doc["subscribers"]} == {
        "audit": 0,
        "billing": 2,
    }
    table = runner.invoke(cli, [*args, "status"]).output.splitlines()
    head = table[0]
    billing = next(line for line in table if line.startswith("billing "))
    # Every right-aligned column ends where its title ends.
    for title, value in (("BACKLOG", "0"), ("DLQ", "2")):
        end = head.index(title) + len(title)
        assert billing[end - len(value) : end] == value, (head, billing)
    assert billing.endswith(" 2")
    bus.close()


def test_window_recorder_flushes_what_readers_see(redis_url: str, exchange: str) -> None:
    client = redis.Redis.from_url(redis_url)
    recorder = WindowRecorder(lambda: client, exchange, bucket_seconds=1, flush_interval=60)
    for latency in (0.002, 0.004, 0.2):
        recorder.record("billing", "succeeded", latency, latency * 2)
    recorder.record("billing", "failed", None, None)
    recorder.close()
    bus = make_bus(redis_url, exchange)
    reader = ClusterReader(client, exchange, HealthRules(bucket_seconds=1, window_seconds=5))
    billing = {s.name: s for s in reader.snapshot().subscribers}["billing"]
    assert billing.window.outcomes["succeeded"] == 3
    assert billing.window.outcomes["failed"] == 1
    assert billing.window.error_rate == 0.25
    assert sum(billing.window.delivery) == 3
    p50 = billing.window.latency("end_to_end")["p50"]
    assert p50 is not None
    assert 0.008 / 1.25 <= p50 <= 0.008 * 1.25
    assert len(client.keys(f"{exchange}:window:billing:*")) >= 1
    assert 0 < client.ttl(client.keys(f"{exchange}:window:billing:*")[0]) <= 900
    bus.close()


def test_oldest_event_age_ignores_what_it_cannot_read() -> None:
    assert oldest_event_age(None, time.time()) is None
    assert oldest_event_age(b"not json", time.time()) is None
    assert oldest_event_age(b'{"body": "e30=", "properties": {}}', time.time()) is None


def test_a_replayed_delivery_waits_from_its_re_publish_not_its_event_time() -> None:
    old = Event(type="order.placed", data={}, time=datetime.now(UTC) - timedelta(hours=1))
    prepared = wire.prepare(json.dumps(old.to_cloudevent()), event_type=old.type)
    now = time.time()
    first, replayed = (
        wire.task_message(
            prepared, task="billing", task_id="t", queue="q", sender="s", replay=again,
            resent_at=now - 2 if again else None,
        )
        for again in (False, True)
    )  # fmt: skip
    assert 3599 <= (oldest_event_age(first, now) or 0) <= 3601
    assert oldest_event_age(replayed, now) == 2


def test_status_command_table_and_json(redis_url: str, exchange: str) -> None:
    bus = make_bus(redis_url, exchange)
    bus.publish("order.placed", {})
    runner = CliRunner()
    args = ["--broker", redis_url, "--exchange", exchange]
    table = runner.invoke(cli, [*args, "status"])
    assert table.exit_code == 0, table.output
    assert "SUBSCRIBER" in table.output
    assert "billing" in table.output
    assert "no live worker consumes" in table.output
    as_json = runner.invoke(cli, [*args, "--json", "status", "--window", "30"])
    doc = json.loads(as_json.output)
    assert doc["window_seconds"] == 30
    assert {s["subscriber"]: s["backlog"] for s in doc["subscribers"]} == {"audit": 1, "billing": 1}
    bad = runner.invoke(cli, [*args, "status", "--window", "0"])
    assert bad.exit_code == 2
    down = runner.invoke(
        cli, ["--broker", "redis://127.0.0.1:1/0", "--exchange", exchange, "status"]
    )
    assert down.exit_code == 69
    assert "Redis is unavailable" in down.output
    bus.close()
