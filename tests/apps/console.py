"""A Celery app for the console's browser tests: one subscriber that fails on demand, one that
shares its pattern, and every run recorded so a test can tell who ran what.

Configured from the environment by the test that starts the worker and ``wowevent serve``.
``fragile`` fails (no retries: straight to the dead letters) while ``<exchange>:test:failing``
exists; ``audit`` never fails. Each run is appended to ``<exchange>:seen``.
"""

import json
import os
import time

import redis
from celery import Celery

from wowevent_kombu import EventBus, instrument

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]
FAILING = f"{EXCHANGE}:test:failing"

app = Celery("console", broker=URL, set_as_current=False)
app.conf.worker_prefetch_multiplier = 1
bus = EventBus(app, exchange=EXCHANGE)
store = redis.Redis.from_url(URL)
metrics = instrument(bus)


def record(subscriber, event, outcome):
    entry = {
        "subscriber": subscriber,
        "id": event.id,
        "replayed": event.replayed,
        "outcome": outcome,
        "at": time.time(),
    }
    store.rpush(f"{EXCHANGE}:seen", json.dumps(entry))


@bus.subscriber("order.*", name="fragile", max_retries=0)
def fragile(event):
    if store.exists(FAILING):
        record("fragile", event, "failed")
        raise ValueError(f"payment gateway refused order {event.data.get('order')}")
    record("fragile", event, "ok")


@bus.subscriber("order.*", name="audit")
def audit(event):
    record("audit", event, "ok")
