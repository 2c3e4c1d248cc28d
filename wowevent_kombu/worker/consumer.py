"""A plain blocking consumer loop, for scripts and ``wowevent tail``, outside Celery workers."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from kombu import Connection, Consumer, Queue

from wowevent_kombu.brokers import temporary as temp
from wowevent_kombu.brokers.redis.connection import kombu_transport_options, make_client
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import InvalidEventError, InvalidSubscriberError
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.matcher import TopicMatcher
from wowevent_kombu.core.wire import EVENT_KWARG, REPLAY_HEADER
from wowevent_kombu.worker.subscriber import Handler

if TYPE_CHECKING:
    from wowevent_kombu.worker.busview import BusView

log = logging.getLogger(__name__)

_POLL = 1.0


def run_consumer(
    bus: BusView,
    handlers: Mapping[str, Handler],
    *,
    group: str,
    limit: int | None,
    timeout: float | None,
    temporary: bool,
    lease: float = temp.LEASE_SECONDS,
) -> int:
    """Run a blocking consumer loop: bind ``group``'s queue, dispatch deliveries until stopped.

    Each handler gets what its pattern matches. ``group`` names the consumer's queue, so
    several processes with the same group share the work. A delivery is acknowledged after
    every matching handler returned; when a handler raises, the loop stops with that exception
    and the unacknowledged delivery goes back to the queue.

    Args:
        bus: The bus whose exchange and transport the loop uses.
        handlers: Pattern -> callable taking an :class:`Event`.
        group: Consumer group (queue) name.
        limit: Stop after this many deliveries.
        timeout: Stop after this many seconds without a delivery.
        temporary: Unbind and delete the queue and its bell on exit (used by ``wowevent
            tail``), and hold a lease of ``lease`` seconds, refreshed while the loop runs, so
            that a killed process's queue is removed too (:mod:`wowevent_kombu.brokers.temporary`).
        lease: The time to live of a temporary queue whose consumer was killed.

    Returns:
        The number of deliveries handled.
    """
    if not handlers:
        raise InvalidSubscriberError(
            "consume() needs at least one pattern -> handler", subscriber=group
        )
    if not names.valid_subscriber_name(group):
        raise InvalidSubscriberError(f"group name {group!r} is not a valid name", subscriber=group)
    matcher = TopicMatcher()
    for pattern in handlers:
        matcher.add(pattern, pattern)
    queue = names.queue_name(bus.exchange, group)
    client = make_client(bus.settings) if temporary else None
    expire_lists = not bus.settings.amqp

    def refresh() -> None:
        if client is not None:
            temp.hold(client, bus.exchange, queue, lease, expire_lists=expire_lists)

    if client is not None:
        temp.reap(bus.transport, client, bus.exchange)
        refresh()  # the lease comes before the binding, so no reaper takes a live queue
    handled = 0
    try:
        bus.transport.bind(queue, list(handlers))
        handled = _loop(bus, queue, matcher, handlers, limit, timeout, refresh, lease / 3)
    finally:
        if client is not None:
            temp.remove(bus.transport, client, bus.exchange, queue)
            client.close()
    return handled


def _loop(
    bus: BusView,
    queue: str,
    matcher: TopicMatcher,
    handlers: Mapping[str, Handler],
    limit: int | None,
    timeout: float | None,
    refresh: Callable[[], None],
    refresh_every: float,
) -> int:
    handled = 0

    def on_message(body: Any, message: Any) -> None:
        nonlocal handled
        try:
            event = _event_of(body, message)
        except InvalidEventError as exc:
            log.warning("dropping a delivery on %s that is not an event: %s", queue, exc)
            message.reject(requeue=False)
            return
        for pattern in sorted(matcher.match(event.type)):
            handlers[pattern](event)
        message.ack()
        handled += 1

    options = kombu_transport_options(bus.settings)
    with (
        Connection(bus.settings.broker_url, transport_options=options) as conn,
        Consumer(
            conn, queues=[Queue(queue, no_declare=True)], callbacks=[on_message], accept=["json"]
        ),
    ):
        idle_since = refreshed = time.monotonic()
        while limit is None or handled < limit:
            before = handled
            with contextlib.suppress(TimeoutError):
                conn.drain_events(timeout=min(_POLL, refresh_every))
            now = time.monotonic()
            if now - refreshed >= refresh_every:
                refresh()
                refreshed = now
            if handled != before:
                idle_since = now
            elif timeout is not None and now - idle_since >= timeout:
                break
    return handled


def _event_of(body: Any, message: Any) -> Event:
    if not (isinstance(body, list | tuple) and len(body) == 3 and isinstance(body[1], dict)):
        raise InvalidEventError("the message body is not a task message [args, kwargs, embed]")
    document = body[1].get(EVENT_KWARG)
    if document is None:
        raise InvalidEventError(f"the task message has no {EVENT_KWARG!r} argument")
    replayed = bool((message.headers or {}).get(REPLAY_HEADER))
    return Event.from_cloudevent(document, replayed=replayed)
