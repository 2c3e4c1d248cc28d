"""A Celery app for the event log and replay tests: subscribers record every execution in Redis.

Configured from the environment by the test that starts the worker.
"""

import json
import os

import redis
from celery import Celery

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]

app = Celery("ledger", broker=URL, set_as_current=False)
app.conf.worker_prefetch_multiplier = 1
bus = EventBus(app, exchange=EXCHANGE)
store = redis.Redis.from_url(URL)


def record(subscriber, task, event):
    entry = {"subscriber": subscriber, "type": event.type, "id": event.id,
             "cid": event.correlation_id, "replayed": event.replayed,
             "task_id": task.request.id,
             "header": bool(getattr(task.request, "wowevent_replay", False))}  # fmt: skip
    store.rpush(f"{EXCHANGE}:seen", json.dumps(entry))


@bus.subscriber(["order.#", "payment.*"], name="ledger", bind=True)
def ledger(self, event):
    record("ledger", self, event)


@bus.subscriber("order.*", name="mailer", bind=True)
def mailer(self, event):
    record("mailer", self, event)


@bus.subscriber("order.*", name="once", bind=True, idempotent=True)
def once(self, event):
    record("once", self, event)


@bus.subscriber("#", name="late", bind=True, checkpoint=True)
def late(self, event):
    record("late", self, event)
