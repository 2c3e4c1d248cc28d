"""Poison messages: no entry in a subscriber queue can stop a worker or take its memory.

Each test pushes what an attacker with write access to Redis could push, next to good events,
into a real worker, and checks that the entry is dead-lettered once as ``malformed``, that the
worker is still running and that the good events after it are delivered.
"""

import base64
import bz2
import json
import pickle
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis
from celery import Celery
from click.testing import CliRunner

from tests.conftest import wait_for
from tests.integration.serving import serving
from tests.reliability.counting import publish_all, publisher, report, runs
from wowevent_kombu import (
    DeadLetterFilter,
    EventBus,
    EventEncodingError,
    EventSchema,
    SchemaRegistry,
)
from wowevent_kombu.cli import EXIT_DATAERR, cli
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.nesting import MAX_DEPTH
from wowevent_kombu.worker.steps import inflate_limit

TOKEN = "poison-admin-token"


def nested_list(depth: int) -> list:
    root: list = []
    current = root
    for _ in range(depth - 1):
        child: list = []
        current.append(child)
        current = child
    return root


def task_entry(queue, body: bytes, *, task="steady", headers=None, compression=None) -> str:
    """A complete Kombu/Redis envelope for ``task``, as the bus writes them, then altered."""
    prepared = wire.PreparedEvent(body=base64.b64encode(body).decode(), kwargsrepr='""')
    message = json.loads(wire.task_message(prepared, task=task, task_id=names.random_uuid(),
                                           queue=queue, sender="poison@test"))  # fmt: skip
    message["headers"].update(headers or {})
    if compression is not None:
        message["headers"]["compression"] = compression
    return json.dumps(message)


def event_body(data, event_type="h.item") -> bytes:
    """A task body carrying one event; ``data`` is JSON text (any depth) or a value."""
    event = {"specversion": "1.0", "id": names.random_uuid(), "source": "poison",
             "type": event_type, "data": None}  # fmt: skip
    text = data if isinstance(data, str) else json.dumps(data)
    return (
        json.dumps([[], {"event": event}, {}]).replace('"data": null', f'"data": {text}').encode()
    )


def deep_json(depth: int) -> str:
    return "[" * depth + "]" * depth


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc status")


def unpicklable_depth() -> int:
    """A nesting depth this Python's JSON decodes but its pickle refuses.

    It depends on the Python (about 500 on 3.11, 900 on 3.12, 5,000 on 3.13), and the worker
    pickles the headers inside the request, a few levels deeper still.
    """
    for depth in range(500, 20_000, 100):
        nested = nested_list(depth)
        try:
            pickle.dumps(nested)
        except RecursionError:
            json.loads(json.dumps(nested))  # the worker must still decode the entry
            return depth
    raise AssertionError("no nesting depth found that pickle refuses")


def start_hostile(private_redis, start_worker, exchange, pool="prefork", **env):
    server = private_redis()
    environ = {"WOWEVENT_TEST_REDIS_URL": server.url, "WOWEVENT_TEST_EXCHANGE": exchange, **env}
    worker = start_worker("tests.apps.hostile", env=environ, pool=pool, concurrency=2)
    return worker, server


def settled(client, queue):
    """Nothing is left queued or unacknowledged."""
    return client.llen(queue) == 0 and client.hlen("unacked") == 0


# -- nesting -----------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500, 5_000])
def test_publish_refuses_events_nested_past_the_limit_everywhere(
    private_redis, exchange, tmp_path, depth
):
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    with pytest.raises(EventEncodingError, match=f"more than {MAX_DEPTH} levels"):
        bus.publish("h.item", nested_list(depth))
    result = CliRunner().invoke(cli, ["--broker", server.url, "--exchange", exchange,
                                      "publish", "h.item", deep_json(depth)])  # fmt: skip
    assert result.exit_code == EXIT_DATAERR, result.output
    assert "nested too deeply" in result.output
    with serving(server.url, exchange, tmp_path / "serve.log", WOWEVENT_ADMIN_TOKEN=TOKEN) as (
        _, base,
    ):  # fmt: skip
        body = json.dumps({"type": "h.item", "data": nested_list(min(depth, 900))}).encode()
        req = urllib.request.Request(f"{base}/admin/publish", data=body, method="POST",
                                     headers={"Authorization": f"Bearer {TOKEN}",
                                              "Content-Type": "application/json"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(req, timeout=10)
        assert 400 <= refused.value.code < 500
        assert b"nested too deeply" in refused.value.read()
    assert client.xlen(names.log_key(exchange)) == 0  # nothing logged, nothing half-written
    bus.publish("h.item", nested_list(MAX_DEPTH))  # the limit itself is accepted
    bus.close()


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5_000])
def test_a_schema_checked_publish_refuses_deep_data_with_the_same_error(
    private_redis, exchange, depth
):
    server = private_redis()
    registry = SchemaRegistry.from_url(server.url, namespace=exchange)
    recursive = {"type": ["object", "array"], "items": {"$ref": "#"}}
    registry.register(EventSchema(type="h.item", version="1.0.0", schema=recursive))
    bus = EventBus(Celery("poison", broker=server.url, set_as_current=False), exchange=exchange,
                   schemas=registry)  # fmt: skip
    with pytest.raises(EventEncodingError, match=f"more than {MAX_DEPTH} levels"):
        bus.publish("h.item", nested_list(depth))
    assert redis.Redis.from_url(server.url).xlen(names.log_key(exchange)) == 0
    bus.close()


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
@pytest.mark.parametrize("depth", [500, 5_000])
def test_a_deep_event_pushed_past_publish_is_dead_lettered_and_the_worker_goes_on(
    private_redis, start_worker, exchange, pool, depth
):
    worker, server = start_hostile(private_redis, start_worker, exchange, pool=pool)
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    queue = names.queue_name(exchange, "steady")
    client.lpush(queue, task_entry(queue, event_body(deep_json(depth))))
    store = bus.dead_letters
    wait_for(lambda: store.count() == 1, message="the deep event dead-lettered")
    sent = time.monotonic()
    ids = publish_all(bus, 5)
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in ids),
             message="good events after it delivered")  # fmt: skip
    delivered_after = time.monotonic() - sent
    wait_for(lambda: settled(client, queue), message="nothing queued or unacknowledged")
    (record,) = store.iter()
    assert record.reason == "malformed"
    assert record.subscriber == "steady"
    problem = record.attempts[0].message
    # Deep enough and the JSON decoder itself refuses it, before the depth check can.
    assert (f"more than {MAX_DEPTH} levels" in problem
            or "recursion depth exceeded while decoding" in problem), problem  # fmt: skip
    assert worker.proc.poll() is None
    assert "Unrecoverable error" not in worker.text()
    report(
        "deep event pushed into a queue",
        {
            "pool": pool,
            "depth": depth,
            "dead_lettered": 1,
            "next_delivered_s": round(delivered_after, 3),
        },
    )
    bus.close()


def test_a_task_the_pool_cannot_pickle_is_dead_lettered_not_fatal(
    private_redis, start_worker, exchange
):
    """Headers nested too deeply to pickle pass every check before the pool; the hand-over
    itself fails, and the worker refuses that one entry instead of stopping."""
    worker, server = start_hostile(private_redis, start_worker, exchange)
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    queue = names.queue_name(exchange, "steady")
    deep_header = {"x_trace": nested_list(unpicklable_depth())}
    for _ in range(3):  # more than the pool's two slots: each refusal must free its slot
        client.lpush(queue, task_entry(queue, event_body({}), headers=deep_header))
    store = bus.dead_letters
    wait_for(lambda: store.count() == 3, message="every unpicklable task dead-lettered")
    ids = publish_all(bus, 10)
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in ids),
             message="the worker kept handling events")  # fmt: skip
    wait_for(lambda: settled(client, queue), message="nothing queued or unacknowledged")
    problems = {r.attempts[0].message for r in store.iter()}
    assert all("could not hand the task to its pool: RecursionError" in p for p in problems)
    # The default queue belongs to no subscriber: the same entry there is dropped, logged.
    client.lpush("celery", task_entry("celery", event_body({}), headers=deep_header))
    wait_for(lambda: "dropped: the worker could not hand the task to its pool" in worker.text(),
             message="the drop logged")  # fmt: skip
    more = publish_all(bus, 3)
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in more),
             message="still handling events")  # fmt: skip
    assert store.count() == 3
    assert worker.proc.poll() is None
    assert "Unrecoverable error" not in worker.text()
    bus.close()


# -- compression -------------------------------------------------------------------------------

BOMB_BYTES = 400_000_000


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """400 MB of zeros as bz2: a few hundred bytes."""
    return bz2.compress(b"\0" * BOMB_BYTES)


@pytest.mark.parametrize("compression", ["", "bzip2"], ids=["not-enabled", "enabled"])
def test_a_compression_bomb_is_refused_without_inflating_it(
    private_redis, start_worker, exchange, bomb, compression
):
    worker, server = start_hostile(private_redis, start_worker, exchange,
                                   WOWEVENT_TEST_COMPRESSION=compression)  # fmt: skip
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    queue = names.queue_name(exchange, "steady")
    warm = publish_all(bus, 5)
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in warm),
             message="the worker warmed up")  # fmt: skip
    baseline = rss_peak_kib(worker.proc.pid)
    client.lpush(queue, task_entry(queue, bomb, compression="application/x-bz2"))
    store = bus.dead_letters
    wait_for(lambda: store.count() == 1, message="the bomb dead-lettered")
    ids = publish_all(bus, 5)
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in ids),
             message="good events after it delivered")  # fmt: skip
    wait_for(lambda: settled(client, queue), message="nothing queued or unacknowledged")
    growth_mb = (rss_peak_kib(worker.proc.pid) - baseline) / 1024
    (record,) = store.iter()
    assert record.reason == "malformed"
    problem = record.attempts[0].message
    if compression:
        assert f"inflates past {inflate_limit(256 * 1024)} bytes" in problem, problem
    else:
        assert "which this queue does not accept" in problem, problem
    assert growth_mb < 50, f"worker peak RSS grew {growth_mb:.0f} MB"
    assert store.count() == 1  # dead-lettered once
    assert worker.proc.poll() is None
    report(
        "compression bomb",
        {
            "task_compression": compression or None,
            "bomb_mb": 400,
            "peak_rss_growth_mb": round(growth_mb, 1),
            "dead_lettered": 1,
        },
    )
    bus.close()


def test_enabled_compression_still_carries_events_and_retries(
    private_redis, start_worker, exchange
):
    worker, server = start_hostile(private_redis, start_worker, exchange,
                                   WOWEVENT_TEST_COMPRESSION="bzip2")  # fmt: skip
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    queue = names.queue_name(exchange, "steady")
    body = event_body({"compressed": True})
    client.lpush(queue, task_entry(queue, bz2.compress(body), compression="application/x-bz2"))
    wait_for(lambda: len(runs(client, exchange)) == 1, message="the compressed event handled")
    # Celery compresses the retry it sends (task_compression); the worker inflates it.
    (flaky_id,) = publish_all(bus, 1, "f.item")
    wait_for(lambda: runs(client, exchange)[("flaky", flaky_id)] == 2,
             message="the flaky event retried once and handled")  # fmt: skip
    assert bus.dead_letters.count() == 0
    assert worker.proc.poll() is None
    bus.close()


# -- foreign tasks -----------------------------------------------------------------------------


def test_a_subscriber_queue_runs_its_own_task_only(private_redis, start_worker, exchange):
    worker, server = start_hostile(private_redis, start_worker, exchange)
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    queue = names.queue_name(exchange, "steady")
    foreign = {
        "celery.accumulate": json.dumps([[1, 2], {}, {}]).encode(),
        "celery.backend_cleanup": json.dumps([[], {}, {}]).encode(),
        "hang": event_body({}, "hang.item"),  # another subscriber's task
    }
    for task, body in foreign.items():
        client.lpush(queue, task_entry(queue, body, task=task))
    store = bus.dead_letters
    wait_for(lambda: store.count() == len(foreign), message="every foreign task dead-lettered")
    ids = publish_all(bus, 5)
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in ids),
             message="the worker kept handling events")  # fmt: skip
    wait_for(lambda: settled(client, queue), message="nothing queued or unacknowledged")
    problems = sorted(r.attempts[0].message for r in store.iter(DeadLetterFilter(
        reason="malformed")))  # fmt: skip
    assert len(problems) == len(foreign)
    own = "belongs to subscriber 'steady' and carries its task 'steady' only"
    for task in foreign:
        assert any(f"{own}, not {task!r}" in p for p in problems), (task, problems)
    text = worker.text()
    assert not any(key[0] == "hang" for key in runs(client, exchange))  # never ran
    assert "Task celery.accumulate" not in text and "Task celery.backend_cleanup" not in text
    bus.close()
