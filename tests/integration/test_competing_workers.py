"""Several ``celery worker`` processes consuming the same subscriber queues."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from celery import Celery

from tests.conftest import Worker, wait_for
from wowevent_kombu import Event, EventBus

APP = "tests.apps.scale"
EVENTS = 10_000
FLAKY = 20
DOOMED = 5


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    bus = EventBus(Celery("pub", broker=redis_url, set_as_current=False), exchange=exchange)
    yield bus
    bus.close()


def runs(client: redis.Redis, exchange: str) -> list[tuple[str, str, int, int]]:
    """``(subscriber, event id, pid, retries)`` for every execution so far."""
    out = []
    for raw in client.lrange(f"{exchange}:runs", 0, -1):
        subscriber, event_id, pid, retries = raw.decode().split()
        out.append((subscriber, event_id, int(pid), int(retries)))
    return out


def test_three_workers_handle_each_event_once_per_subscriber(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    workers = [start_worker(APP) for _ in range(3)]
    plain = [Event(type="scale.plain", data={"i": i}) for i in range(EVENTS)]
    flaky = [Event(type="scale.flaky", data={}) for _ in range(FLAKY)]
    doomed = [Event(type="scale.doomed", data={}) for _ in range(DOOMED)]
    everything = plain + flaky + doomed
    for start in range(0, len(everything), 500):
        bus.publish_many(everything[start : start + 500])

    # alpha and beta: every event; flaky: 2 runs each; doomed: 2 runs each (max_retries=1).
    expected = 2 * len(everything) + 2 * FLAKY + 2 * DOOMED
    wait_for(
        lambda: redis_client.llen(f"{exchange}:runs") >= expected,
        timeout=120,
        interval=0.2,
        message=f"{expected} executions",
    )
    wait_for(lambda: bus.dead_letters.count() >= DOOMED, message="the dead letters")
    done = runs(redis_client, exchange)
    assert len(done) == expected

    per_subscriber = Counter((s, e) for s, e, _, _ in done)
    ids = {e.id for e in everything}
    for subscriber in ("alpha", "beta"):
        handled = {e for (s, e), n in per_subscriber.items() if s == subscriber}
        assert handled == ids, f"{subscriber} missed {len(ids - handled)} events"
        assert all(n == 1 for (s, _), n in per_subscriber.items() if s == subscriber)
    for subscriber, events in (("flaky", flaky), ("doomed", doomed)):
        attempts = sorted(r for s, e, _, r in done if s == subscriber)
        assert attempts == sorted([0, 1] * len(events)), subscriber
        assert {e for s, e, _, _ in done if s == subscriber} == {e.id for e in events}

    # The work really was shared: every worker process handled deliveries.
    pids = Counter(pid for _, _, pid, _ in done)
    assert set(pids) == {w.proc.pid for w in workers}, pids

    records = bus.dead_letters.list(limit=100).records
    assert sorted(r.event_id for r in records) == sorted(e.id for e in doomed)
    assert {r.subscriber for r in records} == {"doomed"}
    assert all(len(r.attempts) == 2 for r in records)
