"""Two counting subscribers for the soak run: each marks event ``n`` in a bitmap and counts.

``left`` binds ``soak.*`` and ``right`` binds ``soak.#``; both receive every ``soak.item``.
Per subscriber, ``<exchange>:seen:<name>`` is a bitmap of the ``n`` handled and
``<exchange>:count:<name>`` counts executions, so losses and duplicates are exact with a few
kilobytes of Redis.
"""

import os

import redis
from celery import Celery

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_BROKER_URL"]
EXCHANGE = os.environ["WOWEVENT_EXCHANGE"]

app = Celery("soak", broker=URL, set_as_current=False)
app.conf.worker_hijack_root_logger = False
app.conf.worker_prefetch_multiplier = 8
TIME_LIMIT = 60
"""Seconds, the subscribers' hard time limit (the soak's warm-up lasts at least this long)."""
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"time_limit": TIME_LIMIT})
store = redis.Redis.from_url(URL)


def _mark(name, event):
    pipe = store.pipeline(transaction=False)
    pipe.setbit(f"{EXCHANGE}:seen:{name}", int(event.data["n"]), 1)
    pipe.incr(f"{EXCHANGE}:count:{name}")
    pipe.execute()


@bus.subscriber("soak.*", name="left")
def left(event):
    _mark("left", event)


@bus.subscriber("soak.#", name="right")
def right(event):
    _mark("right", event)
