"""A Celery app whose bus validates against a shared schema registry, for integration tests.

Handlers and failures are recorded in Redis so the test process can see what the worker did.
"""

import json
import os

import redis
from celery import Celery

from wowevent_kombu import EventBus, Middleware, SchemaRegistry

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]

app = Celery("schemashop", broker=URL, set_as_current=False)
app.conf.worker_prefetch_multiplier = 1
store = redis.Redis.from_url(URL)
registry = SchemaRegistry.from_url(URL, namespace=EXCHANGE, refresh_interval=0.2)


class RecordOutcomes(Middleware):
    """Writes every failure and retry to Redis, with the violations when there are some."""

    def on_failure(self, task, event, exc, einfo):
        violations = [v.as_dict() for v in getattr(exc, "violations", ())]
        entry = {"subscriber": task.wowevent_subscriber, "id": event.id if event else None,
                 "error": type(exc).__name__, "violations": violations}  # fmt: skip
        store.rpush(f"{EXCHANGE}:failed", json.dumps(entry))

    def on_retry(self, task, event, exc, einfo):
        store.rpush(f"{EXCHANGE}:retried", json.dumps({"id": event.id if event else None}))


bus = EventBus(
    app,
    exchange=EXCHANGE,
    schemas=registry,
    middleware=[RecordOutcomes()],
    subscriber_defaults={"default_retry_delay": 0.05},
)


@bus.subscriber("order.*", name="fulfil", bind=True, autoretry_for=(Exception,), max_retries=3)
def fulfil(self, event):
    entry = {"id": event.id, "schema_version": event.schema_version, "data": event.data,
             "retries": self.request.retries}  # fmt: skip
    store.rpush(f"{EXCHANGE}:seen", json.dumps(entry))
