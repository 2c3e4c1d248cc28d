"""``async def`` subscribers in a real worker, on every pool: retries, dead letters, time limits,
idempotency, and one event loop per pool process or thread reused across deliveries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from tests.conftest import Worker, seen, wait_for
from wowevent_kombu import Event, EventBus

APP = "tests.apps.asyncshop"


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    from celery import Celery

    made = EventBus(Celery("pub", broker=redis_url, set_as_current=False), exchange=exchange)
    yield made
    made.close()


@pytest.mark.parametrize(("pool", "concurrency"), [("solo", 1), ("threads", 2), ("prefork", 2)])
def test_async_handlers_run_on_a_loop_kept_per_process_or_thread(
    start_worker: Callable[..., Worker],
    bus: EventBus,
    redis_client: redis.Redis,
    exchange: str,
    pool: str,
    concurrency: int,
) -> None:
    start_worker(APP, pool=pool, concurrency=concurrency)
    bus.publish_many([Event(type="order.created", data={"n": n}, source="t") for n in range(20)])

    def billed() -> list[dict[str, Any]] | None:
        found = [r for r in seen(redis_client, exchange) if r["subscriber"] == "billing"]
        return found if len(found) >= 20 else None

    runs = wait_for(billed, 30, 0.05, "20 async deliveries")
    assert len({r["id"] for r in runs}) == 20
    # One loop per pool process (prefork, solo) or pool thread (threads), not one per delivery.
    executors = {(r["pid"], r["thread"]) for r in runs}
    loops = {(r["pid"], r["thread"], r["loop"]) for r in runs}
    assert len(loops) == len(executors) <= concurrency


def test_async_retries_dead_letters_rejects_and_time_limits(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    start_worker(APP, pool="prefork", concurrency=2)
    flaky = bus.publish("flaky.go", {"fail_times": 2})
    doomed = bus.publish("doomed.go", {})
    rejected = bus.publish("rejected.go", {})
    slow = bus.publish("slow.go", {})
    wait_for(lambda: bus.dead_letters.count() >= 3 or None, 30, 0.1, "three dead letters")
    runs = seen(redis_client, exchange)
    assert [r["retries"] for r in runs if r["id"] == flaky.id] == [0, 1, 2]
    assert len([r for r in runs if r["id"] == doomed.id]) == 2  # first run and one retry
    records = {r.event_id: r for r in bus.dead_letters.iter()}
    assert records[doomed.id].reason == "exhausted"
    assert "ValueError: always fails" in records[doomed.id].attempts[-1].traceback
    assert records[rejected.id].reason == "rejected"
    assert records[slow.id].attempts[-1].exception_type.endswith("SoftTimeLimitExceeded")
    # The soft limit cancelled the coroutine, and its cleanup ran before the failure hooks.
    assert redis_client.lrange(f"{exchange}:cleanup", 0, -1) == [slow.id.encode()]
    assert flaky.id not in records


def test_async_idempotent_subscriber_runs_an_event_once(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    # One at a time: idempotency guards against repeats, not two runs at the same moment.
    start_worker(APP, pool="solo")
    event = Event(type="idem.created", data={}, source="t")
    bus.publish_event(event)
    bus.publish_event(event)  # the same id again
    bus.publish("idem.created", {})
    wait_for(
        lambda: len([r for r in seen(redis_client, exchange) if r["subscriber"] == "idem"]) >= 2
        or None, 20, 0.05, "two idempotent runs",
    )  # fmt: skip
    wait_for(lambda: sum(bus.queue_depths().values()) == 0 or None, 20, 0.05, "drained queues")
    runs = [r for r in seen(redis_client, exchange) if r["subscriber"] == "idem"]
    assert sorted(r["id"] for r in runs).count(event.id) == 1
