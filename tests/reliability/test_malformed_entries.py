"""Hostile entries pushed straight into queues: the worker keeps running, nothing loops."""

import base64
import json
import pickle

import pytest
import redis

from tests.conftest import wait_for
from tests.reliability.counting import publish_all, publisher, report, runs
from wowevent_kombu import DeadLetterFilter
from wowevent_kombu.core import names, wire


class Planted:
    """Unpickling this creates a file: proof that a pickled body was never loaded."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def envelope(queue, body: bytes, *, task="steady", content_type="application/json"):
    prepared = wire.PreparedEvent(body=base64.b64encode(body).decode(), kwargsrepr='""')
    message = json.loads(wire.task_message(prepared, task=task, task_id=names.random_uuid(),
                                           queue=queue, sender="hostile@test"))  # fmt: skip
    message["content-type"] = content_type
    return json.dumps(message)


def hostile_entries(queue, planted):
    event = {"specversion": "1.0", "id": "x", "source": "s", "type": "h.item", "data": {}}
    return {
        "not JSON": b"this is not json",
        "not UTF-8": b"\xff\xfe\x00garbage",
        "deeply nested JSON": b"[" * 100_000,
        "JSON, not an object": b"[1, 2, 3]",
        "JSON, not a Celery message": b'{"hello": "world"}',
        "bad base64 body": json.dumps({"body": "%%%", "properties": {"delivery_tag": "t",
            "body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": queue}}}),
        "no task name": json.dumps({"body": "", "headers": {}, "content-type": "application/json",
            "properties": {"delivery_tag": "t2", "delivery_info": {"exchange": "",
                                                                    "routing_key": queue}}}),
        "unknown task": envelope(queue, b"[[], {}, {}]", task="no.such.task"),
        "body not a triple": envelope(queue, b'"hello"'),
        "body without an event": envelope(queue, b"[[], {}, {}]"),
        "body not JSON": envelope(queue, b"{{{"),
        "pickle": envelope(queue, pickle.dumps([[], {"event": Planted(planted)}, {}]),
                           content_type="application/x-python-serialize"),
        "yaml": envelope(queue, json.dumps([[], {"event": event}, {}]).encode(),
                         content_type="application/x-yaml"),
    }  # fmt: skip


@pytest.fixture
def hostile_worker(private_redis, start_worker, exchange):
    server = private_redis()
    env = {"WOWEVENT_TEST_REDIS_URL": server.url, "WOWEVENT_TEST_EXCHANGE": exchange}
    worker = start_worker("tests.apps.hostile", env=env, pool="prefork", concurrency=1)
    return worker, server


def test_malformed_entries_are_dead_lettered_as_malformed(hostile_worker, exchange, tmp_path):
    worker, server = hostile_worker
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    queue = names.queue_name(exchange, "steady")
    planted = tmp_path / "unpickled"
    entries = hostile_entries(queue, str(planted))
    before = publish_all(bus, 20)
    for raw in entries.values():
        client.lpush(queue, raw)
    after = publish_all(bus, 20)
    store = bus.dead_letters
    wait_for(lambda: store.count() >= len(entries), message="every entry dead-lettered")
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in before + after),
             message="the subscriber kept handling events")  # fmt: skip
    records = list(store.iter())
    assert len(records) == len(entries)
    assert {r.reason for r in records} == {"malformed"}
    assert {r.subscriber for r in records} == {"steady"}
    assert all(r.attempts[0].message for r in records)
    assert not planted.exists()  # the pickled body was refused, never loaded
    problems = sorted(r.attempts[0].message for r in records)
    assert any("accepts application/json only" in p and "python-serialize" in p for p in problems)
    assert any("no task named 'no.such.task'" in p for p in problems)
    assert any("not UTF-8" in p for p in problems)
    # Nothing waits to be retried: the queue is empty and nothing is held unacknowledged.
    wait_for(lambda: client.hlen("unacked") == 0, message="nothing unacknowledged")
    assert client.llen(queue) == 0
    assert store.count(DeadLetterFilter(reason="malformed")) == len(entries)
    assert worker.proc.poll() is None
    assert "Unrecoverable error" not in worker.text()
    report("malformed entries", {"entries": len(entries), "dead_lettered": len(records),
                                 "events_in": 40, "worker_alive": True})  # fmt: skip
    bus.close()


def test_entries_in_a_queue_of_no_subscriber_are_rejected_with_a_logged_reason(
    hostile_worker, exchange, tmp_path
):
    worker, server = hostile_worker
    client = redis.Redis.from_url(server.url)
    bus = publisher(server.url, exchange)
    # The worker also consumes Celery's default queue, which no subscriber owns.
    entries = hostile_entries("celery", str(tmp_path / "unpickled"))
    for raw in entries.values():
        client.lpush("celery", raw)
    wait_for(lambda: client.llen("celery") == 0, message="the entries consumed")
    ids = publish_all(bus, 10)
    wait_for(lambda: all(runs(client, exchange)[("steady", i)] for i in ids),
             message="the worker kept going")  # fmt: skip
    wait_for(lambda: client.hlen("unacked") == 0, message="nothing unacknowledged")
    assert bus.dead_letters.count() == 0
    text = worker.text()
    assert "Can't decode message body" in text  # Celery's logged reason, e.g. for non-JSON
    assert "Received unregistered task of type 'no.such.task'" in text
    assert worker.proc.poll() is None
    assert not (tmp_path / "unpickled").exists()
    bus.close()
