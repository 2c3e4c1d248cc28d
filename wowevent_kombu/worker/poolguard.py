"""The hand-over of a task to the worker's pool: a task the pool cannot take is refused, not fatal.

Celery builds a request in the worker's main process and hands it to the pool; for the prefork
pool that means pickling it to a child. Anything that fails there (a message whose headers nest
too deeply to pickle, values the pool cannot carry) propagates out of the worker's event loop,
and Celery stops the worker with "Unrecoverable error". Kombu then restores the message, the
next worker meets it again and dies too: one entry stops every worker of its queue for good.

The guard (:class:`wowevent_kombu.brokers.celery.poolguard.PoolGuard`) wraps the worker's
hand-over, which the pool's semaphore calls as well. When it raises, the entry is dead-lettered
as ``malformed`` when it came from a subscriber queue of a bus (else dropped with the reason
logged, as Celery does for messages it cannot decode), then rejected without requeue, its
bookkeeping released, and the worker goes on. Retrying would fail the same way, so the entry
is never requeued.
"""

from __future__ import annotations

from typing import Any

from celery import bootsteps

from wowevent_kombu.brokers.celery.poolguard import PoolGuard, Recorder


def make_pool_guard_step(name: str, recorder: Recorder) -> type[bootsteps.StartStopStep]:
    """A worker bootstep that guards the pool hand-over (see the module doc) for one bus."""

    class WowEventPoolGuard(bootsteps.StartStopStep):  # type: ignore[misc]
        """Wraps the hand-over after the Pool step made it, before the Consumer takes it."""

        requires = ("celery.worker.components:Pool",)

        def create(self, worker: Any) -> None:
            PoolGuard.of(worker).add(recorder)

    WowEventPoolGuard.name = f"wowevent_kombu.worker.poolguard.WowEventPoolGuard[{name}]"
    return WowEventPoolGuard
