"""The binding table seen by subscriber name: who is bound, to what, and how much waits for them."""

from __future__ import annotations

from collections.abc import Sequence

from wowevent_kombu.brokers.base import Transport
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import UnknownSubscriberError
from wowevent_kombu.core.topology import BindingSnapshot


def bound_subscribers(transport: Transport, exchange: str) -> dict[str, list[str]]:
    """Subscriber name -> bound patterns, as the broker's binding table holds them now."""
    snap: BindingSnapshot = transport.snapshot(refresh=True)
    return {
        names.subscriber_from_queue(exchange, queue) or queue: patterns
        for queue, patterns in snap.queues().items()
    }


def waiting(transport: Transport, exchange: str, subscribers: Sequence[str]) -> dict[str, int]:
    """Subscriber name -> deliveries waiting in its queue."""
    queues = [names.queue_name(exchange, name) for name in subscribers]
    depths = transport.queue_depths(queues)
    return {name: depths[queue] for name, queue in zip(subscribers, queues, strict=True)}


def unbind_subscriber(
    transport: Transport,
    exchange: str,
    name: str,
    patterns: Sequence[str] | None,
    *,
    registered: bool,
) -> list[str]:
    """Remove ``name``'s bindings (all, or ``patterns``); the patterns removed.

    A subscriber's queued deliveries stay queued, but the temporary queue of a ``wowevent
    tail`` (a name starting with :data:`~wowevent_kombu.core.names.TAIL_PREFIX`) has no one
    left to read it: unbinding all of it deletes the queue and its bell too.

    Raises:
        UnknownSubscriberError: nothing was bound and ``name`` is not ``registered`` either.
    """
    queue = names.queue_name(exchange, name)
    removed = transport.unbind(queue, patterns)
    if patterns is None and name.startswith(names.TAIL_PREFIX):
        transport.delete_queue(queue)
    if not removed and not registered:
        raise UnknownSubscriberError(
            f"no subscriber {name!r} is bound on exchange {exchange!r}; "
            "'wowevent subscribers' lists those that are",
            subscriber=name,
        )
    return removed
