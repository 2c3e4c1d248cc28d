"""Failure bookkeeping: each attempt's story, and the dead-letter write before the message is acked.

Where Celery calls us, and why that is before the acknowledgement:

* An ordinary failure runs ``Task.on_failure`` inside ``celery.app.trace`` (in the pool child
  for prefork, in the worker itself for solo); only when the trace has returned does the worker's
  main process call ``Request.on_failure``, which acks a late-ack message. The record is written
  in ``Task.on_failure``, so it exists before the ack.
* A pool child killed past ``max_retries`` never runs ``Task.on_failure``: the main process gets
  a ``WorkerLostError`` in ``Request.on_failure``, acks the message, and only then sends the
  ``task_failure`` signal. :class:`SubscriberRequest` therefore runs the failure hooks itself
  before handing over to Celery's ``on_failure``.
* A hard time limit kills the child too. billiard reports it to ``Request.on_failure`` (which
  acks) before ``Request.on_timeout`` (which runs ``Task.on_failure``, without the request on
  the task's stack). With retries left (and ``retry_on_worker_lost``, the subscriber default)
  :class:`SubscriberRequest` sends a counted retry, as for a lost child; at the last attempt it
  runs the hooks in ``on_failure``, before the ack. Either way it marks the request so
  ``on_timeout`` does not run them again.
* If the record cannot be written the middleware raises :class:`DeadLetterWriteError`;
  :class:`SubscriberRequest` then requeues the message (at the tail of the subscriber's queue)
  instead of acking it; if Redis refuses that too, the message stays unacked and Redis restores
  it after the visibility timeout. Either way the event is not lost.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import redis
from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery.exceptions import Retry
from celery.worker.request import Request

from wowevent_kombu.core import names
from wowevent_kombu.core.errors import DeadLetterWriteError, InvalidEventError, Reject
from wowevent_kombu.core.wire import EVENT_KWARG, REPLAY_HEADER
from wowevent_kombu.deadletters.record import Attempt, DeadLetter
from wowevent_kombu.deadletters.store import DeadLetterStore
from wowevent_kombu.observability.metrics import DEAD_LETTERED_MARK
from wowevent_kombu.worker.middleware import Middleware

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.delivery import DeliveryTask

log = logging.getLogger(__name__)

HISTORY_TTL = 24 * 3600
"""Seconds a delivery's attempt history outlives its last retry. Each retry's countdown must
stay below the visibility timeout (checked at worker start), so a day is far beyond any gap."""

_STARTED = "wowevent_started_at"
_FAILURE = "wowevent_failure"
FAILURE_HANDLED = "wowevent_failure_handled"
"""Request attribute set once the failure hooks ran in the main process (so not again)."""


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
        setattr(task.request, _STARTED, time.time())

    def after_handle(
        self, task: DeliveryTask, event: Event, *, result: Any, exc: BaseException | None
    ) -> None:
        if exc is None:
            return
        # Keep the handler's own traceback: the retry hooks may be handed the Retry instead.
        original = _original(exc)
        setattr(task.request, _FAILURE, self._attempt(task, original, None))

    def on_success(self, task: DeliveryTask, event: Event | None, result: Any) -> None:
        if not task.request.retries:
            return  # no earlier failure, no history: no round trip on the common path
        store = self._store()
        if store is None:
            return
        try:
            store.client.delete(names.retry_history_key(store.exchange, str(task.request.id)))
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
        key = names.retry_history_key(store.exchange, str(task.request.id))
        pipe = store.client.pipeline(transaction=True)
        pipe.rpush(key, json.dumps(attempt.to_dict()))
        pipe.expire(key, self._history_ttl)
        try:
            pipe.execute()
        except redis.RedisError:
            # Raising would stop a retry the delivery is due: the record will miss this
            # attempt's story, nothing else.
            log.exception("could not keep the history of attempt %d of %s", attempt.number, key)

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
        setattr(request, DEAD_LETTERED_MARK, True)
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
        key = names.retry_history_key(store.exchange, task_id)
        # The history is left to expire, not deleted: if the worker dies before the ack, the
        # redelivered run rebuilds the same record from it.
        earlier = [Attempt.from_dict(json.loads(r)) for r in store.client.lrange(key, 0, -1)]
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

    @staticmethod
    def _attempt(task: DeliveryTask, exc: BaseException | None, einfo: Any) -> Attempt:
        request = task.request
        number = int(request.retries or 0) + 1
        stashed = getattr(request, _FAILURE, None)
        if isinstance(stashed, Attempt) and stashed.number == number:
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
            started_at=getattr(request, _STARTED, None),
        )


def _field(document: Any, name: str) -> str | None:
    value = document.get(name) if isinstance(document, dict) else None
    return value if isinstance(value, str) else None


class SubscriberRequest(Request):  # type: ignore[misc]
    """The worker-side request of subscriber tasks: failure hooks run before Celery acks.

    Runs in the worker's main process. Two cases differ from Celery's own ``on_failure``:

    * the pool child died (``WorkerLostError``) and Celery will not retry it, or a hard time
      limit killed it: the subscriber's ``on_failure`` hooks run here, before the ack, since
      the dead child never ran them;
    * the dead-letter record could not be written (:class:`DeadLetterWriteError`): the message
      is requeued, not acked.
    """

    def on_timeout(self, soft: bool, timeout: float) -> Any:
        if soft:
            return super().on_timeout(soft, timeout)
        # Celery calls Task.on_failure here without the request on the task's stack; our
        # on_failure already ran the hooks, and the flag on the pushed request skips them.
        self.task.request_stack.push(self._context)
        try:
            return super().on_timeout(soft, timeout)
        finally:
            self.task.request_stack.pop()

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> Any:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, DeadLetterWriteError):
            return self._requeue(exc)
        if isinstance(exc, TimeLimitExceeded) and self._retry_time_limit(exc, exc_info):
            return None
        lost = isinstance(exc, WorkerLostError) or (
            isinstance(exc, SystemExit | KeyboardInterrupt)
            and not (self._already_cancelled or self._already_revoked)
        )
        # A hard time limit reaches on_failure (which acks) before on_timeout: record it here.
        if (lost and self._final_loss()) or isinstance(exc, TimeLimitExceeded):
            if isinstance(exc, SystemExit | KeyboardInterrupt):
                exc_info = self._worker_lost_info(exc)
                exc = exc_info.exception
                if isinstance(exc, ExceptionWithTraceback):
                    exc = exc.exc
            context = self._context
            self.task.request_stack.push(context)
            try:
                self.task.on_failure(exc, self.id, self.args, self.kwargs, exc_info)
            except Exception as error:
                return self._requeue(error)
            finally:
                setattr(context, FAILURE_HANDLED, True)
                self.task.request_stack.pop()
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def _retry_time_limit(self, exc: BaseException, exc_info: Any) -> bool:
        """Count a hard time limit as a retry, as Celery counts a lost pool child.

        The limit kills the pool child, so nothing in the child could retry. With
        ``retry_on_worker_lost`` (the subscriber default) and retries left, a retry is sent to
        the subscriber's own queue after ``default_retry_delay`` and the delivery acked;
        otherwise the caller dead-letters it.

        Returns:
            Whether the retry was sent.
        """
        task = self.task
        max_retries = task.max_retries
        if not task.retry_on_worker_lost or (
            max_retries is not None and self._context.retries >= max_retries
        ):
            return False
        # Celery's on_timeout runs Task.on_failure next: this flag keeps it from recording.
        setattr(self._context, FAILURE_HANDLED, True)
        if self._retry_worker_lost(exc, exc_info):
            return True
        setattr(self._context, FAILURE_HANDLED, False)
        return False

    def _retry_worker_lost(self, exc: BaseException, exc_info: Any) -> bool:
        """Celery's retry of a lost (or time-limited) run, after the ``before_retry`` hooks."""
        task = self.task
        task.request_stack.push(self._context)
        try:
            task.wowevent_before_retry(self.kwargs, exc, exc_info)
        finally:
            task.request_stack.pop()
        return bool(super()._retry_worker_lost(exc, exc_info))

    def _requeue(self, exc: BaseException) -> None:
        """Put the delivery back at the tail of its queue instead of acking an unrecorded loss.

        If Redis refuses that too, the delivery stays unacknowledged and Redis restores it after
        the visibility timeout.
        """
        log.error(
            "task %s[%s]: the failure could not be recorded (%s); requeued for another run",
            self.task_name, self.id, exc,
        )  # fmt: skip
        try:
            self.reject(requeue=True)
        except Exception:
            log.exception(
                "task %s[%s]: requeue failed; left unacknowledged", self.task_name, self.id
            )

    def _final_loss(self) -> bool:
        """Whether Celery will give up on this delivery rather than retry or requeue it."""
        task = self.task
        max_retries = task.max_retries
        exceeded = max_retries is not None and self._context.retries >= max_retries
        if task.retry_on_worker_lost and not exceeded:
            return False  # Celery sends a counted retry
        # reject_on_worker_lost requeues (forever unless retries are exceeded).
        return not (task.reject_on_worker_lost and not (task.retry_on_worker_lost and exceeded))
