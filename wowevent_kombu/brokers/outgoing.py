"""What every broker sends: an event ready to go, its subscriber copies, the unroutable error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from wowevent_kombu.core import names, wire
from wowevent_kombu.core.errors import UnroutableEventError
from wowevent_kombu.core.event import Event


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One event ready to send: the event, its JSON and its shared message parts."""

    event: Event
    json: str
    prepared: wire.PreparedEvent


def unroutable_error(
    exchange: str, batch: Sequence[Outgoing], event_type: str
) -> UnroutableEventError:
    """The error ``mandatory=True`` raises when an event of ``event_type`` matches no binding."""
    return UnroutableEventError(
        f"no subscriber is bound to a pattern matching {event_type!r} on exchange "
        f"{exchange!r}; nothing was published (declare the subscribers first, or publish "
        "without mandatory=True to log it anyway)",
        event_ids=tuple(i.event.id for i in batch),
        event_type=event_type,
    )


def copies(
    exchange: str, item: Outgoing, queues: Sequence[str], sender: str, *, replay: bool = False
) -> list[tuple[str, str]]:
    """``(queue, message)`` for each subscriber copy of one event."""
    out = []
    for queue in queues:
        subscriber = names.subscriber_from_queue(exchange, queue) or queue
        out.append(
            (
                queue,
                wire.task_message(
                    item.prepared,
                    task=names.task_name(subscriber),
                    task_id=names.task_id(item.event.id, subscriber, "replay" if replay else ""),
                    queue=queue,
                    sender=sender,
                    replay=replay,
                ),
            )
        )
    return out
