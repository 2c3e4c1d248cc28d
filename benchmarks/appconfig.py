"""Configuration the benchmark apps share: the bus's app and the bare-Celery baseline's app.

Both read the broker, the exchange (every name of a run starts with it) and the store of the
recorded figures from the environment, so a worker process configures itself the same way as
the benchmark that started it.
"""

import os
import time

import redis
from celery import Celery
from kombu import Exchange, Queue

URL = os.environ["WOWEVENT_BROKER_URL"]
STORE_URL = os.environ.get("WOWEVENT_STORE_URL") or URL
AMQP = URL.startswith(("amqp", "pyamqp"))
EXCHANGE = os.environ["WOWEVENT_EXCHANGE"]
COUNT_ONLY = os.environ.get("BENCH_MODE") == "count"
LAT = f"{EXCHANGE}:lat"
COUNT = f"{EXCHANGE}:count"


def celery_app(name: str, queue: str) -> Celery:
    """A Celery app on the benchmark's broker whose default queue is ``queue``.

    On RabbitMQ the queue is a durable quorum queue fed with publisher confirms, as the bus's
    subscriber queues are, so a task sent there pays what a bus delivery pays.
    """
    app = Celery(name, broker=URL, set_as_current=False)
    app.conf.task_default_queue = queue
    app.conf.worker_prefetch_multiplier = int(os.environ.get("BENCH_PREFETCH", "4"))
    app.conf.worker_hijack_root_logger = False
    if os.environ.get("BENCH_PRIORITY_STEPS"):
        # Kombu polls every priority step of every queue: 4 keys per queue by default.
        steps = [int(x) for x in os.environ["BENCH_PRIORITY_STEPS"].split(",")]
        app.conf.broker_transport_options = {"priority_steps": steps}
    if AMQP:
        app.conf.broker_transport_options = {"confirm_publish": True}
        # Routed by a topic exchange like events (Celery's native delayed delivery, set up for
        # quorum queues, warns about a direct one).
        exchange = Exchange(queue, type="topic", durable=True)
        quorum = {"x-queue-type": "quorum"}
        app.conf.task_queues = [Queue(queue, exchange, routing_key="bare", durable=True,
                                      queue_arguments=quorum)]  # fmt: skip
    return app


class Recorder:
    """Writes what a handler saw to the store: a latency line, or only a count."""

    def __init__(self) -> None:
        self.store = redis.Redis.from_url(STORE_URL)

    def __call__(self, kind: str, sent: float) -> None:
        start = time.time()
        if COUNT_ONLY:
            self.store.incr(COUNT)
            return
        done = time.time()
        self.store.rpush(LAT, f"{kind} {start - sent:.6f} {done - sent:.6f}")
