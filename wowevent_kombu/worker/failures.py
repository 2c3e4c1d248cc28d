"""The dead-letter middleware: each failed attempt's story, and the record before the ack.

Each failed attempt that Celery retries is appended to the delivery's retry history
(:mod:`wowevent_kombu.deadletters.history`) before the retry is sent; the final failure reads
the history back and writes the dead-letter record in ``Task.on_failure``, which runs before
Celery acknowledges the message. Where Celery's worker calls these hooks, and what happens when
the record cannot be written, is told in :mod:`wowevent_kombu.worker.request`.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import redis
from billiard.exceptions import WorkerLostError
from celery.exceptions import Retry

from wowevent_kombu.core.errors import DeadLetterWriteError, InvalidEventError, Reject
from wowevent_kombu.core.wire import EVENT_KWARG, REPLAY_HEADER
from wowevent_kombu.deadletters.history import HISTORY_TTL, RetryHistory
from wowevent_kombu.deadletters.record import Attempt, DeadLetter
from wowevent_kombu.deadletters.store import DeadLetterStore
from wowevent_kombu.worker.delivery import context_of
from wowevent_kombu.worker.middleware import Middleware

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.delivery import DeliveryTask

log = logging.getLogger(__name__)


def qualified_name(exc: BaseException) -> str:
    """``module.Class`` of an exception (just ``Class`` for builtins)."""
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def classify(exc: BaseException, dont_autoretry_for: tuple[type[BaseException], ...]) -> str:
    """The dead-letter reason of a final failure (see :data:`~.deadletter.REASONS`)."""
    if isinstance(exc, WorkerLostError):
        return "worker_lost"
    if isinstance(exc, InvalidEventError):
        return "invalid"
    if isinstance(exc, Reject) or (dont_autoretry_for and isinstance(exc, dont_autoretry_for)):
        return "rejected"
    return "exhausted"


def _original(exc: BaseException) -> BaseException:
    """The exception behind a ``Retry`` (a manual ``self.retry(exc=...)``), else ``exc``."""
    if isinstance(exc, Retry) and isinstance(exc.exc, BaseException):
        return exc.exc
    return exc


class DeadLetterMiddleware(Middleware):
    """Keeps every failed attempt of a delivery and writes the dead-letter record at the end.

    Critical: if Redis refuses the record, the delivery is not acknowledged.

    Args:
        store: Returns the bus's dead-letter store (called on first use, in the worker).
        retention: Optional ``max_age`` (seconds) and ``max_records``, applied after each write.
        history_ttl: Seconds the attempt history is kept after the last retry.
    """

    critical = True

    def __init__(
        self,
        store: Callable[[], DeadLetterStore | None],
        *,
        retention: Mapping[str, float | int | None] | None = None,
        history_ttl: int = HISTORY_TTL,
    ) -> None:
        self._store = store
        self._retention = dict(retention or {})
        self._history_ttl = history_ttl

    def before_handle(self, task: DeliveryTask, event: Event) -> None:
        context_of(task.request).started_at = time.time()

    def after_handle(
        self, task: DeliveryTask, event: Event, *, result: Any, exc: BaseException | None
    ) -> None:
        if exc is None:
            return
        # Keep the handler's own traceback: the retry hooks may be handed the Retry instead.
        original = _original(exc)
        context_of(task.request).failure = self._attempt(task, original, None)

    def on_success(self, task: DeliveryTask, event: Event | None, result: Any) -> None:
        if not task.request.retries:
            return  # no earlier failure, no history: no round trip on the common path
        store = self._store()
        if store is None:
            return
        try:
            self._history(store).drop(str(task.request.id))
        except redis.RedisError:
            log.warning("could not drop the retry history of %s; it expires", task.request.id)

    def before_retry(
        self, task: DeliveryTask, event: Event | None, exc: BaseException | None, einfo: Any
    ) -> None:
        # Before the retry is sent: a retry run by another worker (or pool child) that fails
        # for good reads this history, and must not find it missing this attempt.
        store = self._store()
        if store is None:
            return
        attempt = self._attempt(task, exc, einfo)
        history = self._history(store)
        task_id = str(task.request.id)
        try:
            history.append(task_id, attempt)
        except redis.RedisError:
            # Raising would stop a retry the delivery is due: the record will miss this
            # attempt's story, nothing else.
            log.exception(
                "could not keep the history of attempt %d of %s",
                attempt.number,
                history.key(task_id),
            )

    def on_failure(
        self, task: DeliveryTask, event: Event | None, exc: BaseException, einfo: Any
    ) -> None:
        if isinstance(exc, DeadLetterWriteError):
            raise exc  # Celery re-runs on_failure with our own error: do not record that.
        store = self._store()
        if store is None:
            return
        request = task.request
        try:
            record = self._record(task, store, event, exc, einfo)
            store.write(record)
        except redis.RedisError as error:
            raise DeadLetterWriteError(
                f"could not write the dead-letter record of task {request.id} "
                f"(subscriber {task.wowevent_subscriber!r}): {error}; the delivery is "
                "requeued, not acknowledged"
            ) from error
        # Metrics (run after this hook, in reverse order) count the delivery as dead-lettered.
        context_of(request).dead_lettered = True
        log.warning(
            "dead-lettered %s delivery %s of event %s (%s, %d attempt(s)): %s",
            record.subscriber, record.id, record.event_id, record.reason,
            len(record.attempts), record.error,
        )  # fmt: skip
        if self._retention:
            try:
                store.trim(**self._retention)  # type: ignore[arg-type]
            except redis.RedisError:
                log.exception("dead-letter retention could not be applied")

    def _record(
        self,
        task: DeliveryTask,
        store: DeadLetterStore,
        event: Event | None,
        exc: BaseException,
        einfo: Any,
    ) -> DeadLetter:
        request = task.request
        task_id = str(request.id)
        # The history is left to expire, not deleted: if the worker dies before the ack, the
        # redelivered run rebuilds the same record from it.
        earlier = self._history(store).attempts(task_id)
        final = self._attempt(task, exc, einfo)
        attempts = {a.number: a for a in (*earlier, final)}
        document = (request.kwargs or {}).get(EVENT_KWARG)
        return DeadLetter(
            id=task_id,
            subscriber=task.wowevent_subscriber,
            event_id=event.id if event is not None else _field(document, "id"),
            event_type=event.type if event is not None else _field(document, "type"),
            event=event.to_cloudevent() if event is not None else document,
            reason=classify(exc, tuple(getattr(task, "dont_autoretry_for", ()) or ())),
            attempts=tuple(attempts[n] for n in sorted(attempts)),
            replayed=bool(getattr(request, REPLAY_HEADER, False)),
        )

    def _history(self, store: DeadLetterStore) -> RetryHistory:
        return RetryHistory(store.client, store.exchange, ttl=self._history_ttl)

    @staticmethod
    def _attempt(task: DeliveryTask, exc: BaseException | None, einfo: Any) -> Attempt:
        request = task.request
        number = int(request.retries or 0) + 1
        context = context_of(request)
        stashed = context.failure
        if stashed is not None and stashed.number == number:
            return stashed
        if exc is None:  # Celery passes Retry.exc, None for a bare self.retry()
            exc = getattr(einfo, "exception", None) or RuntimeError("retry without exception")
        if exc.__traceback__ is not None:
            text = "".join(traceback.format_exception(exc))
        else:
            text = str(getattr(einfo, "traceback", "") or "")
        return Attempt(
            number=number,
            exception_type=qualified_name(exc),
            message=str(exc),
            traceback=text,
            failed_at=time.time(),
            started_at=context.started_at,
        )


def _field(document: Any, name: str) -> str | None:
    value = document.get(name) if isinstance(document, dict) else None
    return value if isinstance(value, str) else None
