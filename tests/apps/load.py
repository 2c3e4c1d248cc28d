"""Two subscribers that count every execution, for fault-injection tests under load.

Each execution is recorded as ``subscriber event-id pid`` in ``<exchange>:runs``; the
``WOWEVENT_TEST_WORK`` seconds of simulated work keep deliveries in flight when faults strike.
"""

import os
import time

import redis
from celery import Celery

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
BROKER = os.environ.get("WOWEVENT_TEST_BROKER_URL") or URL
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]
WORK = float(os.environ.get("WOWEVENT_TEST_WORK", "0"))

app = Celery("load", broker=BROKER, set_as_current=False)
if BROKER == URL:
    app.conf.broker_transport_options = {
        "visibility_timeout": float(os.environ.get("WOWEVENT_TEST_VISIBILITY", "3600")),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
        "unacked_mutex_expire": 2,
    }
else:  # RabbitMQ: the log, dead letters and bindings stay in Redis
    app.conf.wowevent_store_url = URL
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_prefetch_multiplier = 2
bus = EventBus(
    app, exchange=EXCHANGE,
    subscriber_defaults={"default_retry_delay": 0.05, "time_limit": 1.5, "max_retries": 5},
)  # fmt: skip
store = redis.Redis.from_url(URL)


def _run(name, event):
    if WORK:
        time.sleep(WORK)
    store.rpush(f"{EXCHANGE}:runs", f"{name} {event.id} {os.getpid()}")


@bus.subscriber("load.*", name="alpha")
def alpha(event):
    _run("alpha", event)


@bus.subscriber("load.#", name="beta")
def beta(event):
    _run("beta", event)
