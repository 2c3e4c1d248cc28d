"""Subscribers for hostile-input and hanging-handler tests.

``steady`` records every run in ``<exchange>:runs`` (``subscriber event-id pid``); ``hang``
sleeps far past its ``time_limit`` on every attempt, so each is killed and retried until the
policy gives up and the delivery is dead-lettered; ``flaky`` fails its first attempt of each
event, so its retry is a message Celery itself sends (compressed when
``WOWEVENT_TEST_COMPRESSION`` sets ``task_compression``).
"""

import os
import time

import redis
from celery import Celery

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]

app = Celery("hostile", broker=URL, set_as_current=False)
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_prefetch_multiplier = 1
app.conf.task_compression = os.environ.get("WOWEVENT_TEST_COMPRESSION") or None
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"default_retry_delay": 0.05})
store = redis.Redis.from_url(URL)


def _run(name, event):
    store.rpush(f"{EXCHANGE}:runs", f"{name} {event.id} {os.getpid()}")


@bus.subscriber(["h.*", "hang.*"], name="steady")
def steady(event):
    _run("steady", event)


@bus.subscriber("hang.*", name="hang", time_limit=1, max_retries=2, retry_on_worker_lost=True)
def hang(event):
    _run("hang", event)
    time.sleep(60)


@bus.subscriber("f.*", name="flaky", bind=True, autoretry_for=(RuntimeError,), max_retries=2)
def flaky(task, event):
    _run("flaky", event)
    if task.request.retries == 0:
        raise RuntimeError("the first attempt fails")
