"""Malformed queue entries: recorded as dead letters of the subscriber whose queue held them.

A subscriber queue is a plain Redis list: anyone with write access can ``LPUSH`` anything into it
(on RabbitMQ, anyone who may publish to the bus's exchanges can route anything into it). Celery
reports what it cannot run through four consumer callbacks, each of which logs and then rejects
(drops) the message: ``on_decode_error`` (content that is not accepted, e.g. pickle, or a
quarantined entry that was not a message at all, see :mod:`wowevent_kombu.brokers.redis.channel`),
``on_unknown_message`` (no task name), ``on_unknown_task`` (a task this worker does not have) and
``on_invalid_task`` (a refused content type on a subscriber task, or headers Celery cannot use). The
worker step made here wraps them: when the entry came from one of the bus's subscriber queues, a
dead-letter record with reason ``malformed`` is written first, then Celery's own callback logs and
drops it. An entry from any other queue, or one whose record cannot be written, is dropped with
Celery's logged reason. Either way it is never retried.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from celery import bootsteps

from wowevent_kombu.brokers.amqp.dispatch import ConsumedQueues
from wowevent_kombu.brokers.celery.consumer import check_strategies, report_unrunnable
from wowevent_kombu.brokers.redis.entries import MALFORMED_HEADER, SOURCE_QUEUE
from wowevent_kombu.core import names
from wowevent_kombu.deadletters.record import Attempt, DeadLetter
from wowevent_kombu.deadletters.store import DeadLetterStore

log = logging.getLogger(__name__)

RAW_LIMIT = 64 * 1024
"""Characters of a malformed entry's content kept in its dead-letter record."""

_SAFE_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,200}\Z")


def source_queue(message: Any) -> str | None:
    """The queue a message was popped from (as stamped by the guarded channel), if known."""
    properties = getattr(message, "properties", None) or {}
    queue = properties.get(SOURCE_QUEUE)
    if isinstance(queue, str):
        return queue
    info = getattr(message, "delivery_info", None) or {}
    # Without the stamp (another transport) the routing key is the best guess; deliveries of
    # this bus are addressed to their queue through the anonymous exchange.
    routing_key = info.get("routing_key")
    return routing_key if isinstance(routing_key, str) and info.get("exchange") == "" else None


def describe(message: Any, problem: str) -> str:
    """One line saying what is wrong with ``message`` (a quarantined entry says it itself)."""
    headers = getattr(message, "headers", None)
    quarantined = headers.get(MALFORMED_HEADER) if isinstance(headers, dict) else None
    return quarantined if isinstance(quarantined, str) else problem


def raw_content(message: Any) -> str:
    """The entry's body as text (bytes that are not UTF-8 escaped), cut at :data:`RAW_LIMIT`."""
    body = getattr(message, "body", b"")
    if isinstance(body, bytes | bytearray):
        text = bytes(body).decode("utf-8", "backslashreplace")
    else:
        text = str(body)
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "..."


def malformed_record(
    message: Any, subscriber: str, problem: str, *, shared: bool = False
) -> DeadLetter:
    """The dead-letter record of a malformed entry found in ``subscriber``'s queue.

    The record takes the message's task id when it has a usable one, unless the message is
    ``shared``: one message routed into several queues (RabbitMQ), whose copies need records
    of their own.
    """
    headers = getattr(message, "headers", None)
    headers = headers if isinstance(headers, dict) else {}
    task_id = headers.get("id")
    record_id = (
        task_id
        if isinstance(task_id, str) and _SAFE_ID.match(task_id) and not shared
        else f"malformed-{uuid.uuid4().hex}"
    )
    content_type = getattr(message, "content_type", None)
    return DeadLetter(
        id=record_id,
        subscriber=subscriber,
        event_id=None,
        event_type=None,
        event={
            "content_type": content_type,
            "headers": _safe_headers(headers),
            "body": raw_content(message),
        },
        reason="malformed",
        attempts=(
            Attempt(
                number=1,
                exception_type="wowevent_kombu.MalformedMessage",
                message=problem,
                traceback="",
                failed_at=time.time(),
            ),
        ),
    )


def _safe_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    return {str(k)[:200]: repr(v)[:1000] for k, v in list(headers.items())[:50]}


class MalformedEntries:
    """Records malformed entries of one bus's subscriber queues.

    Args:
        subscribers_by_queue: Returns ``{queue: subscriber name}`` for the bus.
        store: Returns the dead-letter store, or ``None`` when the bus records nothing.
        routed_task: The task name routed event messages carry into every subscriber queue
            (RabbitMQ's dispatch task), accepted there beside the subscriber's own task.
    """

    def __init__(
        self,
        subscribers_by_queue: Callable[[], Mapping[str, str]],
        store: Callable[[], DeadLetterStore | None],
        *,
        routed_task: str | None = None,
    ) -> None:
        self._subscribers = subscribers_by_queue
        self._store = store
        self._routed_task = routed_task
        self._allowed: dict[str, frozenset[str | None]] = {}
        self._consumed: ConsumedQueues | None = None

    def queue_of(self, message: Any) -> tuple[str | None, bool]:
        """The queue ``message`` came from, and whether it may be one copy of several."""
        queue = source_queue(message)
        if queue is None and self._consumed is not None:
            return self._consumed.of(message), True  # RabbitMQ: by the delivery's consumer tag
        return queue, False

    def foreign_task(self, message: Any, task: str) -> str | None:
        """Why ``task`` may not run from the queue ``message`` came from, or ``None``.

        A subscriber queue carries its subscriber's task only (and, on RabbitMQ, the routed
        event messages): anything else pushed into it, Celery's built-in tasks included, is
        refused rather than run with the subscriber's queue, retries and dead letters.
        """
        queue, _ = self.queue_of(message)
        allowed = self._allowed.get(queue or "")
        if allowed is None or task in allowed:
            return None
        subscriber = self._subscribers()[queue or ""]
        return (
            f"queue {queue!r} belongs to subscriber {subscriber!r} and carries its task "
            f"{names.task_name(subscriber)!r} only, not {task!r}"
        )

    def record(self, message: Any, problem: str) -> bool:
        """Write the record if ``message`` came from a subscriber queue; ``True`` if written."""
        queue, shared = self.queue_of(message)
        subscriber = self._subscribers().get(queue or "")
        if subscriber is None:
            return False
        store = self._store()
        reason = describe(message, problem)
        if store is None:
            log.error("malformed entry in %s dropped (dead-lettering is off): %s", queue, reason)
            return False
        record = malformed_record(message, subscriber, reason, shared=shared)
        try:
            store.write(record)
        except Exception:
            log.exception("malformed entry in %s dropped: its record could not be written", queue)
            return False
        log.warning(
            "malformed entry in %s dead-lettered as %s (subscriber %s): %s",
            queue, record.id, subscriber, reason,
        )  # fmt: skip
        return True

    def wrap(self, consumer: Any) -> None:
        """Put the recording in front of the consumer's four malformed-message callbacks."""
        self._consumed = ConsumedQueues(consumer)
        report_unrunnable(consumer, self._guard)

    def guard_strategies(self, strategies: dict[str, Any]) -> None:
        """Make every task's strategy refuse messages from another task's subscriber queue.

        Celery picks a message's strategy by the task name the message itself claims; the
        check runs first, so a foreign task never reaches the pool. A refusal raises
        ``InvalidTaskError``, which Celery reports to ``on_invalid_task`` (recorded above).
        """
        # The subscribers are registered when the worker starts its consumer: the tasks each
        # queue may carry are worked out once here, not for every message.
        self._allowed = {
            queue: frozenset({names.task_name(subscriber), self._routed_task} - {None})
            for queue, subscriber in self._subscribers().items()
        }
        check_strategies(strategies, self.foreign_task, self)

    def _guard(self, message: Any, problem: str) -> None:
        try:
            self.record(message, problem)
        except Exception:  # a hook that raises would stop the worker: log, let Celery drop it
            log.exception("could not inspect a malformed message")


def make_malformed_step(name: str, entries: MalformedEntries) -> type[bootsteps.StartStopStep]:
    """A consumer bootstep that records malformed entries of one bus (see the module doc)."""

    class WowEventMalformed(bootsteps.StartStopStep):  # type: ignore[misc]
        """Wraps the consumer's malformed-message callbacks before its task handler is built,
        and each task's strategy once the Tasks step has (re)built them."""

        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, consumer: Any, **kwargs: Any) -> None:
            super().__init__(consumer, **kwargs)
            entries.wrap(consumer)

        def start(self, consumer: Any) -> None:
            entries.guard_strategies(consumer.strategies)

    WowEventMalformed.name = f"wowevent_kombu.worker.malformed.WowEventMalformed[{name}]"
    return WowEventMalformed
