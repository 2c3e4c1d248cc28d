"""Prometheus metrics of one process: what it published and what its subscribers handled.

Counters and histograms live on a registry the caller passes in (never the global default). Under
Celery's prefork pool each pool child counts in its own process: run the worker with
``PROMETHEUS_MULTIPROC_DIR`` set so prometheus-client keeps the values in shared files that the
worker's metrics port adds up (see :mod:`wowevent_kombu.observability.telemetry`). Cluster-wide
gauges (queue depth, oldest waiting event, DLQ size) are not here: they are read from Redis at
scrape time by :class:`wowevent_kombu.observability.collector.ClusterCollector`.

Latency histograms carry a ``replayed`` label: ``"false"`` for first deliveries (and their
retries), measured from the event's time; ``"true"`` for deliveries re-published by a replay of
the log or a dead-letter re-drive, measured from their re-publish, since the event time of a
day-old event says nothing about how fast the bus is now.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from celery.exceptions import Reject
from prometheus_client import CollectorRegistry, Counter, Histogram

from wowevent_kombu.core.errors import EventValidationError, InvalidEventError
from wowevent_kombu.core.wire import RESENT_HEADER
from wowevent_kombu.worker.delivery import context_of
from wowevent_kombu.worker.middleware import Middleware

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.delivery import DeliveryTask

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Histogram bucket bounds in seconds: 0.5 ms to 60 s, about three per decade."""

OUTCOMES = ("succeeded", "retried", "failed", "dead_lettered", "rejected")
"""Delivery outcomes counted by ``wowevent_deliveries_total``; each attempt has exactly one."""

DEAD_LETTERED_MARK = "wowevent_dead_lettered"
"""Attribute a dead-letter middleware of your own sets to a true value on ``task.request`` in
its ``on_failure`` hook once the record is written; the delivery then counts as
``dead_lettered`` instead of ``failed`` (the bus's own sets ``dead_lettered`` on the
:class:`~wowevent_kombu.worker.delivery.DeliveryContext`). Register :class:`MetricsMiddleware`
before the dead-letter middleware so its ``on_failure`` (run in reverse order) sees the mark."""

STAGE_PUBLISH = "publish"
STAGE_CONSUME = "consume"


class BusMetrics:
    """The counters and histograms of one bus in one process.

    Args:
        registry: Where the metrics are registered; a private ``CollectorRegistry`` per bus
            keeps tests and several buses apart.
        exchange: Value of the ``exchange`` label on every series.
    """

    def __init__(self, registry: CollectorRegistry, exchange: str) -> None:
        self.registry = registry
        self.exchange = exchange
        common = ["exchange"]
        per_sub = ["exchange", "subscriber"]
        self.published = Counter(
            "wowevent_events_published", "Events published, by type.",
            [*common, "type"], registry=registry,
        )  # fmt: skip
        self.unroutable = Counter(
            "wowevent_events_unroutable", "Published events that matched no subscriber.",
            [*common, "type"], registry=registry,
        )  # fmt: skip
        self.deliveries = Counter(
            "wowevent_deliveries", "Delivery attempts by subscriber and outcome.",
            [*per_sub, "outcome"], registry=registry,
        )  # fmt: skip
        self.validation_failures = Counter(
            "wowevent_validation_failures", "Events refused as invalid, by stage.",
            [*common, "stage"], registry=registry,
        )  # fmt: skip
        self.handler_duration = Histogram(
            "wowevent_handler_duration_seconds", "Time the subscriber's handler ran.",
            per_sub, registry=registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.delivery_latency = Histogram(
            "wowevent_delivery_latency_seconds",
            "Event time (replayed: re-publish time) to handler start, retry delays included.",
            [*per_sub, "replayed"], registry=registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip
        self.end_to_end_latency = Histogram(
            "wowevent_end_to_end_latency_seconds",
            "Event time (replayed: re-publish time) to handler done.",
            [*per_sub, "replayed"], registry=registry, buckets=LATENCY_BUCKETS,
        )  # fmt: skip

        # Labelled children, looked up once per subscriber (and outcome): prometheus-client's
        # ``labels()`` validates and locks on every call, a fifth of the per-delivery hooks.
        self._timings: dict[tuple[str, bool], tuple[Any, Any, Any]] = {}
        self._outcomes: dict[tuple[str, str], Any] = {}

    def timings(self, subscriber: str, replayed: bool = False) -> tuple[Any, Any, Any]:
        """``subscriber``'s delivery latency, handler duration and end-to-end histograms.

        ``replayed`` picks the latency series of re-published deliveries (replays, re-drives).
        """
        found = self._timings.get((subscriber, replayed))
        if found is None:
            labels = (self.exchange, subscriber)
            flag = "true" if replayed else "false"
            found = self._timings[(subscriber, replayed)] = (
                self.delivery_latency.labels(*labels, flag),
                self.handler_duration.labels(*labels),
                self.end_to_end_latency.labels(*labels, flag),
            )
        return found

    def record_published(self, events: Sequence[Event], routes: Sequence[Sequence[str]]) -> None:
        """Count a committed publish: ``routes[i]`` are the queues ``events[i]`` reached."""
        for event, queues in zip(events, routes, strict=False):
            self.published.labels(self.exchange, event.type).inc()
            if not queues:
                self.unroutable.labels(self.exchange, event.type).inc()

    def record_validation_failure(self, stage: str) -> None:
        """Count an event refused as invalid at ``stage`` (``publish``, ``consume``, ...)."""
        self.validation_failures.labels(self.exchange, stage).inc()

    def record_outcome(self, subscriber: str, outcome: str) -> None:
        """Count one delivery attempt's outcome (one of :data:`OUTCOMES`)."""
        key = (subscriber, outcome)
        counter = self._outcomes.get(key)
        if counter is None:
            counter = self._outcomes[key] = self.deliveries.labels(self.exchange, *key)
        counter.inc()


def seconds_since(moment: datetime, now: float) -> float:
    """Seconds from ``moment`` to the epoch time ``now``; never negative (clock skew)."""
    return max(0.0, now - moment.timestamp())


def resent_at(request: Any) -> float | None:
    """Epoch seconds when a replay or re-drive re-published this delivery; ``None`` for a
    first delivery (or a header that is not a finite number)."""
    value = getattr(request, RESENT_HEADER, None)
    if value is None:
        # A worker sets custom message headers as request attributes; an eager apply (the
        # test double) leaves them in ``request.headers``.
        headers = getattr(request, "headers", None)
        value = headers.get(RESENT_HEADER) if isinstance(headers, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


class MetricsMiddleware(Middleware):
    """Times every delivery and counts its outcome into a :class:`BusMetrics`.

    ``sink`` (optional) also receives every finished attempt, which is how the rolling window
    behind ``wowevent status`` is fed (:class:`wowevent_kombu.observability.window.WindowRecorder`).
    """

    def __init__(self, metrics: BusMetrics, sink: DeliverySink | None = None) -> None:
        self.metrics = metrics
        self.sink = sink

    def before_handle(self, task: DeliveryTask, event: Event) -> None:
        now = time.time()
        context = context_of(task.request)
        context.timer = (now, time.perf_counter())
        resent = resent_at(task.request)
        context.resent_at = resent
        latency = seconds_since(event.time, now) if resent is None else max(0.0, now - resent)
        context.delivery_latency = latency
        self.metrics.timings(task.wowevent_subscriber, resent is not None)[0].observe(latency)

    def after_handle(
        self, task: DeliveryTask, event: Event, *, result: Any, exc: BaseException | None
    ) -> None:
        context = context_of(task.request)
        started = context.timer
        if started is None:
            return
        name = task.wowevent_subscriber
        duration = time.perf_counter() - started[1]
        done = started[0] + duration
        resent = context.resent_at
        end_to_end = seconds_since(event.time, done) if resent is None else max(0.0, done - resent)
        context.end_to_end = end_to_end
        _, handler, whole = self.metrics.timings(name, resent is not None)
        handler.observe(duration)
        whole.observe(end_to_end)
        if isinstance(exc, Reject):
            # Celery calls neither on_failure nor on_success for a rejected delivery.
            self._finish(task, "rejected")

    def on_success(self, task: DeliveryTask, event: Event | None, result: Any) -> None:
        self._finish(task, "succeeded")

    def on_retry(
        self, task: DeliveryTask, event: Event | None, exc: BaseException, einfo: Any
    ) -> None:
        self._finish(task, "retried")

    def on_failure(
        self, task: DeliveryTask, event: Event | None, exc: BaseException, einfo: Any
    ) -> None:
        # Refused as invalid: not a CloudEvent at all (no event), or data breaking its schema.
        if isinstance(exc, EventValidationError) or (
            isinstance(exc, InvalidEventError) and event is None
        ):
            self.metrics.record_validation_failure(STAGE_CONSUME)
            outcome = "rejected"
        elif context_of(task.request).dead_lettered or getattr(
            task.request, DEAD_LETTERED_MARK, False
        ):
            outcome = "dead_lettered"
        else:
            outcome = "failed"
        self._finish(task, outcome)

    def _finish(self, task: DeliveryTask, outcome: str) -> None:
        name = task.wowevent_subscriber
        self.metrics.record_outcome(name, outcome)
        if self.sink is not None:
            context = context_of(task.request)
            if context.resent_at is not None:
                # The window (status, health) shows first deliveries' latency only.
                self.sink.record(name, outcome, None, None)
            else:
                self.sink.record(name, outcome, context.delivery_latency, context.end_to_end)


class DeliverySink:
    """Receives every finished delivery attempt (see :class:`MetricsMiddleware`)."""

    def record(
        self,
        subscriber: str,
        outcome: str,
        delivery_latency: float | None,
        end_to_end: float | None,
    ) -> None:
        """One attempt of ``subscriber`` ended with ``outcome``; latencies in seconds if known."""
