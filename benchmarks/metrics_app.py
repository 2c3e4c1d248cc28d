"""The worker app of benchmarks/metrics.py: one no-op subscriber, metrics on or off by env."""

import os

from celery import Celery

from wowevent_kombu import Event, EventBus, instrument

app = Celery("bench", broker=os.environ["WOWEVENT_BENCH_REDIS_URL"], set_as_current=False)
app.conf.worker_prefetch_multiplier = 16
bus = EventBus(app, exchange=os.environ["WOWEVENT_BENCH_EXCHANGE"])
if os.environ.get("WOWEVENT_BENCH_METRICS") == "1":
    instrument(bus)


@bus.subscriber("bench.*", name="noop")
def noop(event: Event) -> None:
    return None
