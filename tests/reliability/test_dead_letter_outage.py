"""The dead-letter store refusing writes must not stop a worker, whatever its pool.

With the solo pool the failure hooks run in the worker process itself: an error escaping them
would stop the worker ("Unrecoverable error"), which is what a Redis killed mid-delivery did.
"""

import json

import pytest
import redis

from tests.conftest import wait_for
from tests.reliability.counting import publisher
from wowevent_kombu.core import names


def unlucky_runs(client, exchange):
    entries = [json.loads(raw) for raw in client.lrange(f"{exchange}:seen", 0, -1)]
    return [e for e in entries if e["subscriber"] == "unlucky"]


@pytest.mark.parametrize("pool", ["solo", "threads"])
def test_a_refused_dead_letter_write_requeues_without_stopping_the_worker(
    private_redis, start_worker, exchange, pool
):
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    records_key = names.dead_letter_records_key(exchange)
    client.set(records_key, "not a hash")  # every HSET of a record now fails with WRONGTYPE
    env = {"WOWEVENT_TEST_REDIS_URL": server.url, "WOWEVENT_TEST_EXCHANGE": exchange}
    worker = start_worker("tests.apps.dlq", env=env, pool=pool, concurrency=1)
    bus = publisher(server.url, exchange)
    event = bus.publish("unlucky.day", {})
    wait_for(lambda: len(unlucky_runs(client, exchange)) >= 3,
             message="the unrecorded failure requeued and run again")  # fmt: skip
    assert worker.proc.poll() is None, worker.text()[-3000:]
    assert "Unrecoverable error" not in worker.text()
    client.delete(records_key)  # the store works again
    record = wait_for(lambda: next(iter(bus.dead_letters.iter()), None), message="the record")
    assert record.id == names.task_id(event.id, "unlucky")
    wait_for(lambda: client.hlen("unacked") == 0, message="the ack")
    assert worker.proc.poll() is None
    bus.close()
