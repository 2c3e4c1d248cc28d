"""The hand-over of a task to the worker's pool: a task the pool cannot take is refused, not fatal.

Celery builds a request in the worker's main process and hands it to the pool; for the prefork
pool that means pickling it to a child. Anything that fails there (a message whose headers nest
too deeply to pickle, values the pool cannot carry) propagates out of the worker's event loop,
and Celery stops the worker with "Unrecoverable error". Kombu then restores the message, the
next worker meets it again and dies too: one entry stops every worker of its queue for good.

The guard wraps the worker's hand-over (``WorkController._process_task``, which the pool's
semaphore calls as well). When it raises, the entry is dead-lettered as ``malformed`` when it
came from a subscriber queue of a bus (else dropped with the reason logged, as Celery does
for messages it cannot decode), then rejected without requeue, its bookkeeping released, and
the worker goes on. Retrying would fail the same way, so the entry is never requeued.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import bootsteps
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


def make_pool_guard_step(name: str, recorder: Recorder) -> type[bootsteps.StartStopStep]:
    """A worker bootstep that guards the pool hand-over (see the module doc) for one bus."""

    class WowEventPoolGuard(bootsteps.StartStopStep):  # type: ignore[misc]
        """Wraps the hand-over after the Pool step made it, before the Consumer takes it."""

        requires = ("celery.worker.components:Pool",)

        def create(self, worker: Any) -> None:
            PoolGuard.of(worker).add(recorder)

    WowEventPoolGuard.name = f"wowevent_kombu.worker.poolguard.WowEventPoolGuard[{name}]"
    return WowEventPoolGuard
