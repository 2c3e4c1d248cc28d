"""The bus's Celery app the end-to-end benchmarks run in a real worker, configured by environment.

BENCH_SUBSCRIBERS subscribers named s0..sN-1; subscriber i binds ``BENCH_PATTERN`` with ``{i}``
filled in (default ``t{i}.*``). Handlers record latencies (or only count, with BENCH_MODE=count)
in Redis under the exchange's prefix. ``bench.probe`` only tells a starting worker is ready.
The bare-Celery baseline is another app in another worker: :mod:`benchmarks.bareapp`.

With a RabbitMQ broker (``amqp://``) the latencies, the event log and the dead letters go to the
Redis named by WOWEVENT_STORE_URL.
"""

import os

from benchmarks.appconfig import COUNT, EXCHANGE, LAT, Recorder, celery_app
from wowevent_kombu import EventBus

__all__ = ["COUNT", "LAT", "app", "bus", "probe"]

SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "1"))
PATTERN = os.environ.get("BENCH_PATTERN", "t{i}.*")

app = celery_app("bench", f"{EXCHANGE}.probe")
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"time_limit": 60})
record = Recorder()


def _subscriber(i):
    @bus.subscriber(PATTERN.format(i=i), name=f"s{i}")
    def handle(event):
        record("bus", event.time.timestamp())

    return handle


for _i in range(SUBSCRIBERS):
    _subscriber(_i)


@app.task(name="bench.probe", acks_late=True, ignore_result=True, shared=False)
def probe(sent):
    record("probe", sent)
