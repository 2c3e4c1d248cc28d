"""Contract of the private Celery and Kombu members the bus reads, writes or overrides.

One test per member (or per tight group): each fails with a message naming the member and the
installed Celery, Kombu and redis-py versions when a release changes its presence, its
signature or the behaviour the bus depends on, so an upgrade fails here rather than as a worker
that silently stops consuming or loses a delivery. ``wowevent_kombu.brokers.compat`` says which
members each supported release has; these tests check it says the truth. The pool guard's
members are covered in ``tests/test_poolguard.py``.
"""

from __future__ import annotations

import inspect
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery, Task
from celery.app.amqp import Queues
from celery.worker.request import Request
from kombu import Connection, Consumer, Exchange, Queue
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from wowevent_kombu.brokers import compat
from wowevent_kombu.brokers.redis import transport as redistransport
from wowevent_kombu.brokers.redis.channel import GuardedChannel
from wowevent_kombu.brokers.redis.qos import AtomicQoS

VERSIONS = compat.installed()


def params(function: Any) -> list[str]:
    return list(inspect.signature(function).parameters)


def has(owner: Any, member: str) -> bool:
    return any(member in vars(klass) for klass in inspect.getmro(owner))


def check_signature(owner: Any, member: str, expected: list[str]) -> None:
    assert has(owner, member), f"{VERSIONS}: {owner.__qualname__}.{member} is gone"
    found = params(getattr(owner, member))
    assert found[: len(expected)] == expected, (
        f"{VERSIONS}: {owner.__qualname__}.{member}{tuple(found)} changed shape; the bus "
        f"relies on {tuple(expected)}"
    )


# -- Kombu's Redis channel: the methods GuardedChannel overrides --------------------------------


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("_brpop_start", ["self", "timeout"]),
        ("_brpop_read", ["self", "options"]),
        ("_get", ["self", "queue"]),
        ("_put", ["self", "queue", "message", "kwargs"]),
        ("_do_restore_message", ["self", "payload", "exchange", "routing_key", "pipe", "leftmost"]),
        ("basic_consume", ["self", "queue"]),
        ("basic_get", ["self", "queue", "no_ack"]),
        ("conn_or_acquire", ["self", "client"]),
    ],
)
def test_the_overridden_channel_methods_keep_their_shape(member, expected):
    check_signature(kombu_redis.Channel, member, expected)


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("append", ["self", "message", "delivery_tag"]),
        ("ack", ["self", "delivery_tag"]),
        ("reject", ["self", "delivery_tag", "requeue"]),
        ("restore_visible", ["self", "start", "num", "interval"]),
        ("restore_by_tag", ["self", "tag", "client", "leftmost"]),
        ("can_consume_max_estimate", ["self"]),
    ],
)
def test_the_overridden_and_called_qos_methods_keep_their_shape(member, expected):
    check_signature(kombu_redis.QoS, member, expected)


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("_q_for_pri", ["self", "queue", "pri"]),
        ("_lookup", ["self", "exchange", "routing_key"]),
        ("_get_message_priority", ["self", "message", "reverse"]),
        ("_create_client", ["self"]),
    ],
)
def test_the_channel_helpers_the_bus_calls_keep_their_shape(member, expected):
    check_signature(kombu_redis.Channel, member, expected)


def test_every_guarded_override_still_overrides_a_kombu_method():
    # A renamed Kombu method would leave our override as dead code, and the stock one running.
    for cls, base in ((GuardedChannel, kombu_redis.Channel), (AtomicQoS, kombu_redis.QoS)):
        for name, value in vars(cls).items():
            if name.startswith("__") or not callable(value):
                continue
            if name in OWN_METHODS:
                continue
            assert has(base, name), (
                f"{VERSIONS}: {cls.__name__}.{name} overrides {base.__module__}."
                f"{base.__qualname__}.{name}, which this Kombu no longer has"
            )


OWN_METHODS = {
    # GuardedChannel's own helpers (no Kombu method of these names is overridden).
    "compression_of", "recorded_by_pop", "_take", "_room", "_pop", "_give_back", "forget",
    "_ring_strays", "_lists", "_call", "_run", "_send", "_checked", "_touch", "QoS",
}  # fmt: skip


def test_the_event_loop_reads_brpop_through_the_handlers_table():
    source = inspect.getsource(kombu_redis.Channel.__init__)
    assert "'BRPOP': self._brpop_read" in source, (
        f"{VERSIONS}: kombu.transport.redis.Channel.__init__ no longer maps handlers['BRPOP'] "
        "to self._brpop_read; GuardedChannel._brpop_read would not be called"
    )
    poller = inspect.getsource(kombu_redis.MultiChannelPoller._register_BRPOP)
    assert "channel._brpop_start()" in poller and "channel._in_poll" in poller, (
        f"{VERSIONS}: MultiChannelPoller._register_BRPOP no longer starts a wait with "
        "channel._brpop_start() when channel._in_poll is unset"
    )


def test_the_channel_state_the_wait_uses_is_where_the_bus_looks():
    for member in ("_queue_cycle", "_in_poll", "priority_steps", "sep", "ack_emulation",
                   "unacked_key", "unacked_index_key", "global_keyprefix",
                   "from_transport_options"):  # fmt: skip
        assert has(kombu_redis.Channel, member) or member in ("_queue_cycle",), (
            f"{VERSIONS}: kombu.transport.redis.Channel.{member} is gone"
        )
    init = inspect.getsource(kombu_redis.Channel.__init__)
    assert "self._queue_cycle = cycle_by_name(" in init, (
        f"{VERSIONS}: Channel._queue_cycle is no longer a queue cycle (consume(n), rotate(q))"
    )
    cycle = kombu_redis.cycle_by_name("round_robin")()
    for method in ("consume", "rotate", "update"):
        assert callable(getattr(cycle, method, None)), (
            f"{VERSIONS}: Channel._queue_cycle has no {method}()"
        )
    assert callable(getattr(virtual.Transport, "_deliver", None)), (
        f"{VERSIONS}: kombu.transport.virtual.Transport._deliver (connection._deliver) is gone"
    )
    check_signature(virtual.Transport, "_deliver", ["self", "message", "queue"])


def test_compat_says_which_kombu_members_exist():
    facts = [
        # The channel copies it from its transport in __init__.
        ("brpop_timeout", compat.KOMBU_BRPOP_TIMEOUT, kombu_redis.Transport),
        ("_maybe_update_queues_expire", compat.KOMBU_QUEUE_EXPIRES, kombu_redis.Channel),
        ("unacked_restore_throttle", compat.KOMBU_RESTORE_OPTIONS, kombu_redis.Channel),
        ("unacked_restore_interval", compat.KOMBU_RESTORE_OPTIONS, kombu_redis.Channel),
    ]
    for member, expected, owner in facts:
        assert has(owner, member) == expected, (
            f"{VERSIONS}: compat expects {owner.__qualname__}.{member} "
            f"{'present' if expected else 'absent'}, but it is "
            f"{'present' if has(owner, member) else 'absent'}"
        )
    if compat.KOMBU_RESTORE_OPTIONS:
        options = kombu_redis.Channel.from_transport_options
        assert "unacked_restore_throttle" in options, (
            f"{VERSIONS}: unacked_restore_throttle is no longer a Redis transport option"
        )
        source = inspect.getsource(kombu_redis.Transport.register_with_event_loop)
        assert "unacked_restore_interval" in source, (
            f"{VERSIONS}: Transport.register_with_event_loop no longer reads "
            "unacked_restore_interval"
        )
    else:
        source = inspect.getsource(kombu_redis.Transport.register_with_event_loop)
        assert "loop.call_repeatedly(10, cycle.maybe_restore_messages)" in source, (
            f"{VERSIONS}: Transport.register_with_event_loop no longer sweeps every 10 s "
            "(compat.OLD_KOMBU_RESTORE_INTERVAL)"
        )


# -- Kombu's restore and ack semantics, against a real Redis ---------------------------------


@pytest.fixture
def channel(redis_url: str, exchange: str) -> Iterator[Any]:
    conn = Connection(redis_url, transport=redistransport.Transport)
    chan = conn.channel()
    yield chan
    conn.release()


def test_restore_by_tag_moves_the_unacked_record_back_through_do_restore_message(
    channel, redis_client, exchange
):
    queue = f"{exchange}.q"
    Queue(queue, Exchange("", type="direct"), routing_key=queue)(channel).declare()
    tag = uuid.uuid4().hex
    payload = {"body": "e30=", "headers": {}, "content-type": "application/json",
               "content-encoding": "utf-8",
               "properties": {"delivery_tag": tag, "body_encoding": "base64",
                              "delivery_info": {"exchange": "", "routing_key": queue}}}  # fmt: skip
    # The record as Kombu's QoS.append (and the bus's pop script) writes it.
    redis_client.hset(channel.unacked_key, tag, json.dumps([payload, "", queue]))
    redis_client.zadd(channel.unacked_index_key, {tag: time.time()})
    try:
        channel.qos.restore_by_tag(tag, leftmost=True)
        assert not redis_client.hexists(channel.unacked_key, tag), (
            f"{VERSIONS}: QoS.restore_by_tag left the unacked record of a restored message"
        )
        assert redis_client.zscore(channel.unacked_index_key, tag) is None, (
            f"{VERSIONS}: QoS.restore_by_tag left the unacked_index entry"
        )
        restored = redis_client.lrange(queue, 0, -1)
        assert len(restored) == 1, (
            f"{VERSIONS}: QoS.restore_by_tag did not push the message back through "
            "Channel._do_restore_message (anonymous exchange -> its queue)"
        )
        back = json.loads(restored[0])
        assert back["properties"]["delivery_info"].get("redelivered") is True, (
            f"{VERSIONS}: the restored message is not marked redelivered"
        )
    finally:
        redis_client.delete(queue, channel.unacked_key, channel.unacked_index_key)


def test_ack_and_reject_remove_the_unacked_record_the_stock_qos_wrote(
    channel, redis_client, exchange
):
    queue = f"{exchange}.q"
    Queue(queue, Exchange("", type="direct"), routing_key=queue)(channel).declare()
    producer = channel.connection.client.Producer(channel)
    try:
        for requeue in (None, False, True):
            producer.publish({"n": 1}, routing_key=queue, exchange="", serializer="json")
            message = channel.basic_get(queue)  # stock QoS.append: not a bell queue
            tag = message.delivery_tag
            assert redis_client.hexists(channel.unacked_key, tag), (
                f"{VERSIONS}: QoS.append no longer records a delivery in the unacked hash"
            )
            stored = json.loads(redis_client.hget(channel.unacked_key, tag))
            assert stored[1:] == ["", queue], (
                f"{VERSIONS}: the unacked record is no longer [message, exchange, routing_key]; "
                "the bus's pop script writes that format (wowevent_kombu.brokers.redis.bell.POP)"
            )
            if requeue is None:
                message.ack()
            else:
                message.reject(requeue=requeue)
            assert not redis_client.hexists(channel.unacked_key, tag), (
                f"{VERSIONS}: {'ack' if requeue is None else 'reject'} left the unacked record"
            )
            assert redis_client.llen(queue) == (1 if requeue else 0), (
                f"{VERSIONS}: reject(requeue={requeue}) did not "
                f"{'put the message back' if requeue else 'drop it'}"
            )
            redis_client.delete(queue)
    finally:
        redis_client.delete(queue, channel.unacked_key, channel.unacked_index_key)


# -- Kombu's consumer ---------------------------------------------------------------------------


def test_a_consumer_keeps_queue_name_to_consumer_tag_in_active_tags(channel, exchange):
    queue = Queue(f"{exchange}.tags", Exchange("", type="direct"), routing_key=f"{exchange}.tags")
    consumer = Consumer(channel, [queue], callbacks=[lambda body, message: None])
    consumer.consume()
    try:
        tags = getattr(consumer, "_active_tags", None)
        assert isinstance(tags, dict) and set(tags) == {queue.name}, (
            f"{VERSIONS}: kombu.Consumer._active_tags is no longer {{queue name: consumer tag}}; "
            "wowevent_kombu.brokers.amqp.dispatch finds a RabbitMQ delivery's queue by it"
        )
    finally:
        consumer.cancel()
        channel.client.delete(queue.name)


# -- Celery's queues: what compat says (their shape: tests/test_celery_seam.py) ---------------


def test_compat_says_where_a_worker_without_q_finds_its_queues():
    queues = Queues([Queue("a")])
    assert hasattr(queues, "_default_consume_from") == compat.CELERY_DEFAULT_CONSUME_FROM, (
        f"{VERSIONS}: compat.CELERY_DEFAULT_CONSUME_FROM={compat.CELERY_DEFAULT_CONSUME_FROM} "
        "but celery.app.amqp.Queues._default_consume_from is "
        f"{'present' if hasattr(queues, '_default_consume_from') else 'absent'}"
    )
    dict.__setitem__(queues, "b", Queue("b"))
    if compat.CELERY_DEFAULT_CONSUME_FROM:
        queues._default_consume_from["b"] = queues["b"]
    assert set(queues.consume_from) == {"a", "b"}, (
        f"{VERSIONS}: a queue set into Queues (and _default_consume_from on 5.7) is not in "
        "Queues.consume_from: a worker without -Q would not consume the subscriber queues"
    )


# -- Celery's request and task (wowevent_kombu.brokers.celery.request, .workerlost) -------------


def test_the_request_members_the_failure_path_uses_keep_their_shape():
    check_signature(Request, "on_failure", ["self", "exc_info", "send_failed_event", "return_ok"])
    check_signature(Request, "on_timeout", ["self", "soft", "timeout"])
    check_signature(Request, "reject", ["self", "requeue"])
    check_signature(Request, "acknowledge", ["self"])
    check_signature(Request, "send_event", ["self", "type"])
    for member in ("_context", "store_errors", "task_name", "task", "id", "args", "kwargs"):
        assert has(Request, member), f"{VERSIONS}: celery.worker.request.Request.{member} is gone"
    for member in ("_already_cancelled", "_already_revoked"):
        assert member in inspect.getsource(Request), (
            f"{VERSIONS}: celery.worker.request.Request.{member} is gone"
        )
    assert "self._context" in inspect.getsource(Request.on_failure), (
        f"{VERSIONS}: Request.on_failure no longer records the failure with self._context"
    )


def test_compat_says_whether_celery_retries_a_lost_pool_child():
    assert has(Request, "_retry_worker_lost") == compat.CELERY_RETRY_ON_WORKER_LOST, (
        f"{VERSIONS}: compat.CELERY_RETRY_ON_WORKER_LOST={compat.CELERY_RETRY_ON_WORKER_LOST} "
        "but celery.worker.request.Request._retry_worker_lost is "
        f"{'present' if has(Request, '_retry_worker_lost') else 'absent'}"
    )
    if compat.CELERY_RETRY_ON_WORKER_LOST:
        check_signature(Request, "_retry_worker_lost", ["self", "exc", "exc_info"])
        assert "retry_on_worker_lost" in inspect.getsource(Request.on_failure), (
            f"{VERSIONS}: Request.on_failure no longer reads Task.retry_on_worker_lost"
        )
    else:
        assert "retry_on_worker_lost" not in inspect.getsource(Request.on_failure), (
            f"{VERSIONS}: this Celery retries lost children itself: set "
            "compat.CELERY_RETRY_ON_WORKER_LOST, or both would send a retry"
        )


def test_the_task_members_the_bus_overrides_keep_their_shape():
    check_signature(Task, "signature_from_request", ["self", "request", "args", "kwargs", "queue"])
    check_signature(Task, "start_strategy", ["self", "app", "consumer"])
    check_signature(
        Task, "retry",
        ["self", "args", "kwargs", "exc", "throw", "eta", "countdown", "max_retries"],
    )  # fmt: skip
    app = Celery(set_as_current=False)

    @app.task(bind=True, shared=False)
    def probe(self):
        return None

    assert hasattr(probe, "request_stack"), f"{VERSIONS}: Task.request_stack is gone"
    assert "Request" in vars(Task) or hasattr(Task, "Request"), (
        f"{VERSIONS}: Task.Request (the worker's request class) is gone"
    )


# -- the version gate ----------------------------------------------------------------------------


def test_an_unsupported_release_is_refused_naming_the_supported_range():
    problem = compat.unsupported({"celery": (5, 3, 6), "kombu": (5, 3, 7)})
    assert problem is not None
    assert "celery>=5.4,<5.8" in problem and "kombu>=5.4.2,<5.8" in problem, problem
    assert "Celery 5.3.6" in problem, problem
    assert compat.unsupported({"celery": (5, 8, 0), "kombu": (5, 7, 0)}) is not None
    assert compat.unsupported({"celery": (5, 5, 3), "kombu": (5, 5, 4)}) is None


def test_the_installed_release_is_supported_and_setup_cfg_says_the_same_range():
    assert compat.unsupported() is None, compat.unsupported()
    from pathlib import Path

    setup = (Path(__file__).resolve().parent.parent / "setup.cfg").read_text()
    for name, supported in compat.SUPPORTED.items():
        assert f"{name}{supported}" in setup, (
            f"setup.cfg's install_requires does not say {name}{supported} (compat.SUPPORTED)"
        )


def test_redis_py_hands_out_pool_connections_on_every_supported_release(redis_url):
    pool = redis.ConnectionPool.from_url(redis_url)
    try:
        conn = compat.pool_connection(pool)
        conn.send_command("PING")
        assert conn.read_response() in (b"PONG", "PONG", True)
        pool.release(conn)
    finally:
        pool.disconnect()
