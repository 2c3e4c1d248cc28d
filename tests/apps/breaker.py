"""A subscriber behind a circuit breaker whose downstream is down while a Redis flag is set.

``downstream`` (``idempotent=True``, ``autoretry_for=(ConnectionError,)``) raises while
``<exchange>:down`` exists and records each run in ``<exchange>:runs`` as
``subscriber event-id outcome retries pid``; ``bystander`` takes the same events and never fails.
Breaker times come from the environment, short enough for tests.
"""

import os

import redis
from celery import Celery

from wowevent_kombu import CircuitBreaker, EventBus

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]

app = Celery("breaker", broker=URL, set_as_current=False)
app.conf.broker_connection_retry_on_startup = True
app.conf.broker_transport_options = {"visibility_timeout": 3600}
app.conf.worker_prefetch_multiplier = 1
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"default_retry_delay": 0.05})
store = redis.Redis.from_url(URL)
BREAKER = CircuitBreaker(
    failure_rate=0.5,
    min_attempts=int(os.environ.get("WOWEVENT_TEST_MIN_ATTEMPTS", "10")),
    window=3,
    open_for=float(os.environ.get("WOWEVENT_TEST_OPEN_FOR", "2")),
    trials=2,
)


def _run(task, event, outcome):
    entry = f"{task.wowevent_subscriber} {event.id} {outcome} {task.request.retries} {os.getpid()}"
    store.rpush(f"{EXCHANGE}:runs", entry)


@bus.subscriber("outage.*", name="downstream", bind=True, idempotent=True,
                autoretry_for=(ConnectionError,), max_retries=3,
                circuit_breaker=BREAKER)  # fmt: skip
def downstream(self, event):
    if store.exists(f"{EXCHANGE}:down"):
        _run(self, event, "failed")
        raise ConnectionError("the downstream service is down")
    _run(self, event, "ok")


@bus.subscriber("outage.*", name="bystander", bind=True, idempotent=True)
def bystander(self, event):
    _run(self, event, "ok")
