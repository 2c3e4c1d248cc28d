"""The log's subscriber options: ``idempotent=True`` and ``checkpoint=True`` become task flags.

Each option flags the subscriber's task and, the first time it is used on a bus, puts its
middleware in the bus's chain: the idempotency check first (an event already handled runs no
other hook), the checkpoint last.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wowevent_kombu.log.checkpoint import TASK_FLAG as CHECKPOINT
from wowevent_kombu.log.checkpoint import CheckpointMiddleware
from wowevent_kombu.log.eventlog import EventLog
from wowevent_kombu.log.idempotency import TASK_FLAG as IDEMPOTENT
from wowevent_kombu.log.idempotency import IdempotencyMiddleware, MemoryProcessedIds, ProcessedIds
from wowevent_kombu.worker.middleware import Middleware


def apply_log_options(
    options: dict[str, Any],
    middleware: list[Middleware],
    *,
    processed_ids: Callable[[], ProcessedIds | MemoryProcessedIds],
    eventlog: Callable[[], EventLog | None],
) -> dict[str, Any]:
    """``options`` with ``idempotent``/``checkpoint`` turned into task flags (a new dict)."""
    options = dict(options)
    if options.pop("idempotent", False):
        options[IDEMPOTENT] = True
        if not any(isinstance(m, IdempotencyMiddleware) for m in middleware):
            middleware.insert(0, IdempotencyMiddleware(processed_ids))
    if options.pop("checkpoint", False):
        options[CHECKPOINT] = True
        if not any(isinstance(m, CheckpointMiddleware) for m in middleware):
            middleware.append(CheckpointMiddleware(eventlog))
    return options


def processed_ids_of(
    eventlog: EventLog | None, exchange: str, max_age: float
) -> ProcessedIds | MemoryProcessedIds:
    """Where a bus remembers handled event ids: beside its log, or in memory without Redis."""
    if eventlog is None:
        return MemoryProcessedIds()
    return ProcessedIds(eventlog.client, exchange, max_age)
