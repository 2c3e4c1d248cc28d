"""Failure bookkeeping: reasons, and the dead-letter middleware run in-process by Celery."""

from __future__ import annotations

import pytest
from billiard.exceptions import WorkerLostError
from celery import Celery

from wowevent_kombu import EventBus, Reject
from wowevent_kombu.errors import EventEncodingError, InvalidEventError
from wowevent_kombu.event import Event
from wowevent_kombu.failures import classify


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RuntimeError("x"), "exhausted"),
        (Reject("no"), "rejected"),
        (KeyError("k"), "rejected"),
        (InvalidEventError("bad"), "invalid"),
        (EventEncodingError("bad"), "invalid"),
        (WorkerLostError("gone"), "worker_lost"),
    ],
)
def test_reasons(exc: BaseException, expected: str) -> None:
    assert classify(exc, (KeyError,)) == expected


def test_every_subscriber_refuses_to_retry_invalid_events_and_rejects(
    redis_url: str, exchange: str
) -> None:
    bus = EventBus(Celery("r", broker=redis_url, set_as_current=False), exchange=exchange)

    @bus.subscriber("order.*", name="billing", dont_autoretry_for=(KeyError,))
    def billing(event: Event) -> None: ...

    task = bus.subscribers["billing"].task
    assert KeyError in task.dont_autoretry_for
    assert InvalidEventError in task.dont_autoretry_for
    assert Reject in task.dont_autoretry_for


def test_middleware_records_in_process_and_applies_the_retention(
    redis_url: str, exchange: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Celery's eager ``apply`` runs the same trace, hooks and middleware as a worker."""
    bus = EventBus(
        Celery("e", broker=redis_url, set_as_current=False),
        exchange=exchange,
        dead_letter_retention={"max_records": 2},
    )

    @bus.subscriber("order.*", name="eager", max_retries=0)
    def eager(event: Event) -> None:
        raise RuntimeError(f"no {event.data['n']}")

    events = [Event(type="order.created", data={"n": n}, source="t") for n in range(3)]
    for event in events:
        eager.apply(kwargs={"event": event.to_cloudevent()}, task_id=f"task-{event.data['n']}")
    records = bus.dead_letters.list().records
    assert [r.id for r in records] == ["task-1", "task-2"]
    assert records[0].attempts[0].message == "no 1"
    assert records[0].event == events[1].to_cloudevent()
    assert "dropped 1 record(s)" in caplog.text
    bus.close()
