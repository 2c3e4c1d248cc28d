"""The publish script against a real Redis: script cache loss, foreign keys, large batches."""

import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from wowevent_kombu import Event, EventBus, PublishError, Settings
from wowevent_kombu.brokers.redis.logscript import bucket_width_ms
from wowevent_kombu.brokers.redis.publishscript import PUBLISH
from wowevent_kombu.core import names
from wowevent_kombu.core.wire import decode_task_message
from wowevent_kombu.testing.redisserver import RedisServer


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    bus = EventBus(Celery("script", broker=redis_url, set_as_current=False), exchange=exchange)
    bus.transport.bind(names.queue_name(exchange, "billing"), ["order.*"])
    bus.transport.bind(names.queue_name(exchange, "audit"), ["order.#"])
    yield bus
    bus.close()


def test_a_flushed_script_cache_is_reloaded_and_nothing_is_lost(exchange: str) -> None:
    # A private server: SCRIPT FLUSH on the shared one would disturb other tests.
    with RedisServer() as server:
        client = redis.Redis.from_url(server.url)
        bus = EventBus(Celery("flush", broker=server.url, set_as_current=False), exchange=exchange)
        queue = names.queue_name(exchange, "s")
        bus.transport.bind(queue, ["a.*"])
        try:
            first = bus.publish("a.one")
            assert client.script_exists(PUBLISH.sha) == [True]
            client.script_flush()
            assert client.script_exists(PUBLISH.sha) == [False]
            # EVALSHA answers NOSCRIPT having run nothing; the retry with EVAL runs it once.
            second = bus.publish("a.two")
            assert client.script_exists(PUBLISH.sha) == [True]
            third = bus.publish("a.three")
            logged = [f[b"type"] for _, f in client.xrange(names.log_key(exchange))]
            assert logged == [b"a.one", b"a.two", b"a.three"]
            assert client.llen(queue) == 3
            assert bus.log.get(second.id) is not None
            assert {first.id, second.id, third.id} == {e.event.id for e in bus.log.tail(3)}
        finally:
            bus.close()
            client.close()


FOREIGN = {
    "a subscriber queue": lambda ex: names.queue_name(ex, "audit"),
    "a queue's bell": lambda ex: names.bell_key(names.queue_name(ex, "billing")),
    "the log": names.log_key,
    "the event-id index": lambda ex: names.log_ids_key(ex, _bucket(ex)),
    "a correlation index": lambda ex: names.log_correlation_key(ex, "req-1", _bucket(ex)),
}


def _bucket(exchange: str) -> int:
    return int(time.time() * 1000) // bucket_width_ms(Settings().log_max_age)


@pytest.mark.parametrize("which", sorted(FOREIGN))
def test_a_foreign_key_refuses_the_whole_publish_and_writes_nothing(
    bus: EventBus, redis_client: redis.Redis, exchange: str, which: str
) -> None:
    foreign = FOREIGN[which](exchange)
    redis_client.set(foreign, "not the bus's")
    others = [
        names.log_key(exchange),
        names.queue_name(exchange, "billing"),
        names.queue_name(exchange, "audit"),
        names.bell_key(names.queue_name(exchange, "billing")),
        names.bell_key(names.queue_name(exchange, "audit")),
    ]
    others = [k for k in others if k != foreign]
    with pytest.raises(PublishError, match="WRONGTYPE") as caught:
        bus.publish("order.created", {"n": 1}, correlation_id="req-1")
    error = caught.value
    assert foreign in str(error) and "nothing was written" in str(error)
    assert not error.outcome_unknown and error.event_type == "order.created"
    assert redis_client.exists(*others) == 0
    assert redis_client.get(foreign) == b"not the bus's"
    # The next publish, once the key is the bus's again, goes through whole.
    redis_client.delete(foreign)
    bus.publish("order.created", {"n": 2}, correlation_id="req-1")
    assert redis_client.xlen(names.log_key(exchange)) == 1
    assert redis_client.llen(names.queue_name(exchange, "audit")) == 1


def test_a_broken_unroutable_counter_refuses_the_publish(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    stats = names.stats_key(exchange)
    redis_client.hset(stats, "unroutable", "many")
    with pytest.raises(PublishError, match="not an integer"):
        bus.publish("nobody.listens")
    assert redis_client.exists(names.log_key(exchange)) == 0
    bus.publish("order.created")  # a routed event does not touch the counter
    redis_client.hset(stats, "unroutable", "41")
    bus.publish("nobody.listens")
    assert redis_client.hget(stats, "unroutable") == b"42"
    assert redis_client.xlen(names.log_key(exchange)) == 2


def test_a_batch_larger_than_one_push_keeps_its_order(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    # More messages for one queue than the script pushes in one LPUSH.
    events = [Event(type="order.paid", data={"n": i}) for i in range(2_500)]
    bus.publish_many(events)
    queue = names.queue_name(exchange, "billing")
    assert redis_client.llen(queue) == 2_500
    consumed = [decode_task_message(raw) for raw in reversed(redis_client.lrange(queue, 0, -1))]
    assert [m["decoded_body"][1]["event"]["data"]["n"] for m in consumed] == list(range(2_500))
    assert redis_client.xlen(names.log_key(exchange)) == 2_500
    assert redis_client.llen(names.bell_key(queue)) == 1  # one ring per queue per call
