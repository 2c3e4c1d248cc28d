"""Replay, catch-up and idempotency with real ``celery worker`` processes on real Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from tests.conftest import ROOT, Worker, wait_for
from wowevent_kombu import Event, EventBus
from wowevent_kombu.testing.redisserver import RedisServer

pytestmark = pytest.mark.integration

APP = "tests.apps.ledger"


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    app = Celery("publisher", broker=redis_url, set_as_current=False)
    made = EventBus(app, exchange=exchange)
    yield made
    made.close()


def seen(client: redis.Redis, exchange: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(f"{exchange}:seen", 0, -1)]


def wait_seen(client: redis.Redis, exchange: str, count: int) -> list[dict[str, Any]]:
    return wait_for(
        lambda: len(got := seen(client, exchange)) >= count and got,
        timeout=60,
        message=f"{count} executions",
    )


def test_replay_by_window_type_and_correlation_reaches_only_the_chosen_subscriber(
    bus: EventBus,
    redis_client: redis.Redis,
    exchange: str,
    start_worker: Callable[..., Worker],
) -> None:
    types = ["order.created", "order.shipped", "payment.done"]
    events = [
        Event(type=types[i % 3], data={"i": i}, correlation_id=("red", "blue")[i // 500])
        for i in range(1000)
    ]
    for offset in range(0, 1000, 100):  # published before any subscriber is bound
        bus.publish_many(events[offset : offset + 100])
    start_worker(APP)

    window = bus.log.read(limit=1000)
    since, until = window[100].position, window[199].position
    by_window = bus.replay(["ledger"], since=since, until=until)
    assert by_window.delivered == {"ledger": 100}
    got = wait_seen(redis_client, exchange, 100)
    assert [g["id"] for g in got] == [e.id for e in events[100:200]]
    assert {g["subscriber"] for g in got} == {"ledger"}
    assert all(g["replayed"] and g["header"] for g in got)
    redis_client.delete(f"{exchange}:seen")

    by_type = bus.replay(["mailer"], types="order.shipped")
    assert by_type.delivered == {"mailer": 333}
    got = wait_seen(redis_client, exchange, 333)
    assert [g["id"] for g in got] == [e.id for e in events if e.type == "order.shipped"]
    assert {g["subscriber"] for g in got} == {"mailer"}
    redis_client.delete(f"{exchange}:seen")

    by_correlation = bus.replay(["mailer"], correlation_id="blue")
    expected = [e.id for e in events[500:] if e.type.startswith("order.")]
    assert by_correlation.delivered == {"mailer": len(expected)}
    assert by_correlation.skipped == 500 - len(expected)  # payment.* is not mailer's
    got = wait_seen(redis_client, exchange, len(expected))
    assert [g["id"] for g in got] == expected
    assert {g["subscriber"] for g in got} == {"mailer"}
    assert len({g["task_id"] for g in got}) == len(expected)
    # Nothing else arrives: a marker sent last to each subscriber is the next thing each runs.
    marker = bus.publish("order.created", {"marker": True})
    after = wait_seen(redis_client, exchange, len(expected) + 4)
    extra = after[len(expected) :]
    assert sorted(g["subscriber"] for g in extra) == ["late", "ledger", "mailer", "once"]
    assert all(g["id"] == marker.id for g in extra)


def test_speed_paces_like_the_original_and_keeps_order(
    bus: EventBus,
    redis_client: redis.Redis,
    exchange: str,
    start_worker: Callable[..., Worker],
    record_property: Callable[[str, object], None],
) -> None:
    events = []
    for i in range(50):
        events.append(bus.publish("payment.done", {"i": i}))
        time.sleep(0.02)  # the original pacing being replayed, not a wait for a condition
    start_worker(APP)
    span = bus.log.read(limit=50)[-1].logged_at - bus.log.read(limit=1)[0].logged_at
    timings = {}
    for speed in (1.0, 10.0, "instant"):
        redis_client.delete(f"{exchange}:seen")
        report = bus.replay(["ledger"], speed=speed)
        timings[str(speed)] = report.duration
        got = wait_seen(redis_client, exchange, 50)
        assert [g["id"] for g in got] == [e.id for e in events]
    original = span.total_seconds()
    # Kept with the test's report (junit XML, -rA), never printed into the progress line.
    record_property("replay_seconds", {"original": original, **timings})
    # The replayer waits until each event is due, so these lower bounds hold by construction.
    assert timings["1.0"] >= original * 0.95
    assert timings["10.0"] >= original / 10 * 0.95
    assert timings["instant"] < timings["10.0"] < timings["1.0"] < original * 5


def test_catch_up_of_a_subscriber_added_after_the_events(
    bus: EventBus,
    redis_client: redis.Redis,
    exchange: str,
    redis_url: str,
    start_worker: Callable[..., Worker],
) -> None:
    events = [bus.publish("user.signed_up", {"i": i}) for i in range(200)]
    start_worker(APP)  # 'late' (pattern '#') exists only from now on
    assert bus.log.checkpoint("late") is None
    script = str(Path(sys.executable).with_name("wowevent"))  # the installed entry point
    command = [script, "--broker", redis_url,
               "--exchange", exchange, "--json", "replay", "--subscriber", "late",
               "--from-checkpoint"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["delivered"] == {"late": 200}
    got = wait_seen(redis_client, exchange, 200)
    assert [g["id"] for g in got] == [e.id for e in events]
    last = bus.log.position_of(events[-1].id)
    wait_for(lambda: bus.log.checkpoint("late") == last, message="the checkpoint to advance")
    live = bus.publish("user.signed_up", {"i": "live"})
    wait_for(
        lambda: bus.log.checkpoint("late") == bus.log.position_of(live.id),
        message="the live delivery's checkpoint",
    )
    again = bus.replay(["late"], from_checkpoint=True)
    assert again.scanned == 0  # nothing missed any more


def test_idempotent_subscriber_skips_a_replayed_event_it_already_handled(
    bus: EventBus,
    redis_client: redis.Redis,
    exchange: str,
    start_worker: Callable[..., Worker],
) -> None:
    start_worker(APP)
    event = bus.publish("order.created", {"n": 1})
    wait_for(
        lambda: {g["subscriber"] for g in seen(redis_client, exchange)} >= {"once", "mailer"},
        message="the first deliveries",
    )
    bus.replay(["once", "mailer"], types="order.created")
    marker = bus.publish("order.paid", {"marker": True})  # queued after the replayed copies
    wait_for(
        lambda: (
            {(g["subscriber"], g["id"]) for g in seen(redis_client, exchange)}
            >= {("once", marker.id), ("mailer", marker.id)}
        ),
        message="the markers",
    )
    runs = [(g["subscriber"], g["replayed"]) for g in seen(redis_client, exchange)
            if g["id"] == event.id]  # fmt: skip
    assert runs.count(("once", False)) == 1
    assert ("once", True) not in runs  # skipped: already handled
    assert ("mailer", True) in runs  # not idempotent: ran again


def test_log_survives_a_redis_restart_with_aof_and_replays_afterwards(
    tmp_path: Any, start_worker: Callable[..., Worker], exchange: str
) -> None:
    with RedisServer(appendonly=True, appendfsync="always", directory=tmp_path / "r") as server:
        app = Celery("publisher", broker=server.url, set_as_current=False)
        bus = EventBus(app, exchange=exchange)
        events = [bus.publish("order.created", {"i": i}, correlation_id="k") for i in range(20)]
        bus.close()
        server.restart()
        bus = EventBus(app, exchange=exchange)
        assert [e.event for e in bus.log.read(limit=100)] == events
        assert [e.event for e in bus.log.read(correlation_id="k", limit=100)] == events
        found = bus.log.get(events[5].id)
        assert found is not None
        assert found.event == events[5]
        start_worker(APP, env={"WOWEVENT_TEST_REDIS_URL": server.url})
        report = bus.replay(["mailer"])
        assert report.delivered == {"mailer": 20}
        client = redis.Redis.from_url(server.url)
        got = wait_seen(client, exchange, 20)
        assert [g["id"] for g in got] == [e.id for e in events]
        assert all(g["replayed"] for g in got)
        client.close()
        bus.close()
