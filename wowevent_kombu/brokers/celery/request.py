"""Celery's worker-side ``Request`` with the private members the bus needs behind public names.

Celery's ``Request`` keeps the task's context (``_context``), whether the delivery was
cancelled or revoked (``_already_cancelled``, ``_already_revoked``), how it reports a dead pool
child (``_worker_lost_info``) and how it retries a lost run (``_retry_worker_lost``) private.
:class:`HookedRequest` is the only place that reads or overrides them.
"""

from __future__ import annotations

from typing import Any

from celery.worker.request import Request

from wowevent_kombu.brokers import compat
from wowevent_kombu.brokers.celery.workerlost import retry_lost_run, worker_lost_info


class HookedRequest(Request):  # type: ignore[misc]
    """A ``Request`` whose private members the bus uses are public, and whose lost-run retry
    calls :meth:`before_worker_lost_retry` first."""

    @property
    def context(self) -> Any:
        """The task's request context of this delivery: one object for the request's life."""
        return self._context

    @property
    def cancelled_or_revoked(self) -> bool:
        """Whether the delivery was cancelled or revoked (its run's end is then not a loss)."""
        return bool(self._already_cancelled or self._already_revoked)

    def worker_lost_info(self, exc: BaseException) -> Any:
        """The ``ExceptionInfo`` of the ``WorkerLostError`` Celery reports for ``exc``."""
        if compat.CELERY_RETRY_ON_WORKER_LOST:
            return self._worker_lost_info(exc)
        return worker_lost_info(exc)

    def retry_worker_lost(self, exc: BaseException, exc_info: Any) -> bool:
        """Send Celery's retry of a lost run (as for a dead pool child); whether it was sent.

        Celery before 5.7 has no such retry: the same retry is sent by
        :func:`~wowevent_kombu.brokers.celery.workerlost.retry_lost_run`.
        """
        if compat.CELERY_RETRY_ON_WORKER_LOST:
            return bool(self._retry_worker_lost(exc, exc_info))
        self.before_worker_lost_retry(exc, exc_info)
        return retry_lost_run(self, self.context, exc, exc_info)

    def before_worker_lost_retry(self, exc: BaseException, exc_info: Any) -> None:
        """Called before Celery sends the retry of a lost (or time-limited) run; a no-op here."""

    def _retry_worker_lost(self, exc: BaseException, exc_info: Any) -> bool:
        self.before_worker_lost_retry(exc, exc_info)
        return bool(super()._retry_worker_lost(exc, exc_info))
