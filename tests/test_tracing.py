"""OpenTelemetry tracing on the in-memory test double, with the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from typing import Any

import pytest
from celery import Celery
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import ROOT
from wowevent_kombu import Event, EventBus, enable_tracing
from wowevent_kombu.core import wire
from wowevent_kombu.testing import TestBus

FOREIGN = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def traced() -> tuple[TestBus, TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = TestBus(Celery("tr", set_as_current=False), exchange="traced")
    enable_tracing(bus, provider)

    @bus.subscriber("order.*", name="billing")
    def billing(event: Event) -> None:
        with provider.get_tracer("app").start_as_current_span("charge card"):
            if event.data.get("fail"):
                raise ValueError("declined")

    @bus.subscriber("order.#", name="audit")
    def audit(event: Event) -> None:
        return None

    return bus, provider, exporter


def by_name(spans: Any) -> dict[str, ReadableSpan]:
    return {s.name: s for s in spans}


def test_one_trace_holds_the_request_the_publish_and_each_subscriber(
    traced: tuple[TestBus, TracerProvider, InMemorySpanExporter],
) -> None:
    bus, provider, exporter = traced
    with provider.get_tracer("web").start_as_current_span("POST /orders") as request:
        sent = bus.publish("order.placed", {"n": 1}, correlation_id="req-7")
    assert [d.state for d in bus.drain()] == ["SUCCESS", "SUCCESS"]
    spans = by_name(exporter.get_finished_spans())
    assert set(spans) == {"POST /orders", "traced publish", "billing process", "audit process",
                          "charge card"}  # fmt: skip
    publish = spans["traced publish"]
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in spans.values()} == {trace_id}
    assert (
        publish.parent is not None and publish.parent.span_id == request.get_span_context().span_id
    )
    assert publish.kind is SpanKind.PRODUCER
    # The event carries the publish span's context as the CloudEvents tracing extension.
    assert sent.traceparent is not None
    assert sent.traceparent.startswith(f"00-{trace_id:032x}-{publish.context.span_id:016x}-")
    for name in ("billing", "audit"):
        process = spans[f"{name} process"]
        assert process.kind is SpanKind.CONSUMER
        assert process.parent is not None and process.parent.span_id == publish.context.span_id
        attributes = dict(process.attributes or {})
        assert attributes["messaging.destination.subscription.name"] == name
        assert attributes["cloudevents.event_type"] == "order.placed"
        assert attributes["messaging.message.id"] == sent.id
        assert attributes["messaging.message.conversation_id"] == "req-7"
        assert (attributes["wowevent.attempt"], attributes["wowevent.replayed"]) == (1, False)
    # The handler's own spans are children of its delivery span.
    charge = spans["charge card"]
    assert charge.parent is not None
    assert charge.parent.span_id == spans["billing process"].context.span_id


def test_a_failing_handler_marks_its_span_and_a_forwarded_context_is_kept(
    traced: tuple[TestBus, TracerProvider, InMemorySpanExporter],
) -> None:
    bus, _, exporter = traced
    bus.publish_event(Event(type="order.placed", data={"fail": True}, traceparent=FOREIGN))
    bus.drain()
    spans = by_name(exporter.get_finished_spans())
    billing = spans["billing process"]
    assert billing.status.status_code is StatusCode.ERROR
    assert [e.name for e in billing.events] == ["exception"]
    # An event arriving with a trace context (from another service) keeps it.
    assert f"{billing.context.trace_id:032x}" == FOREIGN.split("-")[1]
    assert billing.parent is not None and f"{billing.parent.span_id:016x}" == FOREIGN.split("-")[2]
    assert spans["audit process"].status.status_code is StatusCode.UNSET


def test_a_re_published_delivery_is_marked_replayed(
    traced: tuple[TestBus, TracerProvider, InMemorySpanExporter],
) -> None:
    bus, _, exporter = traced
    event = bus.publish("order.placed", {})
    bus.drain()
    # What a dead-letter re-drive pushes: the event again, stamped with its re-publish time.
    queue = bus.subscribers["billing"].queue
    prepared = wire.prepare(event.to_json(), event_type=event.type)
    again = wire.task_message(prepared, task="billing", task_id="redriven", queue=queue,
                              sender="test", resent_at=time.time())  # fmt: skip
    bus.memory.pending.append((queue, again))
    bus.drain()
    billing = [s for s in exporter.get_finished_spans() if s.name == "billing process"]
    assert [dict(s.attributes or {})["wowevent.replayed"] for s in billing] == [False, True]


def test_without_publish_spans_events_carry_the_current_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = TestBus(Celery("tr", set_as_current=False), exchange="light")
    enable_tracing(bus, provider, publish_spans=False)
    bus.subscriber("order.*", name="billing")(lambda event: None)
    untraced = bus.publish("order.placed", {})  # no span current: nothing to carry
    with provider.get_tracer("web").start_as_current_span("POST /orders") as request:
        sent = bus.publish("order.placed", {})
    bus.drain()
    assert untraced.traceparent is None
    context = request.get_span_context()
    assert sent.traceparent is not None
    assert sent.traceparent.startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["POST /orders", "billing process", "billing process"]
    traced = [s for s in spans if s.parent is not None]
    assert len(traced) == 1
    assert traced[0].parent is not None and traced[0].parent.span_id == context.span_id


def test_without_opentelemetry_the_bus_works_and_tracing_is_refused_clearly() -> None:
    # redis-py imports OpenTelemetry itself when it is installed: hide it, as if it were not.
    code = """
import sys
sys.modules["opentelemetry"] = None
import wowevent_kombu, wowevent_kombu.cli
from celery import Celery
from wowevent_kombu.testing import TestBus
bus = TestBus(Celery("x", set_as_current=False), exchange="x")
bus.subscriber("a.*", name="s")(lambda event: None)
bus.publish("a.b", {})
assert [d.state for d in bus.drain()] == ["SUCCESS"]
try:
    wowevent_kombu.enable_tracing(bus)
except wowevent_kombu.ConfigurationError as exc:
    print(exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "pip install 'wowevent-kombu[otel]'" in done.stdout


def test_an_async_publish_runs_in_its_span_across_the_await(redis_url: str, exchange: str) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    bus = EventBus(Celery("tr", broker=redis_url, set_as_current=False), exchange=exchange)
    enable_tracing(bus, provider)
    bus.transport.bind(f"{exchange}.billing", ["order.*"])

    async def publish() -> Event:
        sent = await bus.apublish("order.placed", {})
        await bus.aclose()
        return sent

    with provider.get_tracer("web").start_as_current_span("POST /orders") as request:
        sent = asyncio.run(publish())
    bus.close()
    spans = by_name(exporter.get_finished_spans())
    publish_span = spans[f"{exchange} publish"]
    assert publish_span.parent is not None
    assert publish_span.parent.span_id == request.get_span_context().span_id
    assert sent.traceparent is not None
    assert f"{publish_span.context.span_id:016x}" == sent.traceparent.split("-")[2]
