"""``await bus.apublish`` behaves as ``bus.publish``: routing, atomicity, mandatory, errors,
validation and metrics; concurrent publishes share round trips; nothing blocks the loop."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from prometheus_client import CollectorRegistry

from tests.conftest import Broker
from wowevent_kombu import Event, EventBus, instrument
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import (
    EventEncodingError,
    EventTooLargeError,
    EventValidationError,
    InvalidEventTypeError,
    PublishError,
    UnroutableEventError,
)
from wowevent_kombu.schemas.registry import SchemaRegistry
from wowevent_kombu.schemas.schema import EventSchema
from wowevent_kombu.testing import TestBus


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    made = EventBus(Celery("apub", broker=redis_url, set_as_current=False), exchange=exchange)
    made.transport.bind(names.queue_name(exchange, "billing"), ["order.*"])
    made.transport.bind(names.queue_name(exchange, "audit"), ["order.#"])
    yield made
    made.close()


def depth(client: redis.Redis, exchange: str, name: str) -> int:
    return int(client.llen(names.queue_name(exchange, name)))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_apublish_logs_and_routes_like_publish(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    async def main() -> list[Event]:
        first = await bus.apublish("order.created", {"n": 1}, correlation_id="c-1")
        rest = await bus.apublish_many(
            [Event(type="order.paid.late", data={}, source="s"), Event(type="user.x", data={})]
        )
        await bus.aclose()
        return [first, *rest]

    first, paid, user = run(main())
    assert (depth(redis_client, exchange, "billing"), depth(redis_client, exchange, "audit")) == (
        1,
        2,
    )
    assert [e.event.id for e in bus.log.read()] == [first.id, paid.id, user.id]
    assert [e.event.id for e in bus.log.read(correlation_id="c-1")] == [first.id]


def test_apublish_refuses_what_publish_refuses_and_writes_nothing(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    async def refused() -> list[type[BaseException]]:
        errors = []
        for call in (
            bus.apublish("Bad Type", {}),
            bus.apublish("order.created", {"x": float("nan")}),
            bus.apublish("order.created", {"x": "a" * 2_000_000}),
            bus.apublish("nobody.listens", {}, mandatory=True),
            bus.apublish_many(
                [Event(type="order.ok", data={}), Event(type="nobody.x", data={})], mandatory=True
            ),
        ):
            try:
                await call
            except Exception as exc:
                errors.append(type(exc))
        await bus.aclose()
        return errors

    assert run(refused()) == [InvalidEventTypeError, EventEncodingError, EventTooLargeError,
                              UnroutableEventError, UnroutableEventError]  # fmt: skip
    assert redis_client.xlen(names.log_key(exchange)) == 0
    assert depth(redis_client, exchange, "billing") == 0


def test_apublish_validates_schemas_and_counts_metrics(
    bus: EventBus, redis_url: str, exchange: str
) -> None:
    registry = SchemaRegistry.from_url(redis_url, namespace=exchange, refresh_interval=0)
    registry.register(EventSchema("order.created", "1.0.0", {"type": "object",
                                                             "required": ["sku"]}))  # fmt: skip
    bus.schemas = registry
    metrics_registry = CollectorRegistry()
    instrument(bus, metrics_registry)

    async def main() -> None:
        await bus.apublish("order.created", {"sku": "A"})
        with pytest.raises(EventValidationError):
            await bus.apublish("order.created", {})
        await bus.aclose()

    run(main())
    published = metrics_registry.get_sample_value(
        "wowevent_events_published_total", {"exchange": exchange, "type": "order.created"}
    )
    assert published == 1


def test_concurrent_apublishes_all_arrive_once(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    async def main() -> list[Event]:
        async def task(n: int) -> list[Event]:
            return [await bus.apublish("order.created", {"task": n, "i": i}) for i in range(10)]

        batches = await asyncio.gather(*(task(n) for n in range(100)))
        await bus.aclose()
        return [event for batch in batches for event in batch]

    events = run(main())
    assert len({e.id for e in events}) == 1000
    assert depth(redis_client, exchange, "billing") == 1000
    assert redis_client.xlen(names.log_key(exchange)) == 1000


def test_nothing_blocks_the_loop(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="asyncio")

    async def main() -> None:
        asyncio.get_running_loop().slow_callback_duration = 0.02
        tasks = []
        for i in range(300):  # started a few at a time: the test's own steps stay short too
            tasks.append(asyncio.ensure_future(bus.apublish("order.created", {"i": i})))
            if i % 20 == 0:
                await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        for i in range(100):
            await bus.apublish("order.created", {"i": i})
        await bus.aclose()

    asyncio.run(main(), debug=True)
    slow = [r.getMessage() for r in caplog.records if "took" in r.getMessage()]
    assert not slow, slow


def test_a_script_cache_flush_and_a_binding_made_meanwhile_are_handled(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    async def main() -> None:
        await bus.apublish("order.created", {})  # caches the binding table
        redis_client.script_flush()
        bus.transport.bind(names.queue_name(exchange, "late"), ["order.created"])
        await bus.apublish("order.created", {})  # NOSCRIPT, then a stale table
        await bus.aclose()

    run(main())
    assert depth(redis_client, exchange, "billing") == 2
    assert depth(redis_client, exchange, "late") == 1


def test_a_cancelled_publisher_does_not_cut_others_short(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    async def main() -> int:
        tasks = [asyncio.ensure_future(bus.apublish("order.created", {"i": i})) for i in range(200)]
        await asyncio.sleep(0)
        tasks[0].cancel()  # the first caller is the one writing
        results = await asyncio.gather(*tasks, return_exceptions=True)
        await bus.aclose()
        return sum(1 for r in results if isinstance(r, Event))

    delivered_ok = run(main())
    assert delivered_ok >= 199
    # Every publish that returned is in the queue and the log; the cancelled one may be too.
    assert depth(redis_client, exchange, "billing") in (delivered_ok, delivered_ok + 1)
    assert redis_client.xlen(names.log_key(exchange)) == depth(redis_client, exchange, "billing")


def test_redis_down_is_a_publish_error(exchange: str) -> None:
    dead = EventBus(Celery("dead", broker="redis://127.0.0.1:1/0", set_as_current=False),
                    exchange=exchange, publish_timeout=1)  # fmt: skip

    async def main() -> None:
        try:
            with pytest.raises(PublishError, match=r"127\.0\.0\.1:1"):
                await dead.apublish("order.created", {})
        finally:
            await dead.aclose()

    run(main())
    dead.close()


def test_apublish_on_rabbitmq_and_the_test_double(broker: Broker) -> None:
    bus = broker.bus()
    bus.transport.bind(names.queue_name(bus.exchange, "billing"), ["order.*"])

    async def main() -> Event:
        event = await bus.apublish("order.created", {"n": 1})
        await bus.aclose()
        return event

    event = run(main())
    assert [e.event.id for e in bus.log.read()] == [event.id]
    double = TestBus(Celery("unit", set_as_current=False))
    got: list[str] = []

    @double.subscriber("order.*", name="billing")
    def bill(event: Event) -> None:
        got.append(event.id)

    sent = run(double.apublish("order.created", {}))
    assert [e.id for e in double.published] == [sent.id]
    double.drain()
    assert got == [sent.id]
