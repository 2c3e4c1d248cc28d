"""OpenTelemetry tracing: trace context in every event, a span per publish and per delivery.

Optional (``pip install 'wowevent-kombu[otel]'``): nothing imports OpenTelemetry until
:func:`enable_tracing` is called, and a bus that never calls it pays one ``None`` check per
publish. Once enabled:

- a publish runs in a ``<exchange> publish`` span (kind ``PRODUCER``), a child of whatever
  span is current (a web request's, say), and stamps that span's W3C trace context into each
  event as the CloudEvents distributed-tracing extension (``traceparent``, ``tracestate``);
  an event that already carries one (forwarded from another service) keeps it;
- every delivery runs in a ``<subscriber> process`` span (kind ``CONSUMER``) whose parent is
  the context the event carries, so one trace shows request -> publish -> every subscriber,
  across processes. The handler runs inside it: its own spans join that trace.

Beside ``opentelemetry-instrumentation-celery``: that instrumentation opens a ``run/<task>``
span per task from Celery's message headers, which the bus's messages do not carry, so it is
the root of a trace of its own. The delivery span does not nest in it (that would split one
delivery over two traces, or give it two consumer spans); it links to it instead, and the
handler's spans are children of the delivery span.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from wowevent_kombu.core import names
from wowevent_kombu.core.errors import ConfigurationError
from wowevent_kombu.worker.delivery import context_of
from wowevent_kombu.worker.middleware import Middleware

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from wowevent_kombu.bus import EventBus
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.delivery import DeliveryTask

SYSTEM = "wowevent"
"""``messaging.system`` of every span the bus makes."""

INSTRUMENTATION_NAME = "wowevent_kombu"


class BusTracing:
    """The tracer of one bus and the two things it does: publish spans and delivery spans.

    Made by :func:`enable_tracing`; kept as ``bus.tracing``.
    """

    def __init__(self, exchange: str, tracer_provider: TracerProvider | None = None) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.exchange = exchange
        self._context = context
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self.tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)

    @contextmanager
    def publishing(self, events: Sequence[Event]) -> Iterator[list[Event]]:
        """Run a publish of ``events`` in a producer span; yields them with its trace context."""
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": self.exchange,
        }
        if len(events) == 1:
            attributes.update(_event_attributes(events[0]))
        else:
            attributes["messaging.batch.message_count"] = len(events)
        with self.tracer.start_as_current_span(
            f"{self.exchange} publish", kind=self._trace.SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            parent = carrier.get("traceparent")
            if parent is None:  # no SDK configured: a non-recording span carries no context
                yield list(events)
                return
            state = carrier.get("tracestate")
            yield [
                e
                if e.traceparent is not None
                else dataclasses.replace(e, traceparent=parent, tracestate=state)
                for e in events
            ]

    def start_delivery(self, subscriber: str, event: Event, attempt: int) -> tuple[Any, Any]:
        """Open ``subscriber``'s delivery span of ``event`` and make it current.

        Returns:
            The span and the token that :meth:`end_delivery` detaches.
        """
        trace = self._trace
        current = trace.get_current_span()
        links = []
        parent = None
        if event.traceparent is not None:
            carrier = {"traceparent": event.traceparent}
            if event.tracestate is not None:
                carrier["tracestate"] = event.tracestate
            parent = self._propagator.extract(carrier)
            if current.get_span_context().is_valid:
                # Celery's own instrumentation span: a trace of its own, linked, not nested.
                links.append(trace.Link(current.get_span_context()))
        attributes = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": names.queue_name(self.exchange, subscriber),
            "messaging.destination.subscription.name": subscriber,
            "wowevent.subscriber": subscriber,
            "wowevent.attempt": attempt,
            "wowevent.replayed": event.replayed,
            **_event_attributes(event),
        }
        span = self.tracer.start_span(
            f"{subscriber} process", context=parent, kind=trace.SpanKind.CONSUMER,
            attributes=attributes, links=links,
        )  # fmt: skip
        token = self._context.attach(trace.set_span_in_context(span))
        return span, token

    def end_delivery(self, opened: tuple[Any, Any], exc: BaseException | None) -> None:
        """Close a span :meth:`start_delivery` opened, recording ``exc`` when the handler raised."""
        span, token = opened
        if exc is not None:
            span.record_exception(exc)
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, type(exc).__name__))
        span.end()
        self._context.detach(token)


def _event_attributes(event: Event) -> dict[str, Any]:
    out: dict[str, Any] = {
        "messaging.message.id": event.id,
        "cloudevents.event_id": event.id,
        "cloudevents.event_type": event.type,
        "cloudevents.event_source": event.source,
    }
    if event.correlation_id is not None:
        out["messaging.message.conversation_id"] = event.correlation_id
    return out


class TracingMiddleware(Middleware):
    """Runs each delivery in its subscriber's ``process`` span (see :class:`BusTracing`)."""

    def __init__(self, tracing: BusTracing) -> None:
        self.tracing = tracing

    def before_handle(self, task: DeliveryTask, event: Event) -> None:
        attempt = int(getattr(task.request, "retries", 0) or 0) + 1
        opened = self.tracing.start_delivery(task.wowevent_subscriber, event, attempt)
        context_of(task.request).span = opened

    def after_handle(
        self, task: DeliveryTask, event: Event, *, result: Any, exc: BaseException | None
    ) -> None:
        self._end(task, exc)

    # A later middleware's SkipDelivery skips after_handle: Celery's outcome hooks close it.
    def on_success(self, task: DeliveryTask, event: Event | None, result: Any) -> None:
        self._end(task, None)

    def on_retry(
        self, task: DeliveryTask, event: Event | None, exc: BaseException, einfo: Any
    ) -> None:
        self._end(task, exc)

    def on_failure(
        self, task: DeliveryTask, event: Event | None, exc: BaseException, einfo: Any
    ) -> None:
        self._end(task, exc)

    def _end(self, task: DeliveryTask, exc: BaseException | None) -> None:
        context = context_of(task.request)
        opened, context.span = context.span, None
        if opened is not None:
            self.tracing.end_delivery(opened, exc)


def enable_tracing(bus: EventBus, tracer_provider: TracerProvider | None = None) -> BusTracing:
    """Trace ``bus`` with OpenTelemetry: publish spans, trace context in events, delivery spans.

    Call it where the bus is created (in the publishing processes and the workers alike),
    after :func:`~wowevent_kombu.observability.telemetry.instrument` if both are used, so the
    delivery span encloses every other hook. Spans go to ``tracer_provider``, else to the
    global one the application configured.

    Raises:
        ConfigurationError: OpenTelemetry is not installed.
    """
    try:
        tracing = BusTracing(bus.exchange, tracer_provider)
    except ImportError as exc:
        raise ConfigurationError(
            "tracing needs OpenTelemetry's API: pip install 'wowevent-kombu[otel]'"
        ) from exc
    bus.tracing = tracing
    bus.middleware.insert(0, TracingMiddleware(tracing))
    return tracing
