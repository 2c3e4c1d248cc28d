"""The worker-side request of subscriber tasks: the failure hooks run before Celery acks.

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

Celery's private request members are reached through
:class:`wowevent_kombu.brokers.celery.request.HookedRequest`.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery.worker.state import task_ready

from wowevent_kombu.brokers.celery.request import HookedRequest
from wowevent_kombu.brokers.compat import CELERY_RETRY_ON_WORKER_LOST
from wowevent_kombu.core.errors import DeadLetterWriteError
from wowevent_kombu.worker.delivery import context_of

log = logging.getLogger(__name__)


class SubscriberRequest(HookedRequest):
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
        self.task.request_stack.push(self.context)
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
            return _requeue(self, exc)
        if isinstance(exc, TimeLimitExceeded) and _retry_time_limit(self, exc, exc_info):
            return None
        lost = isinstance(exc, WorkerLostError) or (
            isinstance(exc, SystemExit | KeyboardInterrupt) and not self.cancelled_or_revoked
        )
        if lost and isinstance(exc, SystemExit | KeyboardInterrupt):
            # billiard >= 4.3 reports a child's exit before it is gone: a lost worker, as
            # Celery 5.7 says too (older Celery would record the SystemExit as the failure).
            exc_info = self.worker_lost_info(exc)
            exc = exc_info.exception
            if isinstance(exc, ExceptionWithTraceback):
                exc = exc.exc
        # Celery < 5.7 has no retry_on_worker_lost: it would ack the delivery as failed.
        retry_here = lost and not CELERY_RETRY_ON_WORKER_LOST and _retry_due(self)
        if retry_here and self.retry_worker_lost(exc, exc_info):
            task_ready(self)  # what Celery's on_failure, skipped here, does first
            return None
        # A hard time limit reaches on_failure (which acks) before on_timeout: record it here.
        if (lost and _final_loss(self)) or isinstance(exc, TimeLimitExceeded):
            context = self.context
            self.task.request_stack.push(context)
            try:
                self.task.on_failure(exc, self.id, self.args, self.kwargs, exc_info)
            except Exception as error:
                return _requeue(self, error)
            finally:
                context_of(context).failure_handled = True
                self.task.request_stack.pop()
        return super().on_failure(exc_info, send_failed_event, return_ok)

    def before_worker_lost_retry(self, exc: BaseException, exc_info: Any) -> None:
        """Run the ``before_retry`` hooks before Celery retries a lost (or time-limited) run."""
        task = self.task
        task.request_stack.push(self.context)
        try:
            task.wowevent_before_retry(self.kwargs, exc, exc_info)
        finally:
            task.request_stack.pop()


def _retry_time_limit(request: SubscriberRequest, exc: BaseException, exc_info: Any) -> bool:
    """Count a hard time limit as a retry, as Celery counts a lost pool child.

    The limit kills the pool child, so nothing in the child could retry. With
    ``retry_on_worker_lost`` (the subscriber default) and retries left, a retry is sent to
    the subscriber's own queue after ``default_retry_delay`` and the delivery acked;
    otherwise the caller dead-letters it.

    Returns:
        Whether the retry was sent.
    """
    task = request.task
    max_retries = task.max_retries
    if not task.retry_on_worker_lost or (
        max_retries is not None and request.context.retries >= max_retries
    ):
        return False
    # Celery's on_timeout runs Task.on_failure next: this flag keeps it from recording.
    context_of(request.context).failure_handled = True
    if request.retry_worker_lost(exc, exc_info):
        return True
    context_of(request.context).failure_handled = False
    return False


def _requeue(request: SubscriberRequest, exc: BaseException) -> None:
    """Put the delivery back at the tail of its queue instead of acking an unrecorded loss.

    If Redis refuses that too, the delivery stays unacknowledged and Redis restores it after
    the visibility timeout.
    """
    log.error(
        "task %s[%s]: the failure could not be recorded (%s); requeued for another run",
        request.task_name, request.id, exc,
    )  # fmt: skip
    try:
        request.reject(requeue=True)
    except Exception:
        log.exception(
            "task %s[%s]: requeue failed; left unacknowledged", request.task_name, request.id
        )


def _retry_due(request: SubscriberRequest) -> bool:
    """Whether a lost run is retried: ``retry_on_worker_lost`` and retries left."""
    task = request.task
    max_retries = task.max_retries
    exceeded = max_retries is not None and request.context.retries >= max_retries
    return bool(task.retry_on_worker_lost) and not exceeded


def _final_loss(request: SubscriberRequest) -> bool:
    """Whether Celery will give up on this delivery rather than retry or requeue it."""
    task = request.task
    if _retry_due(request):
        return False  # a counted retry is sent
    if not task.reject_on_worker_lost:
        return True
    # reject_on_worker_lost requeues: for ever before Celery 5.7; from 5.7 on, not once
    # retry_on_worker_lost's retries are exceeded.
    return bool(CELERY_RETRY_ON_WORKER_LOST and task.retry_on_worker_lost)
