"""A Celery app on a ``sentinel://`` broker, for failover tests.

The broker is ``WOWEVENT_TEST_REDIS_URL`` (a Sentinel URL) with the service name in
``broker_transport_options``; handlers record their runs in a separate, stable Redis
(``WOWEVENT_TEST_STORE_URL``) so a failover of the broker cannot lose the test's own records.
"""

import os

import redis
from celery import Celery

from wowevent_kombu import EventBus

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]

app = Celery("sentinelapp", broker=URL, set_as_current=False)
app.conf.broker_transport_options = {
    "master_name": os.environ["WOWEVENT_TEST_MASTER_NAME"],
    "visibility_timeout": 5,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 2,
}
app.conf.broker_connection_retry_on_startup = True
app.conf.worker_hijack_root_logger = False
bus = EventBus(
    app,
    exchange=EXCHANGE,
    publish_timeout=1.0,
    subscriber_defaults={"default_retry_delay": 0.05, "time_limit": 1.5},
)
store = redis.Redis.from_url(os.environ["WOWEVENT_TEST_STORE_URL"])


@bus.subscriber("stream.*", name="counter")
def counter(event):
    store.rpush(f"{EXCHANGE}:runs", f"{event.id} {os.getpid()}")


@bus.subscriber("fail.*", name="failing", max_retries=0)
def failing(event):
    raise RuntimeError("always fails")
