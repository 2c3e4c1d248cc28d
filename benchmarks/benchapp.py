"""The Celery app the end-to-end benchmarks run in a real worker, configured by environment.

BENCH_SUBSCRIBERS subscribers named s0..sN-1; subscriber i binds ``BENCH_PATTERN`` with ``{i}``
filled in (default ``t{i}.*``). ``bench.bare`` is the bare-Celery baseline task. Handlers record
latencies (or only count, with BENCH_MODE=count) in Redis under the exchange's prefix.

With a RabbitMQ broker (``amqp://``) the latencies, the event log and the dead letters go to the
Redis named by WOWEVENT_STORE_URL, and ``bench.bare`` pays what a bus delivery pays: a durable
quorum queue and publisher confirms.
"""

import os
import time

import redis
from celery import Celery
from kombu import Exchange, Queue

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_BROKER_URL"]
STORE_URL = os.environ.get("WOWEVENT_STORE_URL") or URL
AMQP = URL.startswith(("amqp", "pyamqp"))
EXCHANGE = os.environ["WOWEVENT_EXCHANGE"]
SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "1"))
PATTERN = os.environ.get("BENCH_PATTERN", "t{i}.*")
COUNT_ONLY = os.environ.get("BENCH_MODE") == "count"

app = Celery("bench", broker=URL, set_as_current=False)
app.conf.task_default_queue = f"{EXCHANGE}.bare"
app.conf.worker_prefetch_multiplier = int(os.environ.get("BENCH_PREFETCH", "4"))
app.conf.worker_hijack_root_logger = False
if os.environ.get("BENCH_PRIORITY_STEPS"):
    # Kombu polls every priority step of every queue: 4 keys per queue by default.
    steps = [int(x) for x in os.environ["BENCH_PRIORITY_STEPS"].split(",")]
    app.conf.broker_transport_options = {"priority_steps": steps}
if AMQP:
    # The bus's subscriber queues are durable quorum queues fed with confirmed publishes.
    app.conf.broker_transport_options = {"confirm_publish": True}
    # Routed by a topic exchange like events (Celery's native delayed delivery, set up for
    # quorum queues, warns about a direct one).
    bare_exchange = Exchange(f"{EXCHANGE}.bare", type="topic", durable=True)
    quorum = {"x-queue-type": "quorum"}
    app.conf.task_queues = [Queue(f"{EXCHANGE}.bare", bare_exchange, routing_key="bare",
                                  durable=True, queue_arguments=quorum)]  # fmt: skip
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"time_limit": 60})
store = redis.Redis.from_url(STORE_URL)
LAT = f"{EXCHANGE}:lat"
COUNT = f"{EXCHANGE}:count"


def record(kind, sent):
    start = time.time()
    if COUNT_ONLY:
        store.incr(COUNT)
        return
    done = time.time()
    store.rpush(LAT, f"{kind} {start - sent:.6f} {done - sent:.6f}")


def _subscriber(i):
    @bus.subscriber(PATTERN.format(i=i), name=f"s{i}")
    def handle(event):
        record("bus", event.time.timestamp())

    return handle


for _i in range(SUBSCRIBERS):
    _subscriber(_i)


@app.task(name="bench.bare", acks_late=True, ignore_result=True, shared=False)
def bare(sent, event=None):
    record("bare", sent)
