"""``idempotent=True`` and ``checkpoint=True`` in process: TestBus and the Redis-backed stores."""

from __future__ import annotations

import redis
from celery import Celery

from wowevent_kombu import Event, IdempotencyMiddleware
from wowevent_kombu.log.idempotency import ProcessedIds
from wowevent_kombu.testing import TestBus


def make_bus() -> tuple[TestBus, list[tuple[str, str]]]:
    bus = TestBus(Celery("t", set_as_current=False))
    runs: list[tuple[str, str]] = []

    @bus.subscriber("order.*", name="once", idempotent=True)
    def once(event: Event) -> None:
        runs.append(("once", event.id))

    @bus.subscriber("order.*", name="always", checkpoint=True)
    def always(event: Event) -> None:
        runs.append(("always", event.id))

    return bus, runs


def test_an_idempotent_subscriber_runs_an_event_id_once() -> None:
    bus, runs = make_bus()
    event = Event(type="order.created", data={"n": 1})
    bus.publish_event(event)
    bus.publish_event(event)  # the same id again: a redelivery or replay
    other = bus.publish("order.created", {"n": 2})
    deliveries = bus.drain()
    assert all(d.succeeded for d in deliveries)
    assert runs.count(("once", event.id)) == 1
    assert runs.count(("always", event.id)) == 2  # not idempotent, and no Redis log needed
    assert ("once", other.id) in runs


def test_the_middleware_is_installed_once_and_first() -> None:
    bus, _ = make_bus()

    @bus.subscriber("user.*", name="second", idempotent=True)
    def second(event: Event) -> None: ...

    kinds = [type(m) for m in bus.middleware]
    assert kinds.count(IdempotencyMiddleware) == 1
    assert kinds[0] is IdempotencyMiddleware


def test_processed_ids_expire_with_the_retention(redis_client: redis.Redis, exchange: str) -> None:
    store = ProcessedIds(redis_client, exchange, max_age=3600)
    assert not store.seen("billing", "e1")
    store.mark("billing", "e1")
    assert store.seen("billing", "e1")
    assert not store.seen("audit", "e1")
    [key] = redis_client.scan_iter(match=f"{exchange}:processed:billing:*")
    assert 0 < redis_client.pttl(key) <= 2 * 3_600_000
