"""Wiring a bus into its Celery app's workers: the bootsteps, added once when the bus is made.

Nothing runs at that moment: each step acts when a worker of the app starts (queues, bindings,
the guarded transport, the pool guard, malformed entries recorded as dead letters). The broker
URL is also handed to Kombu in a form it reads, once the app is configured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from wowevent_kombu.core import names
from wowevent_kombu.core.urls import credentials_in_userinfo
from wowevent_kombu.deadletters.store import DeadLetterStore
from wowevent_kombu.worker.breakerstore import BreakerStore
from wowevent_kombu.worker.breakerwatch import make_breaker_step
from wowevent_kombu.worker.busview import BusView
from wowevent_kombu.worker.malformed import MalformedEntries, make_malformed_step
from wowevent_kombu.worker.poolguard import make_pool_guard_step
from wowevent_kombu.worker.steps import make_binding_step, make_bootstep


def install(
    app: Celery,
    bus: BusView,
    malformed_store: Callable[[], DeadLetterStore | None],
    breakers: Callable[[], BreakerStore | None] | None = None,
) -> None:
    """Add ``bus``'s worker and consumer bootsteps to ``app``.

    Args:
        app: The Celery app whose workers run the bus's subscribers.
        bus: The bus (read when a worker starts, not now).
        malformed_store: Where malformed entries of the subscriber queues are recorded.
        breakers: The bus's circuit-breaker store, followed by every worker (when given).
    """
    app.steps["worker"].add(make_bootstep(bus))
    app.steps["consumer"].add(make_binding_step(bus))
    entries = MalformedEntries(
        bus.queues_to_subscribers,
        malformed_store,
        # Registered on RabbitMQ only; on Redis no worker knows it, so it is refused anyway.
        routed_task=names.dispatch_task_name(bus.exchange),
    )
    app.steps["consumer"].add(make_malformed_step(bus.exchange, entries))
    app.steps["worker"].add(make_pool_guard_step(bus.exchange, entries.record))
    if breakers is not None:
        watch = make_breaker_step(bus.exchange, lambda: bus.subscribers, breakers)
        app.steps["consumer"].add(watch)
    # Kombu (hence every worker) fails on ``?password=`` in the broker URL, which redis-py
    # and the publisher accept: give Kombu the same credentials in the userinfo.
    if app.configured:
        kombu_readable_broker_url(app)
    else:
        app.on_after_configure.connect(kombu_readable_broker_url, weak=False)


def kombu_readable_broker_url(sender: Celery, **_: Any) -> None:
    """Move ``password=``/``username=`` of the app's broker URL into its userinfo."""
    url = sender.conf.broker_url
    if isinstance(url, str) and url:
        moved = credentials_in_userinfo(url)
        if moved != url:
            sender.conf.broker_url = moved
