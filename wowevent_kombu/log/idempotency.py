"""Processed-id sets: ``idempotent=True`` subscribers skip events they already handled.

A successful delivery adds the event id to the subscriber's processed set (split into time
buckets that expire with the log's retention); a later delivery of the same event id (a replay,
a redelivery after a crash, a re-publish with the same id) is acknowledged without running the
handler. Two deliveries of one id running at the same moment can both run: this guards against
repeats, not concurrency. Cost: two Redis round trips per delivery of such a subscriber, and
about 90 bytes of Redis memory per processed event.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import redis

from wowevent_kombu.brokers.redis.logscript import bucket_width_ms, recent_buckets
from wowevent_kombu.core import names
from wowevent_kombu.worker.middleware import Middleware, SkipDelivery

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.delivery import DeliveryTask

TASK_FLAG = "wowevent_idempotent"
"""Task attribute set on subscribers registered with ``idempotent=True``."""


class ProcessedIds:
    """A subscriber's processed event ids in Redis, kept for ``max_age`` seconds.

    Args:
        client: Redis client.
        exchange: The bus's exchange (key prefix).
        max_age: Retention in seconds (the log's).
    """

    def __init__(self, client: redis.Redis, exchange: str, max_age: float) -> None:
        self.client = client
        self.exchange = exchange
        self.max_age = max_age

    def seen(self, subscriber: str, event_id: str) -> bool:
        """Whether ``event_id`` was marked processed within the retention."""
        pipe = self.client.pipeline(transaction=False)
        for bucket in recent_buckets(int(time.time() * 1000), self.max_age):
            pipe.sismember(names.processed_key(self.exchange, subscriber, bucket), event_id)
        return any(pipe.execute())

    def mark(self, subscriber: str, event_id: str) -> None:
        """Record ``event_id`` as processed now."""
        width = bucket_width_ms(self.max_age)
        bucket = int(time.time() * 1000) // width
        key = names.processed_key(self.exchange, subscriber, bucket)
        pipe = self.client.pipeline(transaction=True)
        pipe.sadd(key, event_id)
        pipe.pexpireat(key, (bucket + 1) * width + math.ceil(self.max_age * 1000))
        pipe.execute()


class MemoryProcessedIds:
    """Processed ids kept in this process, for the in-memory ``TestBus`` (no retention)."""

    def __init__(self) -> None:
        self.ids: set[tuple[str, str]] = set()

    def seen(self, subscriber: str, event_id: str) -> bool:
        """Whether ``event_id`` was marked processed."""
        return (subscriber, event_id) in self.ids

    def mark(self, subscriber: str, event_id: str) -> None:
        """Record ``event_id`` as processed."""
        self.ids.add((subscriber, event_id))


class IdempotencyMiddleware(Middleware):
    """Skips deliveries of already processed ids for subscribers carrying :data:`TASK_FLAG`.

    Args:
        store: The processed-id store, or a callable returning it (called once, on first use,
            so a worker connects only when it handles a delivery).
    """

    def __init__(
        self,
        store: ProcessedIds | MemoryProcessedIds | Callable[[], ProcessedIds | MemoryProcessedIds],
    ) -> None:
        self._store = store

    @property
    def store(self) -> ProcessedIds | MemoryProcessedIds:
        """Where processed ids are kept."""
        if callable(self._store):
            self._store = self._store()
        return self._store

    def before_handle(self, task: DeliveryTask, event: Event) -> None:
        if getattr(task, TASK_FLAG, False) and self.store.seen(task.wowevent_subscriber, event.id):
            raise SkipDelivery(f"{task.wowevent_subscriber} already handled event {event.id}")

    def on_success(self, task: DeliveryTask, event: Event | None, result: Any) -> None:
        if event is not None and getattr(task, TASK_FLAG, False):
            self.store.mark(task.wowevent_subscriber, event.id)
