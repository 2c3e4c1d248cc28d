"""The shipped test double: a bus that keeps events in memory and runs handlers in-process.

Use it to unit-test subscribers without Redis or a worker::

    from wowevent_kombu.testing import TestBus

    bus = TestBus(app)

    @bus.subscriber("order.*", name="billing")
    def bill(event): ...

    bus.publish("order.created", {"order_id": "1"})
    [delivery] = bus.drain()
    assert delivery.succeeded

Events go through the same validation, routing (AMQP topic semantics) and Celery task message
encoding as on Redis; :meth:`TestBus.drain` then runs each delivery through the subscriber's
Celery task with ``task.apply`` (Celery's eager mode: retries run at once, countdowns ignored).

Two helpers for tests that need a real Redis of their own are part of this package too, and
supported like the rest of it: :class:`wowevent_kombu.testing.redisserver.RedisServer` (a
private ``redis-server`` on a free loopback port, stopped by its pid; ``make demo`` and
``make test`` use it when no Redis answers) and
:class:`wowevent_kombu.testing.sentinelcluster.SentinelCluster` (a primary, replicas and
sentinels, for failover tests). Both need the ``redis-server`` binary; nothing starts until
you call them.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery

from wowevent_kombu.brokers.outgoing import Outgoing, copies, unroutable_error
from wowevent_kombu.brokers.redis.atomic import Command
from wowevent_kombu.bus import EventBus
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.matcher import validate_pattern
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.core.topology import Binding, BindingSnapshot, kombu_regex
from wowevent_kombu.log.checkpoint import CheckpointMiddleware
from wowevent_kombu.log.positions import split_position


class MemoryTransport:
    """A :class:`~wowevent_kombu.brokers.base.Transport` that keeps everything in this process."""

    def __init__(self, exchange: str = names.DEFAULT_EXCHANGE) -> None:
        self.exchange = exchange
        self.bindings: set[Binding] = set()
        self.pending: deque[tuple[str, str]] = deque()
        self.log: list[Event] = []
        self.unroutable = 0
        self._version = 0
        self._sender = wire.origin()

    def snapshot(self, *, refresh: bool = False) -> BindingSnapshot:
        return BindingSnapshot.build(self._version, len(self.bindings), self.bindings)

    def send(self, batch: Sequence[Outgoing], *, mandatory: bool) -> list[tuple[str, ...]]:
        snap = self.snapshot()
        routes = [tuple(sorted(snap.matcher.match(item.event.type))) for item in batch]
        for item, queues in zip(batch, routes, strict=True):
            if mandatory and not queues:
                raise unroutable_error(self.exchange, batch, item.event.type)
        for item, queues in zip(batch, routes, strict=True):
            self.log.append(item.event)
            self.unroutable += 0 if queues else 1
            self.pending.extend(copies(self.exchange, item, queues, self._sender))
        return routes

    def bind(self, queue: str, patterns: Sequence[str]) -> None:
        for pattern in patterns:
            kombu_regex(validate_pattern(pattern))
            self.bindings.add(Binding(pattern, queue))
        self._version += 1

    def unbind(self, queue: str, patterns: Sequence[str] | None = None) -> list[str]:
        doomed = {
            b
            for b in self.bindings
            if b.queue == queue and (patterns is None or b.pattern in patterns)
        }
        self.bindings -= doomed
        self._version += 1
        return sorted(b.pattern for b in doomed)

    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        return {q: sum(1 for name, _ in self.pending if name == q) for q in queues}

    def delete_queue(self, queue: str) -> None:
        self.pending = deque(item for item in self.pending if item[0] != queue)

    def push_commands(self, pushes: Mapping[str, Sequence[str]]) -> list[Command]:
        for queue, messages in pushes.items():
            self.pending.extend((queue, message) for message in messages)
        return []

    def close(self) -> None:
        """Nothing to release."""


@dataclasses.dataclass(frozen=True)
class Delivery:
    """What happened to one delivery when :meth:`TestBus.drain` ran it."""

    subscriber: str
    event: Event
    task_id: str
    state: str
    result: Any

    @property
    def succeeded(self) -> bool:
        """The handler returned (possibly after retries)."""
        return self.state == "SUCCESS"


class MemoryCheckpoints:
    """Checkpoints over :class:`MemoryTransport`'s log: ``"0-<n>"`` is its n-th event."""

    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport
        self.positions: dict[str, str] = {}

    def position_of(self, event_id: str) -> str | None:
        """The position of the newest logged event with this id."""
        for index in range(len(self._transport.log) - 1, -1, -1):
            if self._transport.log[index].id == event_id:
                return f"0-{index + 1}"
        return None

    def advance_checkpoint(self, subscriber: str, position: str) -> bool:
        """Move ``subscriber``'s checkpoint to ``position`` unless it is already further."""
        current = self.positions.get(subscriber)
        if current is not None and split_position(current) >= split_position(position):
            return False
        self.positions[subscriber] = position
        return True


class TestBus(EventBus):
    """An :class:`EventBus` on :class:`MemoryTransport` that runs deliveries on demand.

    Args:
        app: The Celery app the subscribers are registered on.
        autodeclare: Bind each subscriber as soon as it is registered (a worker would do it
            on start), so published events reach it.
        kwargs: Passed to :class:`EventBus`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, app: Celery, *, autodeclare: bool = True, **kwargs: Any) -> None:
        exchange = kwargs.pop("exchange", None) or names.DEFAULT_EXCHANGE
        self.memory = MemoryTransport(exchange)
        kwargs.setdefault("settings", Settings(broker_url="memory://", exchange=exchange))
        super().__init__(app, transport=self.memory, **kwargs)
        self._autodeclare = autodeclare
        self._checkpoints = MemoryCheckpoints(self.memory)

    def subscriber(
        self, patterns: str | Sequence[str], *, name: str, bind: bool = False, **task_options: Any
    ) -> Any:
        """:meth:`EventBus.subscriber`, bound at once (with ``autodeclare``).

        ``idempotent=True`` and ``checkpoint=True`` work here as on Redis, in memory: handled
        ids are kept for the life of the bus, and checkpoints are positions in
        :attr:`published` (read them with :attr:`checkpoints`).
        """
        if task_options.get("checkpoint") and not any(
            isinstance(m, CheckpointMiddleware) for m in self.middleware
        ):
            # Before the bus adds its own, which would look for a Redis log this bus lacks.
            self.add_middleware(CheckpointMiddleware(self._checkpoints))
        decorate = super().subscriber(patterns, name=name, bind=bind, **task_options)

        def register_and_bind(handler: Any) -> Any:
            task = decorate(handler)
            if self._autodeclare:
                sub = self.subscribers[name]
                self.memory.bind(sub.queue, sub.patterns)
            return task

        return register_and_bind

    @property
    def checkpoints(self) -> dict[str, str]:
        """Subscriber name -> position of the newest event it handled (``checkpoint=True``).

        A position is ``"0-<n>"`` for the n-th event of :attr:`published` (counting from 1),
        ordered like the Redis log's.
        """
        return dict(self._checkpoints.positions)

    @property
    def published(self) -> list[Event]:
        """Every event logged, in publish order."""
        return list(self.memory.log)

    def drain(self, *, limit: int = 100_000) -> list[Delivery]:
        """Run pending deliveries (and those their handlers publish) in FIFO order."""
        by_queue = {sub.queue: sub for sub in self.subscribers.values()}
        done: list[Delivery] = []
        while self.memory.pending and len(done) < limit:
            queue, raw = self.memory.pending.popleft()
            sub = by_queue.get(queue)
            if sub is None:
                continue
            envelope = wire.decode_task_message(raw)
            _, kwargs, _ = envelope["decoded_body"]
            headers = envelope["headers"]
            result = sub.task.apply(
                kwargs=kwargs,
                task_id=headers["id"],
                headers={
                    wire.REPLAY_HEADER: headers.get(wire.REPLAY_HEADER, False),
                    **{k: headers[k] for k in (wire.RESENT_HEADER,) if k in headers},
                },
            )
            done.append(
                Delivery(
                    subscriber=sub.name,
                    event=Event.from_cloudevent(kwargs[wire.EVENT_KWARG]),
                    task_id=headers["id"],
                    state=str(result.state),
                    result=result.result,
                )
            )
        return done
