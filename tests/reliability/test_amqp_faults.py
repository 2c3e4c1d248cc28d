"""Faults on purpose with RabbitMQ as the broker, counting events in against events handled.

RabbitMQ records a delivery as unacknowledged in the same step that hands it to a consumer,
and returns every unacknowledged delivery to its queue when the consumer's connection closes:
a worker killed at any instant loses nothing, without a replay from the log.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis

from tests.conftest import Broker, Worker, wait_for
from tests.reliability import counting
from tests.reliability.conftest import runs

SUBSCRIBERS = ("alpha", "beta")


@pytest.fixture
def rabbit(amqp_url: str, redis_url: str, exchange: str):
    made = Broker("amqp", amqp_url, redis_url, exchange)
    yield made
    made.cleanup()


def missing(client: redis.Redis, exchange: str, ids: list[str]) -> list[tuple[str, str]]:
    return counting.missing(client, exchange, ids, SUBSCRIBERS)


@pytest.mark.parametrize("round_", range(2))
def test_worker_killed_mid_stream_on_rabbitmq_loses_nothing(
    rabbit: Broker,
    start_worker: Callable[..., Worker],
    redis_client: redis.Redis,
    exchange: str,
    round_: int,
) -> None:
    env = {"WOWEVENT_TEST_BROKER_URL": rabbit.url, "WOWEVENT_TEST_WORK": "0.002"}
    worker = start_worker("tests.apps.load", env=env, pool="prefork", concurrency=2)
    bus = rabbit.bus()
    ids = counting.publish_all(bus, 1000, "load.item", batch=100)
    wait_for(lambda: len(runs(redis_client, exchange)) > 300, message="300 handled")
    worker.kill()  # SIGKILL to the main process and its pool children
    handled_before = runs(redis_client, exchange)
    assert len(missing(redis_client, exchange, ids)) > 0  # the kill struck mid-stream

    start_worker("tests.apps.load", env=env, pool="prefork", concurrency=2)
    wait_for(lambda: not missing(redis_client, exchange, ids), timeout=60,
             message="every event handled by both subscribers, no replay")  # fmt: skip
    counts = runs(redis_client, exchange)
    duplicates = {key: n for key, n in counts.items() if n > 1}
    # Only deliveries handled but not yet acknowledged at the kill run twice: at most the
    # prefetch window of each subscriber queue's consumer (2 x 2 children, per queue).
    assert len(duplicates) <= 2 * 4, duplicates
    assert all(handled_before[key] >= 1 for key in duplicates)
    assert wait_for(lambda: set(bus.queue_depths().values()) == {0} or None, message="drained")


def test_hostile_messages_on_rabbitmq_are_dead_lettered_and_the_worker_keeps_going(
    rabbit: Broker,
    start_worker: Callable[..., Worker],
    redis_client: redis.Redis,
    exchange: str,
) -> None:
    from kombu import Connection, Exchange

    from wowevent_kombu.core import names

    worker = start_worker(env=rabbit.worker_env)  # tests.apps.shop: billing and audit on order.*
    bus = rabbit.bus()
    dispatch = names.dispatch_task_name(exchange)
    hostile = [
        (b"not json at all", "application/json", {}),  # no task name
        (b"\x80\x04K\x01.", "application/x-python-serialize", {"task": dispatch}),  # pickle
        (b"[[], {}, {}]", "application/json", {"task": "evil.task", "id": "x"}),  # unknown
        (b'{"x": 1}', "application/json", {"task": dispatch, "id": "y",
                                           "wowevent_event_id": "e-1"}),  # wrong shape
    ]  # fmt: skip
    # Confirmed, as the bus publishes: RabbitMQ may drop unconfirmed messages whose channel
    # closes before a quorum queue has taken them.
    with Connection(rabbit.url, transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer()
        for body, content_type, headers in hostile:
            producer.publish(
                body, exchange=Exchange(exchange, type="topic", durable=True),
                routing_key="order.created", content_type=content_type,
                content_encoding="binary", headers=headers, declare=(),
            )  # fmt: skip
    good = bus.publish("order.created", {"ok": True})
    wait_for(lambda: {e["subscriber"] for e in seen_by(redis_client, exchange, good.id)}
             == {"billing", "audit"}, message="the good event after the hostile ones")  # fmt: skip
    records = wait_for(lambda: len(got := bus.dead_letters.list().records) >= 8 and got,
                       message="8 malformed records")  # fmt: skip
    assert {r.reason for r in records} == {"malformed"}
    assert sorted(r.subscriber for r in records) == ["audit"] * 4 + ["billing"] * 4
    assert worker.proc.poll() is None
    # Dropped after recording, never retried (a quorum queue's count follows its acks shortly).
    wait_for(lambda: set(bus.queue_depths().values()) == {0}, message="the queues empty")


def seen_by(client: redis.Redis, exchange: str, event_id: str) -> list[dict[str, object]]:
    import json

    entries = [json.loads(raw) for raw in client.lrange(f"{exchange}:seen", 0, -1)]
    return [e for e in entries if e["id"] == event_id]
