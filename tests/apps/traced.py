"""A traced Celery app: its worker exports every finished span to a JSON-lines file.

Configured from the environment by the test that starts the worker: ``WOWEVENT_TEST_SPANS``
names the file; ``WOWEVENT_TEST_CELERY_OTEL=1`` also turns on
``opentelemetry-instrumentation-celery``, as an app running both would.
"""

import json
import os
import threading

from celery import Celery
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

from wowevent_kombu import EventBus, enable_tracing

URL = os.environ["WOWEVENT_TEST_REDIS_URL"]
EXCHANGE = os.environ["WOWEVENT_TEST_EXCHANGE"]


class FileExporter(SpanExporter):
    """One JSON object per finished span, appended to a file (the worker's 'collector')."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def export(self, spans):
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            for span in spans:
                out.write(json.dumps(json.loads(span.to_json())) + "\n")
        return SpanExportResult.SUCCESS


provider = TracerProvider(resource=Resource.create({"service.name": "traced-worker"}))
provider.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["WOWEVENT_TEST_SPANS"])))

if os.environ.get("WOWEVENT_TEST_CELERY_OTEL") == "1":
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument(tracer_provider=provider)

app = Celery("traced", broker=URL, set_as_current=False)
app.conf.worker_prefetch_multiplier = 1
bus = EventBus(app, exchange=EXCHANGE, subscriber_defaults={"default_retry_delay": 0.01})
enable_tracing(bus, provider)


@bus.subscriber("shop.*", name="billing", bind=True, autoretry_for=(RuntimeError,), max_retries=2)
def billing(self, event):
    with provider.get_tracer("shop").start_as_current_span("charge card"):
        if self.request.retries < event.data.get("fail_times", 0):
            raise RuntimeError("card network busy")


@bus.subscriber("shop.#", name="audit")
def audit(event):
    return None
