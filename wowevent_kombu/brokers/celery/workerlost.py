"""A lost pool child as a counted retry, on every supported Celery (5.7 does it itself).

Celery 5.7 added ``Task.retry_on_worker_lost``: when a pool child dies under a task (killed,
out of memory) the main process sends a retry of it, counted against ``max_retries``, instead
of acking it as failed (``Request._retry_worker_lost``), and it reports a child's
``SystemExit`` as a ``WorkerLostError`` (``Request._worker_lost_info``). Subscribers rely on
both (see :mod:`wowevent_kombu.worker.request`); on Celery 5.4 to 5.6 this module does the same with
the request's public members, so the delivery is retried, not dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.common import human_status
from billiard.einfo import ExceptionInfo
from billiard.exceptions import WorkerLostError
from celery import signals
from celery.exceptions import Retry
from kombu.utils.encoding import safe_repr, safe_str

log = logging.getLogger(__name__)


def worker_lost_info(exc: BaseException) -> ExceptionInfo:
    """A ``WorkerLostError`` in place of the ``SystemExit``/``KeyboardInterrupt`` of a child."""
    if isinstance(exc, SystemExit):
        code = exc.code
        status = human_status(code if isinstance(code, int) else (0 if code is None else 1))
    else:
        status = type(exc).__name__
    try:
        raise WorkerLostError(f"Worker exited prematurely: {status}.")
    except WorkerLostError:
        return ExceptionInfo()


def retry_lost_run(request: Any, context: Any, exc: BaseException, exc_info: Any) -> bool:
    """Send the retry of a run whose pool child was lost, as Celery 5.7 does.

    Args:
        request: The worker's ``celery.worker.request.Request``.
        context: The request's task context (``Request._context``).
        exc: The ``WorkerLostError`` (or hard time limit) that ended the run.
        exc_info: Its exception info.

    Returns:
        Whether the retry was sent; when not, the caller handles the failure as Celery would.
    """
    task = request.task
    countdown = task.default_retry_delay
    try:
        task.signature_from_request(
            context, countdown=countdown, retries=context.retries + 1
        ).apply_async()
    except Exception as error:
        log.error(
            "Failed to retry task %s[%s] after worker was lost: %r",
            request.task_name, request.id, error, exc_info=True,
        )  # fmt: skip
        return False
    if request.store_errors:
        task.backend.mark_as_retry(request.id, exc, exc_info.traceback, request=context)
    if task.acks_late:
        request.acknowledge()
    request.send_event(
        "task-retried", exception=safe_repr(exc), traceback=safe_str(exc_info.traceback)
    )
    reason = Retry(exc=exc, when=countdown)
    task.request_stack.push(context)
    try:
        task.on_retry(exc, request.id, request.args, request.kwargs, exc_info)
        signals.task_retry.send(sender=task, request=context, reason=reason, einfo=exc_info)
    finally:
        task.request_stack.pop()
    log.info("Task %s[%s] retry: %s", request.task_name, request.id, reason)
    return True
