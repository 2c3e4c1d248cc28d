"""Per-subscriber checkpoints: the log position of the newest event a subscriber handled.

Enabled per subscriber with ``@bus.subscriber(..., checkpoint=True)``. After each successful
delivery the middleware looks the event's position up in the log's event-id index and moves
the subscriber's checkpoint forward (never back: deliveries finish out of order). ``wowevent
replay --subscriber NAME --from-checkpoint`` then re-delivers what came after it. Cost: two
Redis round trips per successful delivery of such a subscriber.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from wowevent_kombu.worker.middleware import Middleware

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.log.eventlog import EventLog
    from wowevent_kombu.worker.delivery import DeliveryTask

log = logging.getLogger(__name__)

TASK_FLAG = "wowevent_checkpoint"
"""Task attribute set on subscribers registered with ``checkpoint=True``."""


class CheckpointLog(Protocol):
    """Where checkpoints are kept: the Redis :class:`EventLog`, or ``TestBus``'s memory."""

    def position_of(self, event_id: str) -> str | None:
        """The log position of an event id, ``None`` when it is not logged."""

    def advance_checkpoint(self, subscriber: str, position: str) -> bool:
        """Move a subscriber's checkpoint to ``position`` unless it is already further."""


class CheckpointMiddleware(Middleware):
    """Records checkpoints for the subscribers whose task carries :data:`TASK_FLAG`.

    Args:
        eventlog: The bus's :class:`~wowevent_kombu.log.eventlog.EventLog`, or a callable returning
            it (or ``None`` when the bus has no Redis log, as on the in-memory ``TestBus``).
    """

    def __init__(
        self, eventlog: CheckpointLog | Callable[[], EventLog | CheckpointLog | None]
    ) -> None:
        self._log = eventlog

    @property
    def eventlog(self) -> EventLog | CheckpointLog | None:
        """The log checkpoints are positions of; ``None`` when there is none."""
        return self._log() if callable(self._log) else self._log

    def on_success(self, task: DeliveryTask, event: Event | None, result: Any) -> None:
        if event is None or not getattr(task, TASK_FLAG, False):
            return
        eventlog = self.eventlog
        if eventlog is None:
            return
        position = eventlog.position_of(event.id)
        if position is None:
            log.debug("event %s is not in the log; checkpoint unchanged", event.id)
            return
        eventlog.advance_checkpoint(task.wowevent_subscriber, position)
