"""Failure bookkeeping: reasons, and the dead-letter middleware run in-process by Celery."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from billiard.exceptions import WorkerLostError
from celery import Celery
from celery.exceptions import Retry

from wowevent_kombu import EventBus, Reject
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import EventEncodingError, InvalidEventError
from wowevent_kombu.core.event import Event
from wowevent_kombu.worker.failures import classify


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


def test_an_attempt_is_in_the_history_before_its_retry_is_sent(
    redis_url: str, redis_client: redis.Redis, exchange: str
) -> None:
    """Another worker may run (and finally fail) the retry before Celery's ``on_retry`` runs."""
    bus = EventBus(Celery("h", broker=redis_url, set_as_current=False), exchange=exchange)

    @bus.subscriber("order.*", name="flaky", max_retries=2)
    def flaky(event: Event) -> None: ...

    task = bus.subscribers["flaky"].task
    queue = task.wowevent_queue
    event = Event(type="order.created", data={}, source="t")
    seen_at_send: list[int] = []
    history = names.retry_history_key(exchange, "task-1")
    sent = task.apply_async

    def apply_async(*args: Any, **options: Any) -> Any:
        seen_at_send.append(redis_client.llen(history))
        return sent(*args, **options)

    task.apply_async = apply_async  # the retry is sent through the task's apply_async
    task.push_request(
        id="task-1", retries=0, kwargs={"event": event.to_cloudevent()}, called_directly=False
    )
    try:
        try:
            raise RuntimeError("first attempt")
        except RuntimeError as exc:
            with pytest.raises(Retry):
                task.retry(exc=exc, countdown=60)
    finally:
        task.pop_request()
        del task.apply_async
    assert seen_at_send == [1]
    assert redis_client.llen(queue) == 1  # the retry really was sent
    [raw] = redis_client.lrange(history, 0, -1)
    attempt = json.loads(raw)
    assert (attempt["number"], attempt["message"]) == (1, "first attempt")
    assert "RuntimeError: first attempt" in attempt["traceback"]
    bus.close()
