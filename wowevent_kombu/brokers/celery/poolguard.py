"""The worker's guarded hand-over of a request to its pool (``WorkController._process_task``).

Celery's pool step sets ``worker.process_task`` to ``worker._process_task`` (or, with a
semaphore, a wrapper that looks ``worker._process_task`` up at call time) and gives the
semaphore's release as ``worker._quick_release``. :class:`PoolGuard` replaces the hand-over in
both places and, when it raises, releases what the request held. Why the hand-over must not
raise is told in :mod:`wowevent_kombu.worker.poolguard`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery.worker.state import task_ready

log = logging.getLogger(__name__)

Recorder = Callable[[Any, str], bool]
"""Records a refused message as a dead letter: ``(message, problem) -> recorded``."""

_ATTRIBUTE = "wowevent_pool_guard"


class PoolGuard:
    """The worker's guarded hand-over: one per worker, shared by every bus of the app."""

    def __init__(self, worker: Any) -> None:
        self._worker = worker
        self._recorders: list[Recorder] = []
        self._hand_over: Callable[[Any], Any] = worker._process_task

    @classmethod
    def of(cls, worker: Any) -> PoolGuard:
        """The worker's guard, installed on first use."""
        guard = getattr(worker, _ATTRIBUTE, None)
        if not isinstance(guard, cls):
            guard = cls(worker)
            guard._install()
            setattr(worker, _ATTRIBUTE, guard)
        return guard

    def add(self, recorder: Recorder) -> None:
        """Let ``recorder`` dead-letter the refused messages of its subscriber queues."""
        self._recorders.append(recorder)

    def _install(self) -> None:
        worker = self._worker
        original = self._hand_over
        # Without a semaphore the consumer calls the hand-over directly; with one, the
        # semaphore looks ``_process_task`` up on the worker each time it calls it.
        worker._process_task = self
        if worker.process_task == original:
            worker.process_task = self

    def __call__(self, request: Any) -> Any:
        try:
            return self._hand_over(request)
        except Exception as exc:  # anything escaping here would stop the worker
            self.refuse(request, exc)
            return None

    def refuse(self, request: Any, exc: BaseException) -> None:
        """Dead-letter (or log) ``request``'s message, reject it and free what it held."""
        problem = f"the worker could not hand the task to its pool: {type(exc).__name__}: {exc}"
        message = getattr(request, "message", None)
        recorded = False
        for recorder in self._recorders:
            try:
                recorded = recorder(message, problem)
            except Exception:
                log.exception("could not record a task the pool refused")
            if recorded:
                break
        if not recorded:
            log.error(
                "Task %s[%s] dropped: %s", getattr(request, "name", "?"),
                getattr(request, "id", "?"), problem,
            )  # fmt: skip
        try:
            request.reject(requeue=False)
        finally:
            task_ready(request)
            release = getattr(self._worker, "_quick_release", None)
            if release is not None:
                # The pool's semaphore gave this request its slot before the hand-over failed.
                release()
