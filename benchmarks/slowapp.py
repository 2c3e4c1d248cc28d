"""Two subscribers of the same events, one SLOW_FACTOR times slower than the other.

``quick`` sleeps ``BENCH_WORK`` seconds and records its delivery delay (event time -> handler
start) in ``<exchange>:delay``; ``sluggish`` sleeps ``BENCH_WORK * BENCH_SLOW_FACTOR`` and
counts its runs in ``<exchange>:slow``. Configured from the environment by the benchmark and
the reliability test that start its workers.
"""

import os
import time

import redis
from celery import Celery

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_BROKER_URL"]
EXCHANGE = os.environ["WOWEVENT_EXCHANGE"]
WORK = float(os.environ.get("BENCH_WORK", "0.001"))
FACTOR = float(os.environ.get("BENCH_SLOW_FACTOR", "100"))

app = Celery("slow", broker=URL, set_as_current=False)
app.conf.worker_hijack_root_logger = False
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"time_limit": 60})
store = redis.Redis.from_url(URL)


@bus.subscriber("work.*", name="quick")
def quick(event):
    started = time.time()
    time.sleep(WORK)
    store.rpush(f"{EXCHANGE}:delay", f"{event.id} {started - event.time.timestamp():.6f}")


@bus.subscriber("work.*", name="sluggish")
def sluggish(event):
    time.sleep(WORK * FACTOR)
    store.rpush(f"{EXCHANGE}:slow", event.id)
