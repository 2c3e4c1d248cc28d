"""RabbitMQ topology: the topic exchange, the pinned exchange and quorum subscriber queues.

Every subscriber queue is a durable **quorum queue** (replicated by Raft across a RabbitMQ
cluster) bound twice over:

* to the bus's topic exchange once per pattern, so RabbitMQ's own topic routing decides which
  subscribers an event reaches;
* to the *pinned* exchange (:func:`~wowevent_kombu.core.names.pinned_exchange`) under a key of its
  own (:func:`~wowevent_kombu.core.names.pinned_key`), so a retry, a replay or a dead-letter
  re-drive sent there reaches that one queue.

The pinned binding is the queue's primary one: Celery publishes a countdown retry on a quorum
queue through RabbitMQ-native delayed delivery, which forwards to the queue's primary exchange
with ``#.<routing key>``. Were the topic exchange primary, that forwarding binding
(``#.order.*``) would also route ``x.order.created`` events to an ``order.*`` subscriber.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kombu import Exchange, Queue, binding

from wowevent_kombu.core import names

QUORUM_ARGUMENTS = {"x-queue-type": "quorum"}


def topic_exchange(exchange: str) -> Exchange:
    """The durable topic exchange events are published to."""
    return Exchange(exchange, type="topic", durable=True)


def pinned_exchange(exchange: str) -> Exchange:
    """The durable topic exchange that reaches one queue by its name."""
    return Exchange(names.pinned_exchange(exchange), type="topic", durable=True)


class SubscriberQueue(Queue):  # type: ignore[misc]
    """A Kombu queue that keeps its primary exchange beside extra bindings.

    Kombu's ``Queue`` drops its exchange whenever bindings are given, and every copy (Celery
    and Kombu copy queues when they bind them to a channel) is rebuilt through the
    constructor. Losing the pinned primary binding would make Celery's delayed delivery bind
    the topic exchange with ``#.<pattern>`` instead (see the module docstring).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        primary = kwargs.get("exchange")
        super().__init__(*args, **kwargs)
        if isinstance(primary, Exchange):
            self.exchange = primary


def subscriber_queue(exchange: str, queue: str, patterns: Iterable[str]) -> Queue:
    """A subscriber queue as both publishers and workers declare it (identical arguments)."""
    topic = topic_exchange(exchange)
    return SubscriberQueue(
        queue,
        exchange=pinned_exchange(exchange),
        routing_key=names.pinned_key(queue),
        bindings={binding(topic, routing_key=p) for p in patterns},
        durable=True,
        queue_arguments=dict(QUORUM_ARGUMENTS),
    )


def pinned_route(exchange: str, queue: str) -> Queue:
    """Where a message for one queue only is sent (never declared from this side)."""
    return Queue(
        queue,
        exchange=pinned_exchange(exchange),
        routing_key=names.pinned_key(queue),
        durable=True,
        queue_arguments=dict(QUORUM_ARGUMENTS),
        no_declare=True,
    )
