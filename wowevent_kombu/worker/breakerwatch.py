"""Each worker follows its subscribers' breakers: stop consuming a queue while it is open.

A consumer bootstep polls the breakers of the subscribers the worker runs, every
:data:`POLL_INTERVAL` seconds, on the consumer's own timer (in the worker's event loop, where
Celery's consumer may be touched). An open breaker cancels the queue with Celery's remote
control machinery (``Consumer.cancel_task_queue``, what ``celery control cancel_consumer``
does), so ``celery inspect active_queues`` and Flower show it gone; a half-open or closed one
adds it back (``Consumer.add_task_queue``). The events wait in Redis meanwhile. A breaker
opened anywhere therefore pauses the subscriber on every worker within one poll plus one
delivery in progress; a new or reconnected worker applies the state before it consumes.

Every subscriber is watched, with or without ``circuit_breaker=``, so an operator's
``wowevent breaker open NAME`` pauses any subscriber. While no breaker has state the poll is
one ``SMEMBERS`` of an empty set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import redis
from celery import bootsteps

from wowevent_kombu.core.breaker import OPEN
from wowevent_kombu.worker.breakerstore import BreakerStore
from wowevent_kombu.worker.subscriber import Subscriber

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5
"""Seconds between two reads of the breakers by each worker."""


class BreakerWatch:
    """Pauses and resumes one worker's consumption of its subscribers' queues.

    Args:
        consumer: Celery's worker consumer (``celery.worker.consumer.Consumer``).
        store: The bus's breaker store.
        queues: ``{subscriber: queue}`` of the worker's subscribers.
    """

    def __init__(self, consumer: Any, store: BreakerStore, queues: Mapping[str, str]) -> None:
        self.consumer = consumer
        self.store = store
        self.queues = dict(queues)
        self.paused: set[str] = set()
        self._failing = False

    def poll(self) -> None:
        """Read the breakers once and pause or resume the queues they name; never raises."""
        try:
            states = self.store.read_known(sorted(self.queues))
        except redis.RedisError as exc:
            if not self._failing:
                log.warning("circuit breakers not read (%s): consumption left as it is", exc)
            self._failing = True
            return
        self._failing = False
        for name in self.queues:
            state = states.get(name)
            try:
                if state is not None and state.state == OPEN:
                    self.pause(name)
                else:
                    self.resume(name)
            except Exception:  # a failing timer would stop polling; keep the loop alive
                log.exception("could not apply the circuit breaker of %r", name)

    def pause(self, subscriber: str) -> None:
        """Stop consuming the subscriber's queue (if this worker consumes it)."""
        queue = self.queues[subscriber]
        tasks = getattr(self.consumer, "task_consumer", None)
        if queue in self.paused or tasks is None or not tasks.consuming_from(queue):
            return
        self.consumer.cancel_task_queue(queue)
        self.paused.add(queue)
        log.warning("circuit breaker of %r is open: stopped consuming %s", subscriber, queue)

    def resume(self, subscriber: str) -> None:
        """Consume the subscriber's queue again, if this watch paused it."""
        queue = self.queues[subscriber]
        if queue not in self.paused or getattr(self.consumer, "task_consumer", None) is None:
            return
        self.consumer.add_task_queue(queue)
        self.paused.discard(queue)
        log.info("circuit breaker of %r lets deliveries through: consuming %s", subscriber, queue)


def make_breaker_step(
    exchange: str,
    subscribers: Callable[[], Mapping[str, Subscriber]],
    store: Callable[[], BreakerStore | None],
    interval: float = POLL_INTERVAL,
) -> type[bootsteps.StartStopStep]:
    """A consumer bootstep that runs a :class:`BreakerWatch` on the consumer's timer."""

    class WowEventBreakers(bootsteps.StartStopStep):  # type: ignore[misc]
        """Follows the breakers of the worker's subscribers."""

        name = f"wowevent_kombu.worker.breakerwatch.WowEventBreakers[{exchange}]"
        requires = ("celery.worker.consumer.tasks:Tasks",)

        def __init__(self, consumer: Any, **kwargs: Any) -> None:
            super().__init__(consumer, **kwargs)
            self.watch: BreakerWatch | None = None
            self.entry: Any = None

        def start(self, consumer: Any) -> None:
            queues = {s.name: s.queue for s in subscribers().values()}
            made = store() if queues else None
            if made is None:
                return
            if self.watch is None:
                self.watch = BreakerWatch(consumer, made, queues)
            else:
                # A restarted consumer consumes what Celery's queue table selects: forget
                # nothing we paused, but let the next poll re-apply it to the new consumer.
                self.watch.consumer = consumer
            self.watch.poll()  # before the event loop starts consuming
            if self.entry is None:
                self.entry = consumer.timer.call_repeatedly(interval, self.poll_watch)

        def poll_watch(self) -> None:
            """Apply the breakers once (run on the consumer's timer)."""
            if self.watch is not None:
                self.watch.poll()

        def stop(self, consumer: Any) -> None:
            if self.entry is not None:
                self.entry.cancel()
                self.entry = None

    return WowEventBreakers
