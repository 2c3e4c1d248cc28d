"""OpenTelemetry tracing: trace context in every event, a span per publish and per delivery.

Optional (``pip install 'wowevent-kombu[otel]'``): nothing imports OpenTelemetry until
:func:`enable_tracing` is called, and a bus that never calls it pays one ``None`` check per
publish. Once enabled:

- a publish runs in a ``<exchange> publish`` span (kind ``PRODUCER``), a child of whatever
  span is current (a web request's, say), and stamps that span's W3C trace context into each
  event as the CloudEvents distributed-tracing extension (``traceparent``, ``tracestate``);
  an event that already carries one (forwarded from another service) keeps it. With
  ``publish_spans=False`` the events carry the current span's context and no span is made;
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

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from wowevent_kombu.core import names
from wowevent_kombu.core.errors import ConfigurationError
from wowevent_kombu.observability.metrics import resent_at
from wowevent_kombu.worker.delivery import context_of
from wowevent_kombu.worker.middleware import Middleware

if TYPE_CHECKING:
    from opentelemetry.trace import TracerProvider

    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.delivery import DeliveryTask

SYSTEM = "wowevent"
"""``messaging.system`` of every span the bus makes."""

INSTRUMENTATION_NAME = "wowevent_kombu"


class BusTracing:
    """The tracer of one bus and the two things it does: publish spans and delivery spans.

    Made by :func:`enable_tracing`; kept as ``bus.tracing``.

    Args:
        exchange: The bus's exchange.
        tracer_provider: Where spans go; the global provider when omitted.
        publish_spans: Open a producer span per publish. Off, events carry the context of
            the span current at publish (a request's) and the publish costs no span.
    """

    def __init__(
        self,
        exchange: str,
        tracer_provider: TracerProvider | None = None,
        *,
        publish_spans: bool = True,
    ) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.exchange = exchange
        self.publish_spans = publish_spans
        self._context = context
        self._trace = trace
        self._propagator = TraceContextTextMapPropagator()
        self.tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
        self._publish_name = f"{exchange} publish"
        self._publish_attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.destination.name": exchange,
        }

    def start_publish(self, events: Sequence[Event]) -> tuple[Any, Any, list[Event]]:
        """Open the producer span of a publish of ``events`` and make it current.

        With ``publish_spans`` off, no span is opened: the events take the current span's
        context (the span and token returned are then ``None``).

        Returns:
            The span, the token :meth:`end_publish` detaches, and the events stamped with the
            span's trace context (those already carrying one keep theirs).
        """
        trace = self._trace
        if not self.publish_spans:
            return None, None, self._stamp(events, trace.get_current_span().get_span_context())
        attributes = dict(self._publish_attributes)
        if len(events) == 1:
            attributes["messaging.message.id"] = events[0].id
            attributes["cloudevents.event_type"] = events[0].type
        else:
            attributes["messaging.batch.message_count"] = len(events)
        span = self.tracer.start_span(
            self._publish_name, kind=trace.SpanKind.PRODUCER, attributes=attributes
        )
        token = self._context.attach(trace.set_span_in_context(span))
        return span, token, self._stamp(events, span.get_span_context())

    @staticmethod
    def _stamp(events: Sequence[Event], found: Any) -> list[Event]:
        if not found.is_valid:  # no span, or no SDK configured: there is no context to carry
            return list(events)
        # The W3C header, written directly: the propagator would look the span up again.
        parent = f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"
        state = (found.trace_state.to_header() or None) if found.trace_state else None
        return [
            e if e.traceparent is not None else replace(e, traceparent=parent, tracestate=state)
            for e in events
        ]

    def end_publish(self, opened: tuple[Any, Any], exc: BaseException | None) -> None:
        """Close a span :meth:`start_publish` opened, recording ``exc`` when the publish failed."""
        if opened[0] is not None:
            self.end_delivery(opened, exc)

    def start_delivery(
        self, subscriber: str, event: Event, attempt: int, *, replayed: bool = False
    ) -> tuple[Any, Any]:
        """Open ``subscriber``'s delivery span of ``event`` and make it current.

        ``replayed``: the delivery was re-published (a replay of the log or a dead-letter
        re-drive), as the metrics' ``replayed`` label says.

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
            "wowevent.replayed": replayed or event.replayed,
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
        replayed = resent_at(task.request) is not None
        opened = self.tracing.start_delivery(
            task.wowevent_subscriber, event, attempt, replayed=replayed
        )
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


class TracedBus(Protocol):
    """What :func:`enable_tracing` needs of a bus (an :class:`~wowevent_kombu.EventBus`)."""

    exchange: str
    tracing: BusTracing | None
    middleware: list[Middleware]


def enable_tracing(
    bus: TracedBus, tracer_provider: TracerProvider | None = None, *, publish_spans: bool = True
) -> BusTracing:
    """Trace ``bus`` with OpenTelemetry: publish spans, trace context in events, delivery spans.

    Call it where the bus is created (in the publishing processes and the workers alike),
    after :func:`~wowevent_kombu.observability.telemetry.instrument` if both are used, so the
    delivery span encloses every other hook. Spans go to ``tracer_provider``, else to the
    global one the application configured. ``publish_spans=False`` leaves out the producer
    span of each publish (events then carry the current span's context): an SDK span costs
    tens of microseconds of CPU, a large share of a publish (``make bench-tracing``).

    Raises:
        ConfigurationError: OpenTelemetry is not installed.
    """
    try:
        tracing = BusTracing(bus.exchange, tracer_provider, publish_spans=publish_spans)
    except ImportError as exc:
        raise ConfigurationError(
            "tracing needs OpenTelemetry's API: pip install 'wowevent-kombu[otel]'"
        ) from exc
    bus.tracing = tracing
    bus.middleware.insert(0, TracingMiddleware(tracing))
    return tracing
