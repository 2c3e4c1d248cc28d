"""One trace across processes: a request and its publish here, every delivery in a real worker.

The worker exports its spans to a file; this process keeps its own in the SDK's in-memory
exporter. Run with and without ``opentelemetry-instrumentation-celery`` in the worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import Worker, wait_for
from wowevent_kombu import EventBus, enable_tracing

pytestmark = pytest.mark.integration


def read_spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("celery_otel", [False, True], ids=["bus-only", "with-celery-otel"])
def test_one_trace_holds_the_publish_and_one_delivery_span_per_subscriber(
    start_worker: Callable[..., Worker],
    redis_url: str,
    exchange: str,
    tmp_path: Path,
    celery_otel: bool,
) -> None:
    spans_file = tmp_path / "worker-spans.jsonl"
    env = {"WOWEVENT_TEST_SPANS": str(spans_file),
           "WOWEVENT_TEST_CELERY_OTEL": "1" if celery_otel else "0"}  # fmt: skip
    start_worker("tests.apps.traced", env=env)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = EventBus(Celery("pub", broker=redis_url, set_as_current=False), exchange=exchange)
    enable_tracing(bus, provider)
    with provider.get_tracer("web").start_as_current_span("POST /orders"):
        bus.publish("shop.order", {"fail_times": 1})
    bus.close()
    mine = {s.name: s for s in exporter.get_finished_spans()}
    publish = mine[f"{exchange} publish"]
    trace_id = f"0x{publish.context.trace_id:032x}"
    publish_id = f"0x{publish.context.span_id:016x}"

    def delivered() -> list[dict[str, Any]] | None:
        found = [s for s in read_spans(spans_file) if s["name"].endswith(" process")]
        # billing: a failed attempt and its retry; audit: one delivery.
        return found if len(found) >= 3 else None

    process = wait_for(delivered, 30, 0.05, "the worker's delivery spans")
    spans = read_spans(spans_file)
    assert sorted(s["name"] for s in process) == [
        "audit process", "billing process", "billing process",
    ]  # fmt: skip
    for span in process:
        assert span["context"]["trace_id"] == trace_id
        assert span["parent_id"] == publish_id
        assert span["kind"] == "SpanKind.CONSUMER"
    attempts = sorted(
        (s["attributes"]["wowevent.attempt"], s["status"]["status_code"])
        for s in process if s["name"] == "billing process"
    )  # fmt: skip
    assert attempts == [(1, "ERROR"), (2, "UNSET")]
    # The handler's spans are children of its delivery span, in the same trace.
    charges = [s for s in spans if s["name"] == "charge card"]
    billing_ids = {s["context"]["span_id"] for s in process if s["name"] == "billing process"}
    assert len(charges) == 2
    assert {s["parent_id"] for s in charges} == billing_ids
    assert {s["context"]["trace_id"] for s in charges} == {trace_id}
    # Nothing broken: every parent a worker span names was exported (or is the publish span).
    known = {s["context"]["span_id"] for s in spans} | {publish_id}
    assert all(s["parent_id"] in known for s in spans if s["parent_id"])
    celery_runs = [s for s in spans if s["name"].startswith("run/")]
    if celery_otel:
        # Celery's instrumentation keeps its own trace per task run; ours links to it.
        assert len(celery_runs) == 3
        runs = {s["context"]["span_id"] for s in celery_runs}
        linked = {link["context"]["span_id"] for s in process for link in s["links"]}
        assert linked == runs
        assert all(s["context"]["trace_id"] != trace_id for s in celery_runs)
    else:
        assert celery_runs == []
