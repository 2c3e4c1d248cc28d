"""An instrumented Celery app for the observability tests: known outcomes per subscriber.

Configured from the environment by the test that starts the worker.
"""

import os
import time

import redis
from celery import Celery

from wowevent_kombu import EventBus, instrument

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]

app = Celery("observed", broker=URL, set_as_current=False)
app.conf.worker_prefetch_multiplier = 1
app.conf.task_send_sent_event = True
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"default_retry_delay": 0.01})
store = redis.Redis.from_url(URL)


metrics = instrument(bus)


@bus.subscriber("obs.ok", name="ok")
def ok(event):
    return None


@bus.subscriber("obs.flaky", name="flaky", bind=True, autoretry_for=(RuntimeError,), max_retries=3)
def flaky(self, event):
    if self.request.retries < event.data.get("fail_times", 0):
        raise RuntimeError("not yet")


@bus.subscriber("obs.doomed", name="doomed", max_retries=0)
def doomed(event):
    raise ValueError("always fails")


@bus.subscriber("obs.toggle", name="toggle")
def toggle(event):
    if store.exists(f"{EXCHANGE}:test:failing"):
        raise ValueError("switched to failing")


@bus.subscriber("obs.slow", name="slow", time_limit=10)
def slow(event):
    time.sleep(event.data.get("sleep", 0))
