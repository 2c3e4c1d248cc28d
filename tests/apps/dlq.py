"""A Celery app whose subscribers fail in every way the dead-letter store must record.

Configured from the environment by the test that starts the worker. Handlers record each run
in ``<exchange>:seen`` (with the time and pid) so tests can measure retry gaps and kill children.
"""

import json
import os
import signal
import time

import redis
from celery import Celery

from wowevent_kombu import EventBus, Middleware, Reject, exponential_retries

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]
VISIBILITY = float(os.environ.get("WOWEVENT_TEST_VISIBILITY", "3600"))

app = Celery("dlq", broker=URL, set_as_current=False)
app.conf.broker_transport_options = {
    "visibility_timeout": VISIBILITY,
    "unacked_restore_interval": 1,
    "unacked_restore_throttle": 1,
    "unacked_mutex_expire": 2,
}
app.conf.worker_prefetch_multiplier = 1
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"default_retry_delay": 0.05})
store = redis.Redis.from_url(URL)


def record(task, event):
    entry = {
        "subscriber": task.wowevent_subscriber,
        "id": event.id,
        "task_id": task.request.id,
        "retries": task.request.retries,
        "at": time.time(),
        "pid": os.getpid(),
    }
    store.rpush(f"{EXCHANGE}:seen", json.dumps(entry))


class KillBeforeAck(Middleware):
    """After the dead-letter write, SIGKILL the worker once: the failure is never acked."""

    def on_failure(self, task, event, exc, einfo):
        if task.wowevent_subscriber != "ackkill":
            return
        if store.set(f"{EXCHANGE}:killed", "1", nx=True):
            os.kill(os.getppid(), signal.SIGKILL)  # the worker's main process (prefork)
            os.kill(os.getpid(), signal.SIGKILL)


class AckProbe(Middleware):
    """Runs after the dead-letter write: is the delivery still unacknowledged at that point?"""

    def on_failure(self, task, event, exc, einfo):
        held = any(task.request.id.encode() in raw for _, raw in store.hscan_iter("unacked"))
        entry = {"subscriber": task.wowevent_subscriber, "unacked": held, "pid": os.getpid()}
        store.rpush(f"{EXCHANGE}:probe", json.dumps(entry))


bus.add_middleware(AckProbe())
bus.add_middleware(KillBeforeAck())


# Fails the first ``fail_times`` runs, retried 1 s, 2 s, 4 s apart (the default policy, capped).
@bus.subscriber("backoff.*", name="backoff", bind=True, **exponential_retries(backoff_max=4))
def backoff(self, event):
    record(self, event)
    if self.request.retries < event.data.get("fail_times", 0):
        raise RuntimeError(f"attempt {self.request.retries + 1} fails")


@bus.subscriber(["backoff.*", "doomed.*"], name="bystander", bind=True)
def bystander(self, event):
    record(self, event)


@bus.subscriber("doomed.*", name="doomed", bind=True, autoretry_for=(RuntimeError,), max_retries=2)
def doomed(self, event):
    record(self, event)
    raise RuntimeError(f"doomed run {self.request.retries + 1}")


@bus.subscriber("refuse.*", name="rejecting", bind=True, autoretry_for=(Exception,))
def rejecting(self, event):
    record(self, event)
    raise Reject("order is for a closed account")


@bus.subscriber(
    "refuse.*",
    name="picky",
    bind=True,
    autoretry_for=(Exception,),
    dont_autoretry_for=(KeyError,),
    max_retries=3,
)
def picky(self, event):
    record(self, event)
    raise KeyError("sku")


@bus.subscriber("strict.*", name="strict", bind=True, autoretry_for=(Exception,), max_retries=3)
def strict(self, event):
    record(self, event)


# Sleeps until the test kills the pool child running it.
@bus.subscriber("crash.*", name="crasher", bind=True, max_retries=1)
def crasher(self, event):
    record(self, event)
    time.sleep(60)


@bus.subscriber("ackkill.*", name="ackkill", bind=True, max_retries=0)
def ackkill(self, event):
    record(self, event)
    raise RuntimeError("fails, then the worker dies before the ack")


@bus.subscriber("slow.*", name="overtime", bind=True, time_limit=1, max_retries=0)
def overtime(self, event):
    record(self, event)
    time.sleep(30)


@bus.subscriber("unlucky.*", name="unlucky", bind=True, max_retries=0)
def unlucky(self, event):
    record(self, event)
    raise RuntimeError("fails while the dead-letter store refuses writes")


@bus.subscriber("refuse.*", name="manual", bind=True, max_retries=1)
def manual(self, event):
    record(self, event)
    raise self.retry(exc=ValueError(f"manual run {self.request.retries + 1}"), countdown=0.05)
