"""The event bus: subscribers as Celery tasks, publishing with publisher-side topic fan-out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from celery import Celery
from kombu import Exchange, Queue

from wowevent_kombu.apublishing import AsyncPublishing
from wowevent_kombu.brokers.base import Transport
from wowevent_kombu.brokers.bindings import bound_subscribers, unbind_subscriber, waiting
from wowevent_kombu.brokers.factory import make_transport, pinned_route
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import ConfigurationError, InvalidSubscriberError
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.deadletters.store import DeadLetterStore
from wowevent_kombu.log.eventlog import EventLog
from wowevent_kombu.log.options import apply_log_options, processed_ids_of
from wowevent_kombu.publisher import Publisher
from wowevent_kombu.schemas.registry import SchemaRegistry
from wowevent_kombu.schemas.validation import SchemaValidation
from wowevent_kombu.worker.breaker import Breakers
from wowevent_kombu.worker.deadlettering import DeadLettering
from wowevent_kombu.worker.install import install
from wowevent_kombu.worker.middleware import Middleware
from wowevent_kombu.worker.subscriber import (
    Handler,
    Subscriber,
    check_name,
    normalise_patterns,
    register,
)

if TYPE_CHECKING:
    from wowevent_kombu.log.replay import ReplayReport
    from wowevent_kombu.observability.metrics import BusMetrics
    from wowevent_kombu.observability.tracing import BusTracing

H = TypeVar("H", bound=Callable[..., Any])

APP_ATTRIBUTE = "wowevent_buses"
"""Attribute of the Celery app listing the buses created on it (for the CLI's ``-A``)."""


class EventBus:
    """Publishes events and runs subscribers as Celery tasks of ``app``.

    Args:
        app: The Celery app whose workers run the subscribers.
        exchange: Topic exchange name; also prefixes every queue and key of this bus.
        source: Default CloudEvents ``source`` of published events.
        settings: Full settings; otherwise read by :meth:`Settings.load` from the app's conf,
            ``WOWEVENT_*`` environment variables and the keyword options given here.
        transport: Where events go; defaults to Redis at the app's broker URL. Tests pass
            :class:`wowevent_kombu.testing.MemoryTransport`.
        middleware: Delivery hooks run around every subscriber's handler, in this order
            (see :class:`~wowevent_kombu.worker.middleware.Middleware`); append more before workers
            start with :meth:`add_middleware`.
        subscriber_defaults: Celery task options applied to every subscriber of this bus
            unless the subscriber sets them itself (e.g. ``max_retries``, ``retry_backoff``).
        publish_timeout: Seconds before a publish to an unresponsive Redis raises.
        max_event_bytes: Largest encoded event accepted.
        wait_replicas: After each publish, wait for this many replicas to acknowledge it
            (Redis ``WAIT``) and raise :class:`~wowevent_kombu.core.errors.ReplicationError` when
            fewer do; closes the window in which a failover loses acknowledged publishes, at the
            cost of one replication round trip per publish (see ``docs/scaling.md``).
        wait_timeout_ms: How long that wait may take (milliseconds, below ``publish_timeout``).
        dead_lettering: Record failed deliveries in the dead-letter store (:attr:`dead_letters`).
        dead_letter_retention: Optional ``{"max_age": seconds, "max_records": n}``, applied
            after each dead-letter write; what it drops is logged as a warning.
        schemas: A schema registry: published events are validated against it (an invalid
            event raises ``EventValidationError`` and nothing is written) and carry the schema
            version they were checked with; subscribers validate again before their handler
            runs (see :class:`~wowevent_kombu.schemas.validation.SchemaValidation`).
        require_schemas: Refuse events whose type has no registered schema (needs ``schemas``).
        validate_on_consume: Add the consume-time check to the subscribers (default True when
            ``schemas`` is given).
    """

    def __init__(
        self,
        app: Celery,
        *,
        exchange: str | None = None,
        source: str = "wowevent",
        settings: Settings | None = None,
        transport: Transport | None = None,
        subscriber_defaults: Mapping[str, Any] | None = None,
        publish_timeout: float | None = None,
        max_event_bytes: int | None = None,
        wait_replicas: int | None = None,
        wait_timeout_ms: int | None = None,
        middleware: Sequence[Middleware] = (),
        dead_lettering: bool = True,
        dead_letter_retention: Mapping[str, float | int | None] | None = None,
        schemas: SchemaRegistry | None = None,
        require_schemas: bool = False,
        validate_on_consume: bool = True,
    ) -> None:
        if require_schemas and schemas is None:
            raise ConfigurationError("require_schemas=True needs a registry: pass schemas=...")
        self.app = app
        # The exchange is fixed now (queue names derive from it); the rest of the settings are
        # read on first use, so an app configured after the bus was created is honoured.
        self.exchange: str = (
            settings.exchange if settings is not None else Settings.resolve_exchange(exchange)
        )
        self._settings = settings
        self._overrides: dict[str, Any] = {
            "publish_timeout": publish_timeout,
            "max_event_bytes": max_event_bytes,
            "wait_replicas": wait_replicas,
            "wait_timeout_ms": wait_timeout_ms,
        }
        self.source = source
        self._transport = transport
        self._subscribers: dict[str, Subscriber] = {}
        self._defaults = dict(subscriber_defaults or {})
        self.middleware: list[Middleware] = list(middleware)
        self.schemas = schemas
        self.require_schemas = require_schemas
        if schemas is not None and validate_on_consume:
            # First, so no other middleware (and no handler) sees an invalid event.
            self.middleware.insert(0, SchemaValidation(schemas, require=require_schemas))
        self._log: EventLog | None = None
        self.metrics: BusMetrics | None = None
        """Counts publishes when set (see ``telemetry.instrument``)."""
        self.tracing: BusTracing | None = None
        """Traces publishes when set (see ``tracing.enable_tracing``)."""
        self._dead_letters = DeadLettering(
            enabled=dead_lettering,
            retention=dead_letter_retention,
            exchange=self.exchange,
            transport=lambda: self.transport,
            settings=lambda: self.settings,
            redrive_targets=lambda: set(self.bindings()) | set(self._subscribers),
        )
        if self._dead_letters.middleware is not None:
            # Last in the chain, so on_failure (run in reverse) writes the record before any
            # other middleware reacts to the failure.
            self.middleware.append(self._dead_letters.middleware)
        self._publisher = Publisher(
            source=lambda: self.source,
            settings=lambda: self.settings,
            transport=lambda: self.transport,
            metrics=lambda: self.metrics,
            schemas=lambda: (self.schemas, self.require_schemas),
            tracing=lambda: self.tracing,
        )
        self._async = AsyncPublishing(
            self._publisher, lambda: self.settings, lambda: self.transport
        )
        self.breakers = Breakers(
            self.exchange, lambda: self.transport, lambda: self._subscribers, self.bindings
        )
        self.kombu_exchange = Exchange(self.exchange, type="topic", durable=True)
        install(app, self, self._dead_letters.malformed_store, self.breakers.store)
        vars(app).setdefault(APP_ATTRIBUTE, []).append(self)

    def __repr__(self) -> str:
        return f"<EventBus exchange={self.exchange!r} subscribers={sorted(self._subscribers)}>"

    @property
    def settings(self) -> Settings:
        """The bus settings, read on first use from the app's conf and the environment."""
        if self._settings is None:
            self._settings = Settings.load(
                self.app.conf, None, exchange=self.exchange, **self._overrides
            )
        return self._settings

    @property
    def transport(self) -> Transport:
        """The transport, created (without connecting) on first use."""
        if self._transport is None:
            self._transport = make_transport(self.settings)
        return self._transport

    @property
    def subscribers(self) -> Mapping[str, Subscriber]:
        """Subscribers registered on this bus in this process, by name."""
        return dict(self._subscribers)

    def subscriber(
        self, patterns: str | Sequence[str], *, name: str, bind: bool = False, **task_options: Any
    ) -> Callable[[H], Any]:
        """Register the decorated function as a subscriber running as its own Celery task.

        Args:
            patterns: One topic pattern or several (``*`` one word, ``#`` zero or more).
            name: Unique subscriber name; the Celery task name and the queue suffix.
            bind: Pass the task instance as the handler's first argument (for ``self.retry``).
            task_options: Any Celery task option, with Celery's meaning (``autoretry_for``,
                ``retry_backoff``, ``max_retries``, ``rate_limit``, ``time_limit``, ...).
                Subscribers default to ``acks_late=True`` and ``retry_on_worker_lost=True``.
                The bus's own, off by default: ``idempotent=True`` skips event ids already
                handled (:mod:`~wowevent_kombu.log.idempotency`); ``checkpoint=True`` records
                the newest handled log position (:mod:`~wowevent_kombu.log.checkpoint`);
                ``circuit_breaker=`` pauses it while it fails (``worker/breaker.py``).

        Returns:
            A decorator that returns the Celery task (callable like the handler).
        """
        task_options = self._log_options(task_options)
        check_name(name)
        if name in self._subscribers:
            raise InvalidSubscriberError(
                f"subscriber {name!r} is already registered on this bus", subscriber=name
            )
        chosen = normalise_patterns(patterns, subscriber=name)

        def decorate(handler: H) -> Any:
            sub = register(
                self.app,
                handler,
                name=name,
                patterns=chosen,
                queue=names.queue_name(self.exchange, name),
                bind=bind,
                options=self.breakers.apply({**self._defaults, **task_options}, self.middleware),
                middleware=self.middleware,
                pinned_route=self._pinned_route,
            )
            self._subscribers[name] = sub
            return sub.task

        return decorate

    def _pinned_route(self, queue: str) -> Queue:
        return pinned_route(self.settings, queue)

    def _log_options(self, options: dict[str, Any]) -> dict[str, Any]:
        return apply_log_options(
            options,
            self.middleware,
            processed_ids=lambda: processed_ids_of(
                self._log_if_any(), self.exchange, self.settings.log_max_age
            ),
            eventlog=self._log_if_any,
        )

    def _log_if_any(self) -> EventLog | None:
        return self.log if getattr(self.transport, "client", None) is not None else None

    @property
    def log(self) -> EventLog:
        """The persisted event log: queries, lookups, stats and checkpoints (needs Redis)."""
        if self._log is None:
            self._log = EventLog.beside(self.transport, self.settings)
        return self._log

    def replay(
        self,
        subscribers: Sequence[str] | None = None,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        types: str | Sequence[str] | None = None,
        correlation_id: str | None = None,
        source: str | None = None,
        speed: str | float = "instant",
        dry_run: bool = False,
        force: bool = False,
        from_checkpoint: bool = False,
        resume: str | None = None,
        progress: Callable[[ReplayReport, float], None] | None = None,
    ) -> ReplayReport:
        """Re-publish logged events as Celery tasks to the named subscribers only.

        Each selected event goes to those of ``subscribers`` whose current patterns match its
        type (to all of them with ``force``), keeping its id and marked as a replay. The
        arguments, the report and the errors are those of
        :meth:`Replayer.run <wowevent_kombu.log.replay.Replayer.run>`.
        """
        from wowevent_kombu.log.replay import Replayer

        return Replayer(self, self.log).run(
            subscribers=subscribers, since=since, until=until, types=types,
            correlation_id=correlation_id, source=source, speed=speed, dry_run=dry_run,
            force=force, from_checkpoint=from_checkpoint, resume=resume, progress=progress,
        )  # fmt: skip

    def add_middleware(self, item: Middleware) -> None:
        """Add delivery hooks; every subscriber of this bus (also those already made) runs them.

        The dead-letter middleware stays last in the chain: its ``on_failure`` runs first.
        """
        if self._dead_letters.middleware is not None:
            self.middleware.insert(len(self.middleware) - 1, item)
        else:
            self.middleware.append(item)

    @property
    def dead_letters(self) -> DeadLetterStore:
        """The dead-letter store of this bus: list, show, re-drive and purge failed deliveries.

        Raises:
            ConfigurationError: the bus's transport is not Redis (e.g. the in-memory test bus).
        """
        return self._dead_letters.store()

    def queues_to_subscribers(self) -> dict[str, str]:
        """``{queue: subscriber name}`` of the subscribers registered here."""
        return {sub.queue: sub.name for sub in self._subscribers.values()}

    def declare(self) -> dict[str, tuple[str, ...]]:
        """Bind every registered subscriber's queue to its patterns (idempotent; deploy time)."""
        for sub in self._subscribers.values():
            self.transport.bind(sub.queue, sub.patterns)
        return {sub.name: sub.patterns for sub in self._subscribers.values()}

    def unsubscribe(self, name: str, patterns: Sequence[str] | None = None) -> list[str]:
        """Remove a subscriber's bindings (all, or the given patterns) from the exchange.

        Events published afterwards no longer reach it; deliveries already queued stay queued.

        Raises:
            UnknownSubscriberError: the name is neither registered here nor bound in Redis.
        """
        return unbind_subscriber(
            self.transport, self.exchange, name, patterns, registered=name in self._subscribers
        )

    def bindings(self) -> dict[str, list[str]]:
        """Subscriber name -> bound patterns, as Redis holds them now."""
        return bound_subscribers(self.transport, self.exchange)

    def queue_depths(self) -> dict[str, int]:
        """Subscriber name -> deliveries waiting in its queue, for every bound subscriber."""
        return waiting(self.transport, self.exchange, list(self.bindings()))

    def publish(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        schema_version: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        mandatory: bool = False,
    ) -> Event:
        """Build, log and deliver one event; returns it once Redis committed the transaction.

        Raises:
            InvalidEventError: bad type, non-JSON data or oversized event; nothing written.
            EventValidationError: the data breaks its schema (with ``schemas``); nothing written.
            UnroutableEventError: ``mandatory=True`` and no subscriber matches; nothing written.
            PublishError: Redis failed or timed out; nothing written (see ``outcome_unknown``).
        """
        event = self._publisher.build(
            type, data, source=source, subject=subject, correlation_id=correlation_id,
            causation_id=causation_id, schema_version=schema_version, id=id, time=time,
        )  # fmt: skip
        return self._publisher.publish_many([event], mandatory=mandatory)[0]

    def publish_event(self, event: Event, *, mandatory: bool = False) -> Event:
        """Publish an already built :class:`Event`; returns it as sent (with its schema version)."""
        return self.publish_many([event], mandatory=mandatory)[0]

    def publish_reaching(
        self, type: str, data: Any = None, *, mandatory: bool = False, **attributes: Any
    ) -> tuple[Event, list[str]]:
        """:meth:`publish` (same keywords), also returning the subscribers the event reached.

        The names are sorted; an empty list means the event matched no binding: it is logged
        but delivered to nobody (``mandatory=True`` raises instead).
        """
        return self._publisher.publish_reaching(
            type, data, mandatory=mandatory, exchange=self.exchange, attributes=attributes
        )

    def publish_many(self, events: Iterable[Event], *, mandatory: bool = False) -> list[Event]:
        """Publish several events in one transaction: all are logged and delivered, or none.

        Each event goes only to the subscribers matching its own type; publish order is kept
        per subscriber queue. Every event is validated before anything is sent, so one invalid
        event stops the whole batch. Returns the events as sent (with their schema versions).
        """
        return self._publisher.publish_many(events, mandatory=mandatory)

    async def apublish(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        schema_version: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
        mandatory: bool = False,
    ) -> Event:
        """:meth:`publish` for asyncio code: the same event, checks, errors and atomicity.

        Publishes awaited concurrently share one connection and one round trip per batch of
        calls (see :mod:`wowevent_kombu.apublishing`); ``await bus.aclose()`` before the loop
        ends (a FastAPI lifespan's shutdown, say).
        """
        event = self._publisher.build(
            type, data, source=source, subject=subject, correlation_id=correlation_id,
            causation_id=causation_id, schema_version=schema_version, id=id, time=time,
        )  # fmt: skip
        return (await self._async.publish_many([event], mandatory=mandatory))[0]

    async def apublish_many(
        self, events: Iterable[Event], *, mandatory: bool = False
    ) -> list[Event]:
        """:meth:`publish_many` for asyncio code: all logged and delivered, or none."""
        return await self._async.publish_many(events, mandatory=mandatory)

    async def aclose(self) -> None:
        """Close the async publisher's connections of the running event loop."""
        await self._async.aclose()

    # -- consuming outside Celery --------------------------------------------------------------

    def consume(
        self,
        handlers: Mapping[str, Handler],
        *,
        group: str,
        limit: int | None = None,
        timeout: float | None = None,
        temporary: bool = False,
        lease: float = 60.0,
    ) -> int:
        """Run a blocking consumer loop for scripts: each handler gets what its pattern matches.

        ``group`` names the consumer's queue, shared by every process of the group; see
        :func:`~wowevent_kombu.worker.consumer.run_consumer` for the arguments.
        """
        from wowevent_kombu.worker.consumer import run_consumer

        return run_consumer(
            self, handlers, group=group, limit=limit, timeout=timeout, temporary=temporary,
            lease=lease,
        )  # fmt: skip

    def close(self) -> None:
        """Release the bus's Redis connections."""
        if self._transport is not None:
            self._transport.close()


def buses_of(app: Celery) -> list[EventBus]:
    """The buses created on ``app`` (in creation order)."""
    return list(getattr(app, APP_ATTRIBUTE, []))
