"""What the bus needs from a broker: the :class:`Transport` interface every broker implements.

Redis (:mod:`wowevent_kombu.brokers.redis.publisher`), RabbitMQ
(:mod:`wowevent_kombu.brokers.amqp.publisher`) and the in-memory test double implement it; the
bus sees only this interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from wowevent_kombu.brokers.outgoing import Outgoing
from wowevent_kombu.brokers.redis.atomic import Command
from wowevent_kombu.core.topology import BindingSnapshot


class Transport(Protocol):
    """What the bus needs from a broker; Redis in production, memory in tests."""

    def snapshot(self, *, refresh: bool = False) -> BindingSnapshot:
        """The binding table (cached unless ``refresh``)."""

    def send(self, batch: Sequence[Outgoing], *, mandatory: bool) -> list[tuple[str, ...]]:
        """Log and deliver ``batch`` atomically; the queues each event reached, in order."""

    def bind(self, queue: str, patterns: Sequence[str]) -> None:
        """Bind a queue to patterns."""

    def unbind(self, queue: str, patterns: Sequence[str] | None = None) -> list[str]:
        """Remove bindings of a queue; the patterns removed."""

    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        """Deliveries waiting per queue."""

    def delete_queue(self, queue: str) -> None:
        """Drop a queue's waiting deliveries (used for temporary queues)."""

    def push_commands(self, pushes: Mapping[str, Sequence[str]]) -> list[Command]:
        """Deliver ready messages (Kombu Redis envelopes) straight to the named queues.

        Each queue's messages are consumed in the order given.

        Returns the commands a caller adds to its own Redis transaction (Redis: the ``LPUSH``
        of each queue, so the deliveries commit with the caller's bookkeeping); a broker
        outside Redis sends them now, confirmed, and returns no command.
        """

    def close(self) -> None:
        """Release connections."""
