"""Counters and histograms of the metrics middleware, on the in-memory test double."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from celery import Celery
from celery.exceptions import Reject
from prometheus_client import CollectorRegistry

from wowevent_kombu import EventValidationError, InvalidEventError, MetricsMiddleware, instrument
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.wire import RESENT_HEADER
from wowevent_kombu.observability.metrics import (
    DEAD_LETTERED_MARK,
    BusMetrics,
    DeliverySink,
    seconds_since,
)
from wowevent_kombu.testing import TestBus


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    got = registry.get_sample_value(name, labels)
    return 0.0 if got is None else got


@pytest.fixture
def observed() -> tuple[TestBus, CollectorRegistry]:
    bus = TestBus(Celery("m", set_as_current=False), exchange="metrics")
    registry = CollectorRegistry()
    instrument(bus, registry)

    @bus.subscriber("order.*", name="billing")
    def billing(event: Any) -> None:
        if event.data.get("fail"):
            raise ValueError("declined")

    @bus.subscriber("order.*", name="flaky", bind=True, autoretry_for=(RuntimeError,),
                    max_retries=2, default_retry_delay=0)  # fmt: skip
    def flaky(task: Any, event: Any) -> None:
        if task.request.retries < event.data.get("flaky", 0):
            raise RuntimeError("later")

    return bus, registry


def test_publishes_unroutables_and_outcomes_are_counted(
    observed: tuple[TestBus, CollectorRegistry],
) -> None:
    bus, registry = observed
    assert isinstance(bus.middleware[0], MetricsMiddleware)
    bus.publish("order.placed", {})
    bus.publish("order.placed", {"fail": True, "flaky": 2})
    bus.publish("nobody.cares", {})
    bus.drain()
    ex = {"exchange": "metrics"}
    assert value(registry, "wowevent_events_published_total", **ex, type="order.placed") == 2
    assert value(registry, "wowevent_events_unroutable_total", **ex, type="nobody.cares") == 1
    deliveries = "wowevent_deliveries_total"
    assert value(registry, deliveries, **ex, subscriber="billing", outcome="succeeded") == 1
    assert value(registry, deliveries, **ex, subscriber="billing", outcome="failed") == 1
    assert value(registry, deliveries, **ex, subscriber="flaky", outcome="retried") == 2
    assert value(registry, deliveries, **ex, subscriber="flaky", outcome="succeeded") == 2
    count = "wowevent_handler_duration_seconds_count"
    assert value(registry, count, **ex, subscriber="billing") == 2
    assert (
        value(
            registry, "wowevent_end_to_end_latency_seconds_count",
            **ex, subscriber="flaky", replayed="false",
        )
        == 4
    )  # fmt: skip


def test_invalid_events_count_as_publish_validation_failures(
    observed: tuple[TestBus, CollectorRegistry],
) -> None:
    bus, registry = observed
    with pytest.raises(InvalidEventError):
        bus.publish("Not A Type", {})
    with pytest.raises(InvalidEventError):
        bus.publish("order.placed", {"blob": "x" * 300_000})
    failures = "wowevent_validation_failures_total"
    assert value(registry, failures, exchange="metrics", stage="publish") == 2
    assert value(registry, "wowevent_events_published_total", exchange="metrics",
                 type="order.placed") == 0  # fmt: skip


class FakeTask:
    wowevent_subscriber = "sub"

    def __init__(self) -> None:
        self.request = type("Request", (), {})()


@pytest.mark.parametrize(
    ("exc", "event_known", "mark", "outcome"),
    [
        (ValueError("x"), True, False, "failed"),
        (ValueError("x"), True, True, "dead_lettered"),
        (InvalidEventError("bad"), False, False, "rejected"),
        (
            EventValidationError("breaks its schema", event_type="order.placed"),
            True,
            False,
            "rejected",
        ),
    ],
)
def test_failure_outcomes(exc: BaseException, event_known: bool, mark: bool, outcome: str) -> None:
    registry = CollectorRegistry()
    middleware = MetricsMiddleware(BusMetrics(registry, "x"))
    task = FakeTask()
    if mark:
        setattr(task.request, DEAD_LETTERED_MARK, True)
    middleware.on_failure(task, object() if event_known else None, exc, None)  # type: ignore[arg-type]
    labels = {"exchange": "x", "subscriber": "sub", "outcome": outcome}
    assert registry.get_sample_value("wowevent_deliveries_total", labels) == 1
    consume = registry.get_sample_value(
        "wowevent_validation_failures_total", {"exchange": "x", "stage": "consume"}
    )
    assert consume == (1 if isinstance(exc, InvalidEventError) else None)


class Sink(DeliverySink):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, float | None, float | None]] = []

    def record(self, subscriber: str, outcome: str, delivery: Any, end_to_end: Any) -> None:
        self.seen.append((subscriber, outcome, delivery, end_to_end))


@pytest.mark.parametrize("resent", [None, "now", True, "2026-01-01", float("nan")])
def test_a_resent_delivery_is_timed_from_its_re_publish_apart_from_first_deliveries(
    resent: object,
) -> None:
    registry = CollectorRegistry()
    sink = Sink()
    middleware = MetricsMiddleware(BusMetrics(registry, "x"), sink)
    task = FakeTask()
    hour_old = Event(type="order.placed", data={}, time=datetime.now(UTC) - timedelta(hours=1))
    if resent is not None:
        setattr(task.request, RESENT_HEADER, time.time() if resent == "now" else resent)
    middleware.before_handle(task, hour_old)  # type: ignore[arg-type]
    middleware.after_handle(task, hour_old, result=None, exc=None)  # type: ignore[arg-type]
    middleware.on_success(task, hour_old, None)  # type: ignore[arg-type]
    replayed = resent == "now"  # a header that is not a finite number is not trusted
    labels = {"exchange": "x", "subscriber": "sub"}
    for flag in ("true", "false"):
        within = registry.get_sample_value(
            "wowevent_end_to_end_latency_seconds_bucket", {**labels, "replayed": flag, "le": "60.0"}
        )
        total = registry.get_sample_value(
            "wowevent_end_to_end_latency_seconds_count", {**labels, "replayed": flag}
        )
        if (flag == "true") == replayed:
            assert (within, total) == ((1.0, 1.0) if replayed else (0.0, 1.0))
        else:
            assert total is None
    ((name, outcome, delivery, end_to_end),) = sink.seen
    assert (name, outcome) == ("sub", "succeeded")
    # The window behind status and health holds first deliveries' latency only.
    assert (delivery is None) == replayed
    assert (end_to_end is None) == replayed


def test_latency_is_never_negative_under_clock_skew() -> None:
    future = datetime.now(UTC) + timedelta(seconds=5)
    assert seconds_since(future, datetime.now(UTC).timestamp()) == 0.0


def test_a_rejected_delivery_is_counted_once(observed: tuple[TestBus, CollectorRegistry]) -> None:
    bus, registry = observed

    @bus.subscriber("refuse.*", name="refuser")
    def refuser(event: Any) -> None:
        raise Reject("not for us", requeue=False)

    bus.publish("refuse.this", {})
    assert [d.state for d in bus.drain()] == ["REJECTED"]
    labels = {"exchange": "metrics", "subscriber": "refuser"}
    for outcome in ("rejected", "failed", "succeeded"):
        got = registry.get_sample_value("wowevent_deliveries_total", {**labels, "outcome": outcome})
        assert got == (1 if outcome == "rejected" else None)
