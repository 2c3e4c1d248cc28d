"""A Celery app whose subscribers record every execution in Redis, for integration tests.

Configured from the environment by the test that starts the worker.
"""

import json
import os
import time

import redis
from celery import Celery

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
BROKER = os.environ.get("WOWEVENT_TEST_BROKER_URL") or URL
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]
VISIBILITY = float(os.environ.get("WOWEVENT_TEST_VISIBILITY", "3600"))

app = Celery("shop", broker=BROKER, set_as_current=False)
if BROKER == URL:
    app.conf.broker_transport_options = {
        "visibility_timeout": VISIBILITY,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 2,
    }
else:  # RabbitMQ: the log, dead letters and bindings stay in Redis
    app.conf.wowevent_store_url = URL
app.conf.worker_prefetch_multiplier = 1
if os.environ.get("WOWEVENT_TEST_ACCEPT"):
    app.conf.accept_content = os.environ["WOWEVENT_TEST_ACCEPT"].split(",")
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"default_retry_delay": 0.05})
store = redis.Redis.from_url(URL)


def record(subscriber, event, task=None, **extra):
    entry = {"subscriber": subscriber, "type": event.type, "id": event.id,
             "replayed": event.replayed, **extra}  # fmt: skip
    if task is not None:
        entry.update(task_id=task.request.id, task_name=task.name, retries=task.request.retries)
    store.rpush(f"{EXCHANGE}:seen", json.dumps(entry))


@bus.subscriber("order.*", name="billing", bind=True)
def bill(self, event):
    record("billing", event, self)


@bus.subscriber(["order.#", "payment.*"], name="audit", bind=True)
def audit(self, event):
    record("audit", event, self)


@bus.subscriber("flaky.*", name="flaky", bind=True, autoretry_for=(RuntimeError,), max_retries=3)
def flaky(self, event):
    record("flaky", event, self)
    if self.request.retries < event.data.get("fail_times", 0):
        raise RuntimeError("not yet")


@bus.subscriber("fragile.*", name="fragile", bind=True, autoretry_for=(RuntimeError,),
               max_retries=1)  # fmt: skip
def fragile(self, event):
    record("fragile", event, self)
    raise RuntimeError("always")


@bus.subscriber("flaky.*", name="steady", bind=True)
def steady(self, event):
    record("steady", event, self)


@bus.subscriber("manual.*", name="manual", bind=True, max_retries=3)
def manual(self, event):
    record("manual", event, self)
    if self.request.retries < event.data.get("fail_times", 0):
        raise self.retry(countdown=0.05)


@bus.subscriber("slow.*", name="sleeper", bind=True, time_limit=2)
def sleeper(self, event):
    record("sleeper", event, self, phase="start")
    time.sleep(event.data.get("sleep", 0))
    record("sleeper", event, self, phase="done")


@bus.subscriber("slow.*", name="watcher", bind=True)
def watcher(self, event):
    record("watcher", event, self)
