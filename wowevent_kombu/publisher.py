"""Publishing: build the event, validate it, encode it once, check its size, hand it to the broker.

Every publish path (:meth:`EventBus.publish <wowevent_kombu.bus.EventBus.publish>`, the CLI,
the HTTP admin route, replays of built events) ends in :meth:`Publisher.publish_many`: either
the whole batch is valid and sent in one broker call, or nothing is written.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import redis

from wowevent_kombu.brokers.base import Transport
from wowevent_kombu.brokers.outgoing import Outgoing
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.errors import EventTooLargeError, InvalidEventError, PublishError
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.schemas.registry import SchemaRegistry

if TYPE_CHECKING:
    from wowevent_kombu.observability.metrics import BusMetrics
    from wowevent_kombu.observability.tracing import BusTracing

AsyncSend = Callable[..., Awaitable[list[tuple[str, ...]]]]
"""``await send(batch, mandatory=...)``: an async transport's ``send``."""


EVENT_ATTRIBUTES = (
    "source",
    "subject",
    "correlation_id",
    "causation_id",
    "schema_version",
    "id",
    "time",
)
"""The keywords :meth:`Publisher.build` takes besides the type and data."""


class Publisher:
    """The publish path of one bus; its parts are looked up on use, as the bus makes them lazily.

    The bus keeps the only copy of each part; a part it replaces later (its ``source``, say)
    is what the next publish uses.

    Args:
        source: Returns the default CloudEvents ``source``.
        settings: Returns the bus settings.
        transport: Returns the broker transport.
        metrics: Returns the bus's metrics, or ``None`` when it is not instrumented.
        schemas: Returns the schema registry to validate against, if any, and whether events
            whose type has no registered schema are refused.
        tracing: Returns the bus's tracing, or ``None`` when it is not traced.
    """

    def __init__(
        self,
        *,
        source: Callable[[], str],
        settings: Callable[[], Settings],
        transport: Callable[[], Transport],
        metrics: Callable[[], BusMetrics | None],
        schemas: Callable[[], tuple[SchemaRegistry | None, bool]],
        tracing: Callable[[], BusTracing | None] = lambda: None,
    ) -> None:
        self._source = source
        self._settings = settings
        self._transport = transport
        self._metrics = metrics
        self._schemas = schemas
        self._tracing = tracing

    def build(
        self,
        type: str,
        data: Any,
        *,
        source: str | None,
        subject: str | None,
        correlation_id: str | None,
        causation_id: str | None,
        schema_version: str | None,
        id: str | None,
        time: datetime | None,
    ) -> Event:
        """The event a publish call describes, with its schema's newest version when unset."""
        registry, _ = self._schemas()
        if schema_version is None and registry is not None:
            # Resolved here so the event is built once with its version, not copied to add it.
            try:
                schema_version = registry.latest_version(type)
            except redis.RedisError as exc:
                raise registry_error(exc, type, ()) from exc
        attributes: dict[str, Any] = {
            "source": source or self._source(),
            "subject": subject,
            "correlation_id": correlation_id,
            "causation_id": causation_id,
            "schema_version": schema_version,
        }
        if id is not None:
            attributes["id"] = id
        if time is not None:
            attributes["time"] = time
        try:
            return Event(type=type, data=data, **attributes)
        except InvalidEventError:
            self._count_invalid()
            raise

    def publish_many(self, events: Iterable[Event], *, mandatory: bool) -> list[Event]:
        """Validate every event, then log and deliver them all in one broker call."""
        return [event for event, _ in self.send(events, mandatory=mandatory)]

    async def apublish_many(
        self, events: Iterable[Event], *, mandatory: bool, send: AsyncSend
    ) -> list[Event]:
        """:meth:`publish_many` with the broker call awaited through ``send``."""
        tracing = self._tracing()
        if tracing is None:
            batch = self.prepare_all(events)
            return self.published(batch, await send(batch, mandatory=mandatory))
        # The span is current in this task only (contextvars), across the await.
        span, token, traced = tracing.start_publish(list(events))
        try:
            batch = self.prepare_all(traced)
            sent = self.published(batch, await send(batch, mandatory=mandatory))
        except BaseException as exc:
            tracing.end_publish((span, token), exc)
            raise
        tracing.end_publish((span, token), None)
        return sent

    def publish_reaching(
        self,
        type: str,
        data: Any,
        *,
        mandatory: bool,
        exchange: str,
        attributes: Mapping[str, Any],
    ) -> tuple[Event, list[str]]:
        """Build and publish one event; it and the names of the subscribers it reached."""
        options: dict[str, Any] = dict.fromkeys(EVENT_ATTRIBUTES)
        if unknown := set(attributes) - set(options):
            raise TypeError(f"unexpected keyword(s) for publishing: {sorted(unknown)}")
        event = self.build(type, data, **{**options, **attributes})
        [(sent, queues)] = self.send([event], mandatory=mandatory)
        found = (names.subscriber_from_queue(exchange, q) for q in queues)
        return sent, sorted(name or queue for name, queue in zip(found, queues, strict=True))

    def send(
        self, events: Iterable[Event], *, mandatory: bool
    ) -> list[tuple[Event, tuple[str, ...]]]:
        """:meth:`publish_many`, returning each event as sent with the queues it reached."""
        tracing = self._tracing()
        if tracing is None:
            return self._send(events, mandatory)
        span, token, traced = tracing.start_publish(list(events))
        try:
            sent = self._send(traced, mandatory)
        except BaseException as exc:
            tracing.end_publish((span, token), exc)
            raise
        tracing.end_publish((span, token), None)
        return sent

    def _send(
        self, events: Iterable[Event], mandatory: bool
    ) -> list[tuple[Event, tuple[str, ...]]]:
        batch = self.prepare_all(events)
        routes = self._transport().send(batch, mandatory=mandatory)
        return list(zip(self.published(batch, routes), routes, strict=True))

    def prepare_all(self, events: Iterable[Event]) -> list[Outgoing]:
        """Every event prepared (see :meth:`prepare`), or the first refusal; nothing is sent."""
        try:
            return [self.prepare(event) for event in events]
        except InvalidEventError:
            self._count_invalid()
            raise

    def published(self, batch: list[Outgoing], routes: list[tuple[str, ...]]) -> list[Event]:
        """The events of a sent batch, counted in the metrics."""
        published = [item.event for item in batch]
        metrics = self._metrics()
        if metrics is not None:
            metrics.record_published(published, routes)
        return published

    def prepare(self, event: Event) -> Outgoing:
        """``event`` validated against its schema, encoded once and size-checked."""
        if not isinstance(event, Event):
            raise InvalidEventError(f"publish_many takes Event objects, got {type(event).__name__}")
        registry, required = self._schemas()
        if registry is not None:
            try:
                event = registry.validate(event, require=required)
            except redis.RedisError as exc:
                raise registry_error(exc, event.type, (event.id,)) from exc
        text = event.to_json()
        # Encoded once, for the message body and the size check alike.
        prepared = wire.prepare(text, event_type=event.type)
        limit = self._settings().max_event_bytes
        if prepared.size > limit:
            raise EventTooLargeError(
                f"event {event.id} of type {event.type!r} is {prepared.size} bytes encoded; the "
                f"limit is {limit} (max_event_bytes). Store large payloads elsewhere and send a "
                "reference",
                event_type=event.type,
                size=prepared.size,
                limit=limit,
            )
        return Outgoing(event, text, prepared)

    def _count_invalid(self) -> None:
        metrics = self._metrics()
        if metrics is not None:
            metrics.record_validation_failure("publish")


def registry_error(exc: redis.RedisError, event_type: str, ids: tuple[str, ...]) -> PublishError:
    """The ``PublishError`` of a publish that could not read the schema registry."""
    return PublishError(
        f"reading the schema registry failed ({type(exc).__name__}: {exc}); nothing was "
        "written: publish again once Redis answers",
        event_ids=ids,
        event_type=event_type,
    )
