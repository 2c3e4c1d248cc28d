"""A delivery is in its queue or in Kombu's unacked bookkeeping at every instant, never neither.

Kombu's own Redis consumer pops with BRPOP and records the delivery with a second command; the bus's
workers pop and record in one script (wowevent_kombu.brokers.redis.bell). These tests catch the gap
between the two steps: a Redis that refuses the second step, and snapshots taken while a real worker
drains a queue.
"""

import json
import subprocess
import sys

import pytest
import redis

from tests.conftest import ROOT, wait_for
from tests.reliability.conftest import runs
from tests.reliability.counting import publish_all, publisher
from wowevent_kombu.core import names


def start_load_worker(start_worker, server, exchange, **env):
    env = {"WOWEVENT_TEST_REDIS_URL": server.url, "WOWEVENT_TEST_EXCHANGE": exchange,
           **{k: str(v) for k, v in env.items()}}  # fmt: skip
    return start_worker("tests.apps.load", env=env, pool="prefork", concurrency=2)


def alpha_on_private_redis(private_redis, exchange):
    """A private Redis, a client of it, and a publisher with the load app's alpha queue bound."""
    server = private_redis()
    queue = names.queue_name(exchange, "alpha")
    bus = publisher(server.url, exchange)
    bus.transport.bind(queue, ["load.*"])
    return server, redis.Redis.from_url(server.url), queue, bus


def test_a_pop_redis_cannot_record_is_not_lost(private_redis, start_worker, exchange):
    """Out of memory, Redis still serves BRPOP but refuses the HSET that records it unacked."""
    server, client, queue, bus = alpha_on_private_redis(private_redis, exchange)
    [event_id] = publish_all(bus, 1, "load.item")
    client.set("filler", b"x" * 4_000_000)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", client.info("memory")["used_memory"] // 2)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        client.hset("probe", "refused", "1")

    consumer = subprocess.run(
        [sys.executable, "-m", "tests.apps.crashing_consumer", server.url, queue],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    client.config_set("maxmemory", 0)
    client.delete("filler")
    # The consumer got the delivery (and died holding it): the pop recorded it as it took it.
    assert consumer.stdout.startswith("delivered "), consumer.stderr[-2000:]
    tag = consumer.stdout.split()[1]
    assert client.llen(queue) == 0
    assert client.hexists("unacked", tag)

    # A worker started afterwards gets it back through Kombu's visibility timeout.
    start_load_worker(start_worker, server, exchange, WOWEVENT_TEST_VISIBILITY=2)
    wait_for(lambda: runs(client, exchange)[("alpha", event_id)] == 1, timeout=30,
             message="the delivery restored from unacked")  # fmt: skip
    # The handler records its run before the worker acknowledges the delivery.
    wait_for(lambda: not client.hexists("unacked", tag), message="the restored delivery acked")
    bus.close()


def test_no_delivery_is_ever_neither_queued_nor_recorded(private_redis, start_worker, exchange):
    """Atomic snapshots while a worker drains 2,000 deliveries: each is somewhere, every time."""
    server, client, queue, bus = alpha_on_private_redis(private_redis, exchange)
    ids = publish_all(bus, 2000, "load.item")
    # Oldest last: the worker pops from the right, so the first LLEN entries are still queued.
    entries = [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    tags = [e["properties"]["delivery_tag"] for e in entries]
    event_of = {e["properties"]["delivery_tag"]: e["headers"]["id"] for e in entries}
    task_of = dict(zip(ids, reversed([e["headers"]["id"] for e in entries]), strict=True))
    handled: set[str] = set()
    gaps: list[tuple[int, list[str]]] = []
    snapshots = 0
    start_load_worker(start_worker, server, exchange)
    while len(handled) < len(ids):
        pipe = client.pipeline(transaction=True)
        pipe.llen(queue).hkeys("unacked").lrange(f"{exchange}:runs", len(handled), -1)
        depth, unacked, new = pipe.execute()
        snapshots += 1
        handled |= {task_of[line.decode().split()[1]] for line in new}
        held = {tag.decode() for tag in unacked}
        nowhere = [t for t in tags[depth:] if t not in held and event_of[t] not in handled]
        if nowhere:
            gaps.append((depth, nowhere))
        assert snapshots < 200_000, "the worker stopped draining the queue"
    print(f"\n{snapshots} snapshots, {len(gaps)} with a delivery neither queued nor recorded")
    assert gaps == [], gaps[:5]
    bus.close()
