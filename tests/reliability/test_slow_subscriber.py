"""A slow subscriber on dedicated ``-Q`` workers does not hold back a fast one.

Only the order of completion is asserted (timings are for ``benchmarks/slow_subscriber.py``):
with one worker per subscriber queue, the fast subscriber handles every event while the slow
one still has most of its backlog, and each worker consumes only its own queue.
"""

import redis
from celery import Celery

from tests.conftest import wait_for
from wowevent_kombu import Event, EventBus
from wowevent_kombu.core import names

EVENTS = 30


def test_dedicated_workers_isolate_the_fast_subscriber(private_redis, start_worker, exchange):
    server = private_redis()
    env = {"WOWEVENT_BROKER_URL": server.url, "WOWEVENT_EXCHANGE": exchange,
           "BENCH_WORK": "0.002", "BENCH_SLOW_FACTOR": "100"}  # fmt: skip
    workers = {
        sub: start_worker("benchmarks.slowapp", "-Q", names.queue_name(exchange, sub), env=env,
                          pool="prefork", concurrency=1)
        for sub in ("sluggish", "quick")
    }  # fmt: skip
    bus = EventBus(Celery("pub", broker=server.url, set_as_current=False), exchange=exchange)
    client = redis.Redis.from_url(server.url)
    bus.publish_many([Event(type="work.item", data={"n": i}) for i in range(EVENTS)])
    wait_for(lambda: client.llen(f"{exchange}:delay") == EVENTS, timeout=60,
             message="the fast subscriber to handle every event")  # fmt: skip
    slow_done = client.llen(f"{exchange}:slow")
    assert slow_done < EVENTS // 2, slow_done  # the slow one is far behind, yet did not block
    assert client.llen(names.queue_name(exchange, "quick")) == 0
    wait_for(lambda: client.llen(f"{exchange}:slow") > slow_done, message="slow one progresses")
    # Each worker consumed only its own queue.
    assert "quick" not in workers["sluggish"].text().split("[tasks]")[0].split("[queues]")[1]
    assert "sluggish" not in workers["quick"].text().split("[tasks]")[0].split("[queues]")[1]
    bus.close()
