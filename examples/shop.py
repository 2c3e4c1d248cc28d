"""An example shop: four subscribers on one Celery app.

Run a worker with ``celery -A examples.shop worker -E`` (broker from ``WOWEVENT_BROKER_URL``,
exchange from ``WOWEVENT_EXCHANGE``; with a RabbitMQ broker, the Redis of the log and dead
letters from ``WOWEVENT_STORE_URL``). Each handler notes what it did in Redis so the demo can
show it; a real handler would bill, audit or notify instead.
"""

import json
import os
from functools import cache

import redis
from celery import Celery

from wowevent_kombu import Event, EventBus, instrument

BROKER = os.environ.get("WOWEVENT_BROKER_URL", "redis://localhost:6379/0")
STORE = os.environ.get("WOWEVENT_STORE_URL") or BROKER

app = Celery("shop", broker=BROKER, set_as_current=False)
app.conf.broker_transport_options = {"visibility_timeout": 3600}
app.conf.worker_prefetch_multiplier = 1
bus = EventBus(app)
instrument(bus)  # metrics, worker heartbeat and the window behind `wowevent status`


@cache
def _notes() -> redis.Redis:
    return redis.Redis.from_url(STORE)


def note(task, event: Event, outcome: str) -> None:
    """Record one execution for the demo's summary."""
    entry = {
        "subscriber": task.name, "task_id": task.request.id, "type": event.type,
        "event_id": event.id, "attempt": task.request.retries + 1,
        "outcome": f"{outcome} (replayed)" if event.replayed else outcome,
    }  # fmt: skip
    _notes().rpush(f"{bus.exchange}:demo:notes", json.dumps(entry))


@bus.subscriber("order.*", name="billing", bind=True)
def bill(self, event: Event) -> None:
    """Charge the customer for a new order."""
    note(self, event, "charged")


@bus.subscriber(["order.#", "payment.*"], name="audit", bind=True)
def audit(self, event: Event) -> None:
    """Keep an audit trail of every order and payment event."""
    note(self, event, "recorded")


@bus.subscriber("payment.*", name="mailer", bind=True, autoretry_for=(ConnectionError,),
                max_retries=3, retry_backoff=0.2, retry_jitter=False)  # fmt: skip
def mail(self, event: Event) -> None:
    """Mail a receipt; the mail server fails the first attempt of flagged payments."""
    if event.data.get("flaky_mail") and self.request.retries < 1:
        note(self, event, "mail server down, retrying")
        raise ConnectionError("mail server unavailable")
    note(self, event, "receipt sent")


@bus.subscriber("order.paid", name="ledger", bind=True, autoretry_for=(RuntimeError,),
                max_retries=1, default_retry_delay=0.2)  # fmt: skip
def post(self, event: Event) -> None:
    """Post the payment to the ledger; fails until the ledger is "fixed" (a Redis flag)."""
    if not _notes().exists(f"{bus.exchange}:demo:ledger-fixed"):
        note(self, event, "ledger rejects the account code")
        raise RuntimeError(f"ledger rejects account code of order {event.data.get('order_id')}")
    note(self, event, "posted to the ledger")
