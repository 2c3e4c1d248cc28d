"""Bells and the atomic pop, on a real Redis through the workers' own Kombu transport."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from kombu import Connection, Consumer, Queue
from kombu.message import Message

from tests.conftest import wait_for
from wowevent_kombu import Event, EventBus
from wowevent_kombu.brokers.redis import bell
from wowevent_kombu.brokers.redis.channel import BELL_QUEUES_OPTION, GuardedChannel
from wowevent_kombu.brokers.redis.entries import QUARANTINE_CONTENT_TYPE
from wowevent_kombu.core import names
from wowevent_kombu.worker.steps import GUARDED_TRANSPORT, enable_bells


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    made = EventBus(Celery("pub", broker=redis_url, set_as_current=False), exchange=exchange)

    @made.subscriber("order.*", name="billing")
    def billing(event: Event) -> None: ...

    made.declare()
    yield made
    made.close()


@pytest.fixture
def queue(exchange: str) -> str:
    return names.queue_name(exchange, "billing")


@pytest.fixture
def channel(redis_url: str, queue: str) -> Iterator[GuardedChannel]:
    options = {BELL_QUEUES_OPTION: [queue], "visibility_timeout": 1}
    with Connection(redis_url, transport=GUARDED_TRANSPORT, transport_options=options) as conn:
        yield conn.default_channel


def bell_tokens(client: redis.Redis, queue: str) -> int:
    return int(client.llen(names.bell_key(queue)))


def test_bell_keys_are_neither_queues_nor_priority_lists() -> None:
    queue = "wowevent.billing"
    key = names.bell_key(queue)
    assert key != queue
    assert key.rsplit(names.KOMBU_BINDING_SEP, 1)[0] == queue
    assert not key.rsplit(names.KOMBU_BINDING_SEP, 1)[1].isdigit()
    assert names.bell_key(f"{queue}.x") != key


def test_publishing_rings_the_bell_up_to_its_limit(
    bus: EventBus, redis_client: redis.Redis, queue: str
) -> None:
    bus.publish("order.created", {"n": 0})
    assert bell_tokens(redis_client, queue) == 1
    for i in range(bell.MOST_TOKENS * 2):
        bus.publish("order.created", {"n": i})
    assert bell_tokens(redis_client, queue) == bell.MOST_TOKENS
    bus.transport.delete_queue(queue)
    assert not redis_client.exists(queue, names.bell_key(queue))


def test_a_pop_records_the_delivery_as_kombu_does_and_restore_rings(
    bus: EventBus, redis_client: redis.Redis, queue: str, channel: GuardedChannel
) -> None:
    bus.publish("order.created", {"n": 1})
    [raw] = redis_client.lrange(queue, 0, -1)
    message = channel.basic_get(queue)
    tag = message.delivery_tag
    # What Kombu's QoS.append writes: [payload, exchange, routing_key] under the tag.
    assert json.loads(redis_client.hget("unacked", tag)) == [json.loads(raw), "", queue]
    assert redis_client.zscore("unacked_index", tag) == pytest.approx(time.time(), abs=5)
    assert not redis_client.exists(queue, names.bell_key(queue))  # empty: no bell left
    assert channel.qos.get(tag) is message  # the in-memory bookkeeping still happens

    channel.qos.restore_by_tag(tag)  # what the visibility timeout does
    assert not redis_client.hexists("unacked", tag)
    assert redis_client.llen(queue) == 1
    assert bell_tokens(redis_client, queue) == 1
    again = channel.basic_get(queue)
    assert again.delivery_tag == tag and again.delivery_info["redelivered"]
    again.ack()
    assert not redis_client.hexists("unacked", tag)
    assert not redis_client.zscore("unacked_index", tag)


def test_a_pop_without_acks_records_nothing(
    bus: EventBus, redis_client: redis.Redis, queue: str, channel: GuardedChannel
) -> None:
    bus.publish("order.created", {"n": 1})
    message = channel.basic_get(queue, no_ack=True)
    assert message is not None
    assert not redis_client.hexists("unacked", message.delivery_tag)


def test_the_pop_leaves_tokens_for_what_remains(
    bus: EventBus, redis_client: redis.Redis, queue: str, channel: GuardedChannel
) -> None:
    bus.publish_many([Event(type="order.created", data={"n": i}) for i in range(5)])
    assert bell_tokens(redis_client, queue) == 1  # one transaction, one ring
    channel.basic_get(queue).ack()
    assert bell_tokens(redis_client, queue) == 4  # enough to wake a worker per message left


def test_malformed_entries_are_quarantined_and_never_recorded(
    redis_client: redis.Redis, queue: str, channel: GuardedChannel
) -> None:
    envelope = {"body": "%%", "properties": {"delivery_tag": "t-bad", "body_encoding": "base64",
                "delivery_info": {"exchange": "", "routing_key": queue}}}  # fmt: skip
    # cjson accepts it (so the script records it); the channel refuses it and drops the record.
    redis_client.lpush(queue, json.dumps(envelope), b"\xff\xfe not utf-8", b"not json")
    for _ in range(3):
        message = channel.basic_get(queue)
        assert message.content_type == QUARANTINE_CONTENT_TYPE
        message.ack()
    assert not redis_client.hexists("unacked", "t-bad")
    assert not redis_client.zscore("unacked_index", "t-bad")


def test_a_push_that_rings_no_bell_is_still_consumed(
    bus: EventBus, redis_client: redis.Redis, redis_url: str, queue: str
) -> None:
    app = Celery("w", broker=redis_url, set_as_current=False)
    enable_bells(app, [queue])
    received: list[str] = []
    options = {**app.conf.broker_transport_options, "visibility_timeout": 60}
    with (
        Connection(redis_url, transport=GUARDED_TRANSPORT, transport_options=options) as conn,
        Consumer(conn, queues=[Queue(queue, no_declare=True)], accept=["json"],
                 callbacks=[lambda body, m: (received.append(m.delivery_tag), m.ack())]),
    ):  # fmt: skip
        bus.publish("order.created", {"n": 1})
        raw = redis_client.rpop(queue)
        redis_client.delete(names.bell_key(queue))
        redis_client.lpush(queue, raw)  # as a client that knows nothing of bells would

        def drained() -> bool:
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=0.2)
            return bool(received)

        # Found by the sweep that runs each time the wait times out (brpop_timeout, 1 s).
        wait_for(drained, timeout=10, interval=0, message="the un-rung delivery")
    assert redis_client.llen(queue) == 0
    assert not redis_client.exists(names.bell_key(queue))


def consumer_connection(redis_url: str, queues: list[str]) -> Connection:
    options = {BELL_QUEUES_OPTION: queues, "visibility_timeout": 60}
    return Connection(redis_url, transport=GUARDED_TRANSPORT, transport_options=options)


def test_one_wait_pops_several_deliveries_up_to_the_prefetch_limit(
    bus: EventBus, redis_client: redis.Redis, redis_url: str, queue: str
) -> None:
    bus.publish_many([Event(type="order.created", data={"n": i}) for i in range(5)])
    received: list[int] = []
    with (
        consumer_connection(redis_url, [queue]) as conn,
        Consumer(conn, queues=[Queue(queue, no_declare=True)], accept=["json"], prefetch_count=3,
                 callbacks=[lambda body, m: received.append(m.delivery_tag)]),
    ):  # fmt: skip
        conn.drain_events(timeout=5)  # one wait
        assert len(received) == 3  # ...and one pop: as many as the prefetch limit allows
        assert all(redis_client.hexists("unacked", tag) for tag in received)
        assert redis_client.llen(queue) == 2
        assert bell_tokens(redis_client, queue) == 2


def test_one_pop_serves_every_waiting_queue(
    redis_client: redis.Redis, redis_url: str, exchange: str
) -> None:
    made = EventBus(Celery("pub", broker=redis_url, set_as_current=False), exchange=exchange)
    for name in ("billing", "shipping"):
        made.subscriber("order.*", name=name)(lambda event: None)
    made.declare()
    queues = [names.queue_name(exchange, name) for name in ("billing", "shipping")]
    received: list[str] = []
    tags: list[str] = []

    def handle(body: object, message: Message) -> None:
        received.append(message.delivery_info["routing_key"])
        tags.append(message.delivery_tag)
        assert redis_client.hexists("unacked", message.delivery_tag)
        message.ack()  # during the delivery, as a solo worker acks

    try:
        made.publish("order.created", {"n": 1})  # one delivery in each queue
        with (
            consumer_connection(redis_url, queues) as conn,
            Consumer(conn, queues=[Queue(q, no_declare=True) for q in queues], accept=["json"],
                     callbacks=[handle]),
        ):  # fmt: skip
            conn.drain_events(timeout=5)
            assert sorted(received) == queues
            assert not any(redis_client.hexists("unacked", tag) for tag in tags)
            assert not any(redis_client.zscore("unacked_index", tag) for tag in tags)
        assert not redis_client.exists(*queues, *map(names.bell_key, queues))
    finally:
        made.close()


def test_a_failing_delivery_puts_the_rest_of_its_pop_back_next_in_line(
    bus: EventBus, redis_client: redis.Redis, redis_url: str, queue: str
) -> None:
    bus.publish_many([Event(type="order.created", data={"n": i}) for i in range(3)])
    oldest_first = list(reversed(redis_client.lrange(queue, 0, -1)))
    tags = [json.loads(raw)["properties"]["delivery_tag"] for raw in oldest_first]

    def fail(body: object, message: object) -> None:
        raise RuntimeError("the consumer failed")

    with (
        consumer_connection(redis_url, [queue]) as conn,
        Consumer(conn, queues=[Queue(queue, no_declare=True)], accept=["json"], prefetch_count=3,
                 callbacks=[fail]),
    ):  # fmt: skip
        with pytest.raises(RuntimeError, match="the consumer failed"):
            conn.drain_events(timeout=5)
        # The first was delivered (and stays recorded until the channel gives it back); the two
        # popped with it are queued again, unrecorded, the older one next.
        assert redis_client.hexists("unacked", tags[0])
        assert not any(redis_client.hexists("unacked", tag) for tag in tags[1:])
        queued = reversed(redis_client.lrange(queue, 0, -1))
        left = [json.loads(raw)["properties"] for raw in queued]
        assert [properties["delivery_tag"] for properties in left] == tags[1:]
        # Popped with the first and put back, not merely left where they were.
        assert all(properties["delivery_info"]["redelivered"] for properties in left)
        assert bell_tokens(redis_client, queue) >= 1
