"""Subscribers that record every execution, for tests running several workers on one queue set.

Each execution is recorded as ``subscriber event-id pid retries`` in ``<exchange>:runs``.
``flaky`` fails its first attempt when the event says so (one retry, pinned to its queue);
``doomed`` always fails for the events meant for it and ends in the dead-letter store.
"""

import os

import redis
from celery import Celery

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]

app = Celery("scale", broker=URL, set_as_current=False)
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"default_retry_delay": 0.05})
store = redis.Redis.from_url(URL)


def _run(task, event):
    entry = f"{task.wowevent_subscriber} {event.id} {os.getpid()} {task.request.retries}"
    store.rpush(f"{EXCHANGE}:runs", entry)


@bus.subscriber("scale.*", name="alpha", bind=True)
def alpha(self, event):
    _run(self, event)


@bus.subscriber("scale.#", name="beta", bind=True)
def beta(self, event):
    _run(self, event)


@bus.subscriber("scale.flaky", name="flaky", bind=True, autoretry_for=(RuntimeError,))
def flaky(self, event):
    _run(self, event)
    if self.request.retries == 0:
        raise RuntimeError("first attempt fails")


@bus.subscriber("scale.doomed", name="doomed", bind=True, autoretry_for=(RuntimeError,),
                max_retries=1)  # fmt: skip
def doomed(self, event):
    _run(self, event)
    raise RuntimeError("always fails")
