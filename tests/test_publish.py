"""Publishing against a real Redis: routing, atomicity, bad input, failures. No worker needed."""

import json

import pytest
import redis
from celery import Celery

from wowevent_kombu import (
    Event,
    EventBus,
    EventEncodingError,
    EventTooLargeError,
    InvalidEventTypeError,
    InvalidPatternError,
    InvalidSubscriberError,
    PublishError,
    UnknownSubscriberError,
    UnroutableEventError,
)
from wowevent_kombu.core import names
from wowevent_kombu.core.wire import decode_task_message


@pytest.fixture
def bus(redis_url, exchange):
    app = Celery("pub", broker=redis_url, set_as_current=False)
    bus = EventBus(app, exchange=exchange)

    @bus.subscriber("order.*", name="billing")
    def bill(event):
        pass

    @bus.subscriber(["order.#", "payment.*"], name="audit")
    def audit(event):
        pass

    @bus.subscriber("agent.#", name="agents")
    def agents(event):
        pass

    bus.declare()
    yield bus
    bus.close()


def queued(client, exchange, subscriber):
    raws = client.lrange(names.queue_name(exchange, subscriber), 0, -1)
    return [decode_task_message(raw) for raw in reversed(raws)]  # oldest first


def test_one_publish_reaches_each_matching_subscriber_once(bus, redis_client, exchange):
    event = bus.publish("order.created", {"order_id": "1"}, source="api", correlation_id="req-7")
    billing = queued(redis_client, exchange, "billing")
    audit = queued(redis_client, exchange, "audit")
    assert len(billing) == 1 and len(audit) == 1
    assert queued(redis_client, exchange, "agents") == []
    assert billing[0]["headers"]["task"] == "billing"
    assert audit[0]["headers"]["task"] == "audit"
    ids = {billing[0]["headers"]["id"], audit[0]["headers"]["id"]}
    assert len(ids) == 2 and billing[0]["headers"]["id"] == names.task_id(event.id, "billing")
    tags = {m["properties"]["delivery_tag"] for m in billing + audit}
    assert len(tags) == 2
    for message in billing + audit:
        assert message["properties"]["delivery_info"]["exchange"] == ""
        _, kwargs, _ = message["decoded_body"]
        assert Event.from_cloudevent(kwargs["event"]) == event
    assert redis_client.xlen(names.log_key(exchange)) == 1


def test_hash_matches_zero_words(bus, redis_client, exchange):
    bus.publish("agent")
    bus.publish("order")
    assert len(queued(redis_client, exchange, "agents")) == 1
    assert len(queued(redis_client, exchange, "audit")) == 1
    assert queued(redis_client, exchange, "billing") == []


def test_publish_many_keeps_order_per_queue(bus, redis_client, exchange):
    events = [Event(type="order.paid", data={"n": i}) for i in range(50)]
    events.insert(10, Event(type="payment.done", data={"n": -1}))
    bus.publish_many(events)
    audit = [
        m["decoded_body"][1]["event"]["data"]["n"] for m in queued(redis_client, exchange, "audit")
    ]
    assert audit == [e.data["n"] for e in events]
    assert len(queued(redis_client, exchange, "billing")) == 50
    assert redis_client.xlen(names.log_key(exchange)) == 51


def test_unroutable_is_logged_and_counted_or_refused(bus, redis_client, exchange):
    bus.publish("nobody.listens")
    assert redis_client.xlen(names.log_key(exchange)) == 1
    assert int(redis_client.hget(names.stats_key(exchange), "unroutable")) == 1
    with pytest.raises(UnroutableEventError, match=r"nobody\.listens") as info:
        bus.publish("nobody.listens", mandatory=True)
    assert info.value.event_type == "nobody.listens"
    assert redis_client.xlen(names.log_key(exchange)) == 1  # nothing written


def test_stale_binding_cache_never_misses_a_binding(bus, redis_url, redis_client, exchange):
    bus.publish("order.created")  # warms this publisher's binding cache
    other = EventBus(Celery("other", broker=redis_url, set_as_current=False), exchange=exchange)

    @other.subscriber("order.created", name="late")
    def late(event):
        pass

    other.declare()  # bound by another process after our cache was filled
    bus.publish("order.created")
    assert len(queued(redis_client, exchange, "late")) == 1
    bus.publish("order.created")  # the refreshed cache now routes it directly
    assert len(queued(redis_client, exchange, "late")) == 2
    other.close()


def test_binding_made_by_kombu_alone_is_seen(bus, redis_client, exchange):
    bus.publish("order.created")
    from wowevent_kombu.core.topology import kombu_regex

    member = names.binding_member("order.*", kombu_regex("order.*"), f"{exchange}.raw")
    redis_client.sadd(names.binding_table_key(exchange), member)  # no version bump
    bus.publish("order.created")
    assert len(redis_client.lrange(f"{exchange}.raw", 0, -1)) == 1


def test_unsubscribe_removes_bindings_cleanly(bus, redis_client, exchange):
    assert bus.unsubscribe("audit") == ["order.#", "payment.*"]
    bus.publish("order.created")
    assert queued(redis_client, exchange, "audit") == []
    assert "audit" not in bus.bindings()
    with pytest.raises(UnknownSubscriberError, match="ghost"):
        bus.unsubscribe("ghost")


def test_oversized_event_is_refused_and_nothing_written(bus, redis_client, exchange):
    with pytest.raises(EventTooLargeError, match="limit is 262144") as info:
        bus.publish("order.created", {"blob": "x" * 300_000})
    assert info.value.size > info.value.limit
    assert redis_client.xlen(names.log_key(exchange)) == 0
    assert queued(redis_client, exchange, "billing") == []


@pytest.mark.parametrize(
    ("data", "error"),
    [({"nan": float("nan")}, EventEncodingError), ({"b": b"x"}, EventEncodingError),
     ({"bad": "\udcff"}, EventEncodingError)],
)  # fmt: skip
def test_non_json_data_is_refused_and_nothing_written(bus, redis_client, exchange, data, error):
    with pytest.raises(error):
        bus.publish("order.created", data)
    assert redis_client.xlen(names.log_key(exchange)) == 0


def test_a_bad_event_in_a_batch_writes_nothing(bus, redis_client, exchange):
    good = Event(type="order.created")
    with pytest.raises(EventEncodingError):
        bus.publish_many([good, Event(type="order.paid", data={"x": float("inf")})])
    assert redis_client.xlen(names.log_key(exchange)) == 0
    assert queued(redis_client, exchange, "billing") == []


def test_bad_type_pattern_and_name(bus):
    with pytest.raises(InvalidEventTypeError):
        bus.publish("order..created")
    with pytest.raises(InvalidPatternError, match="whole word"):
        bus.subscriber("order.x*", name="x")
    with pytest.raises(InvalidSubscriberError, match="already registered"):
        bus.subscriber("a.b", name="billing")
    with pytest.raises(InvalidSubscriberError, match="name"):
        bus.subscriber("a.b", name="bad name")(lambda e: None)
    with pytest.raises(InvalidSubscriberError, match="set by the bus"):
        bus.subscriber("a.b", name="q", queue="other")(lambda e: None)


def test_redis_down_raises_publish_error_quickly(exchange):
    from wowevent_kombu.testing.redisserver import free_port

    app = Celery("down", broker=f"redis://127.0.0.1:{free_port()}/0", set_as_current=False)
    bus = EventBus(app, exchange=exchange, publish_timeout=0.5)
    with pytest.raises(PublishError, match="nothing was written") as info:
        bus.publish("order.created")
    assert not info.value.outcome_unknown
    assert info.value.event_ids and info.value.event_type == "order.created"


def test_password_never_shown(exchange):
    from wowevent_kombu.testing.redisserver import free_port

    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    bus = EventBus(Celery("pw", broker=url, set_as_current=False), exchange=exchange,
                   publish_timeout=0.3)  # fmt: skip
    assert "s3cret" not in repr(bus.settings)
    with pytest.raises(PublishError) as info:
        bus.publish("a.b")
    assert "s3cret" not in str(info.value)


def test_redis_restart_mid_stream(exchange):
    from wowevent_kombu.testing.redisserver import RedisServer

    with RedisServer(appendonly=True, appendfsync="always") as server:
        app = Celery("r", broker=server.url, set_as_current=False)
        bus = EventBus(app, exchange=exchange, publish_timeout=1)

        @bus.subscriber("a.*", name="s")
        def handler(event):
            pass

        bus.declare()
        bus.publish("a.one")
        server.stop()
        with pytest.raises(PublishError):
            bus.publish("a.two")
        server.start()
        bus.publish("a.three")
        client = redis.Redis.from_url(server.url)
        logged = [
            json.loads(f[b"event"])["type"] for _, f in client.xrange(names.log_key(exchange))
        ]
        assert logged == ["a.one", "a.three"]
        assert client.llen(names.queue_name(exchange, "s")) == 2
        client.close()
        bus.close()
