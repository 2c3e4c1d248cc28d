"""The schema registry: versioned event schemas kept in Redis and shared by every process.

Versions are append-only: a version, once registered, never changes, so a compiled validator for
``(type, version)`` is cached for the life of the process and never re-compiled. What can go
stale is only "which version is the latest" (and "has this type any schema"); every
registration bumps a counter in Redis, and a process re-reads that counter at most every
``refresh_interval`` seconds, dropping its latest-version answers when it moved. A version that
is not cached yet is always read from Redis, so a consumer validating an event that names a
version registered a moment ago never waits for the refresh.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import (
    EventEncodingError,
    EventValidationError,
    InvalidSchemaError,
    UnknownSchemaError,
)
from wowevent_kombu.core.event import Event, validate_event_type
from wowevent_kombu.core.nesting import MAX_DEPTH
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.schemas.compatibility import DEFAULT_MODE, admit, validate_mode
from wowevent_kombu.schemas.record import SchemaRecord
from wowevent_kombu.schemas.schema import CompiledSchema, EventSchema, SemVer, describe_violations

log = logging.getLogger(__name__)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _semver_or_none(text: str) -> SemVer | None:
    try:
        return SemVer.parse(text)
    except InvalidSchemaError:
        return None


class SchemaRegistry:
    """Versioned JSON Schemas for event types, stored in Redis under ``namespace``.

    Args:
        client: The Redis client to use (the registry never closes a client it was given).
        namespace: Prefix of the registry's keys; processes share schemas when they share it.
            Defaults to the default exchange name, so ``wowevent schemas`` finds them.
        refresh_interval: Longest time, in seconds, this process may keep answering "latest
            version" from its cache after another process registered a newer one (0: check the
            counter on every lookup, one extra Redis round trip each).
        fast: Use the ``fastjsonschema`` pre-check where the document allows it.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        namespace: str = names.DEFAULT_EXCHANGE,
        refresh_interval: float = 1.0,
        fast: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_interval < 0:
            raise ValueError(f"refresh_interval must be >= 0, got {refresh_interval!r}")
        self._client = client
        self.namespace = namespace
        self.refresh_interval = refresh_interval
        self.fast = fast
        self._clock = clock
        self._owns_client = False
        self._types_key = names.schema_types_key(namespace)
        self._counter_key = names.schema_counter_key(namespace)
        self._compiled: dict[tuple[str, str], CompiledSchema] = {}
        self._latest: dict[str, str | None] = {}
        self._counter: int | None = None
        self._checked_at = float("-inf")
        self._lock = threading.Lock()

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        namespace: str = names.DEFAULT_EXCHANGE,
        timeout: float = 5.0,
        master_name: str | None = None,
        **kwargs: Any,
    ) -> SchemaRegistry:
        """A registry on its own Redis client for ``url`` (closed by :meth:`close`).

        ``url`` takes every broker URL form of the bus, ``sentinel://`` included; the Sentinel
        service name is ``master_name`` or ``WOWEVENT_MASTER_NAME`` (and the sentinels' own
        credentials ``WOWEVENT_SENTINEL_USERNAME``/``WOWEVENT_SENTINEL_PASSWORD``). Commands
        fail after ``timeout`` seconds and are not retried.
        """
        settings = Settings.load(broker_url=url, publish_timeout=timeout, master_name=master_name)
        registry = cls(make_client(settings), namespace=namespace, **kwargs)
        registry._owns_client = True
        return registry

    def __repr__(self) -> str:
        return f"<SchemaRegistry namespace={self.namespace!r}>"

    def close(self) -> None:
        """Release the Redis client if the registry made it."""
        if self._owns_client:
            self._client.close()

    # -- writing -------------------------------------------------------------------------------

    def register(self, schema: EventSchema, *, compatibility: str = DEFAULT_MODE) -> bool:
        """Store a new version, refusing it when ``compatibility`` says it breaks earlier ones.

        Registering an identical document under an existing version is a no-op.

        Returns:
            True when stored, False when the same document was already registered.

        Raises:
            InvalidSchemaError: unknown compatibility mode.
            SchemaConflictError: the version exists with another document, or is not newer
                than every registered version of the type (versions are append-only).
            IncompatibleSchemaError: the mode refuses the change; ``changes`` names each one.
        """
        validate_mode(compatibility)
        key = names.schema_versions_key(self.namespace, schema.type)
        with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    # WATCH makes two concurrent registrations unable to both pass the check
                    # against the same "latest".
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    existing = self._records(pipe.hgetall(key), schema.type)
                    if not self._admissible(schema, existing, compatibility):
                        return False
                    registered_at = datetime.now(UTC).isoformat(timespec="seconds")
                    record = SchemaRecord(schema, compatibility, registered_at)
                    pipe.multi()
                    pipe.hset(key, schema.version, record.to_stored())
                    pipe.sadd(self._types_key, schema.type)
                    pipe.incr(self._counter_key)
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        with self._lock:
            self._latest.pop(schema.type, None)
        log.info("registered schema %s %s (%s)", schema.type, schema.version, compatibility)
        return True

    def check(self, schema: EventSchema, *, compatibility: str = DEFAULT_MODE) -> bool:
        """Whether :meth:`register` would store ``schema`` now; nothing is written.

        Returns:
            True if it would be stored, False if it is already registered identically.

        Raises:
            The errors :meth:`register` would raise.
        """
        validate_mode(compatibility)
        key = names.schema_versions_key(self.namespace, schema.type)
        existing = self._records(self._client.hgetall(key), schema.type)
        return self._admissible(schema, existing, compatibility)

    def _admissible(
        self, schema: EventSchema, existing: list[SchemaRecord], compatibility: str
    ) -> bool:
        # One method between the read and the write, so a test can race a registration here.
        return admit(schema, [r.schema for r in existing], compatibility)

    def load_dir(self, path: str | Path, *, compatibility: str = DEFAULT_MODE) -> list[EventSchema]:
        """Register every ``<type>/<version>.json`` under ``path``, in version order per type.

        Idempotent: versions already registered with the same document are skipped. Every file
        is read and checked before anything is stored.

        Returns:
            The schemas newly stored.
        """
        root = Path(path)
        if not root.is_dir():
            raise InvalidSchemaError(f"schema directory {root} does not exist")
        schemas = [EventSchema.from_file(f) for f in sorted(root.glob("*/*.json"))]
        schemas.sort(key=lambda s: (s.type, s.semver))
        return [s for s in schemas if self.register(s, compatibility=compatibility)]

    # -- reading -------------------------------------------------------------------------------

    def _records(self, raw: dict[Any, Any], event_type: str) -> list[SchemaRecord]:
        out = []
        for version, value in raw.items():
            out.append(SchemaRecord.from_stored(event_type, _text(version), value))
        out.sort(key=lambda r: r.schema.semver)
        return out

    def types(self) -> list[str]:
        """Every event type with a registered schema, sorted."""
        return sorted(_text(t) for t in self._client.smembers(self._types_key))

    def history(self, event_type: str) -> list[SchemaRecord]:
        """Every version of ``event_type``, oldest first (empty when none)."""
        key = names.schema_versions_key(self.namespace, validate_event_type(event_type))
        return self._records(self._client.hgetall(key), event_type)

    def versions(self, event_type: str) -> list[str]:
        """The registered versions of ``event_type``, oldest first."""
        return [r.schema.version for r in self.history(event_type)]

    def get(self, event_type: str, version: str | None = None) -> EventSchema:
        """One schema; the latest version when ``version`` is None.

        Raises:
            UnknownSchemaError: no such type or version.
        """
        if version is None:
            version = self.latest_version(event_type)
            if version is None:
                raise UnknownSchemaError(
                    f"no schema is registered for event type {event_type!r} "
                    f"(namespace {self.namespace!r})",
                    event_type=event_type,
                )
        return self.compiled(event_type, version).schema

    def latest_version(self, event_type: str) -> str | None:
        """The newest version of ``event_type`` (at most ``refresh_interval`` stale), or None."""
        self._refresh()
        try:
            return self._latest[event_type]
        except KeyError:
            pass
        key = names.schema_versions_key(self.namespace, event_type)
        versions = [_text(v) for v in self._client.hkeys(key)]
        latest = str(max(versions, key=SemVer.parse)) if versions else None
        with self._lock:
            self._latest[event_type] = latest
        return latest

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._checked_at < self.refresh_interval:
            return
        counter = int(self._client.get(self._counter_key) or 0)
        with self._lock:
            if counter != self._counter:
                self._latest.clear()
                self._counter = counter
            self._checked_at = now

    def compiled(self, event_type: str, version: str) -> CompiledSchema:
        """The compiled validator of one version (compiled on first use, then cached).

        Raises:
            UnknownSchemaError: the version is not registered.
        """
        cache_key = (event_type, version)
        found = self._compiled.get(cache_key)
        if found is not None:
            return found
        raw = self._client.hget(names.schema_versions_key(self.namespace, event_type), version)
        if raw is not None:
            schema = SchemaRecord.from_stored(event_type, version, raw).schema
        else:
            # The same version may be stored with other build metadata (1.0.0 vs 1.0.0+b7).
            history = self.history(event_type)
            wanted = _semver_or_none(version)
            same = [r.schema for r in history if wanted is not None and r.schema.semver == wanted]
            if not same:
                known = ", ".join(r.schema.version for r in history) or "none"
                raise UnknownSchemaError(
                    f"schema {event_type} {version} is not registered (namespace "
                    f"{self.namespace!r}; known versions: {known})",
                    event_type=event_type,
                    version=version,
                )
            schema = same[0]
        compiled = CompiledSchema(schema, fast=self.fast)
        self._compiled[cache_key] = compiled
        return compiled

    # -- validating ----------------------------------------------------------------------------

    def validate(self, event: Event, *, require: bool = False) -> Event:
        """Check ``event.data`` against its schema; return the event stamped with the version.

        The version is the event's ``schema_version`` when it has one, else the latest.

        Args:
            event: The event to check.
            require: Refuse an event whose type has no schema.

        Raises:
            EventValidationError: the data breaks the schema (every violation listed), the
                event names a version that is not registered, or ``require`` and no schema.
        """
        version = event.schema_version
        if version is None:
            version = self.latest_version(event.type)
            if version is None:
                if require:
                    raise EventValidationError(
                        f"event {event.id} of type {event.type!r} has no registered schema and "
                        "schemas are required; register one (wowevent schemas register)",
                        event_type=event.type,
                        event_id=event.id,
                    )
                return event
            event = dataclasses.replace(event, schema_version=version)
        try:
            compiled = self.compiled(event.type, version)
        except UnknownSchemaError as exc:
            raise EventValidationError(
                f"event {event.id} of type {event.type!r} names schema version {version!r}, "
                f"which is not registered: {exc}",
                event_type=event.type,
                schema_version=version,
                event_id=event.id,
            ) from exc
        try:
            violations = compiled.violations(event.data)
        except RecursionError:
            # Validators recurse per level; data this deep is past the publish limit anyway.
            raise EventEncodingError(
                f"event data is nested too deeply: more than {MAX_DEPTH} levels of objects and "
                "arrays (the limit, wowevent_kombu.core.nesting.MAX_DEPTH); flatten it",
                event_type=event.type,
            ) from None
        if violations:
            raise EventValidationError(
                f"event {event.id} of type {event.type!r} does not match schema version "
                f"{version} ({len(violations)} violation{'s' if len(violations) > 1 else ''}):\n"
                + describe_violations(violations),
                event_type=event.type,
                schema_version=version,
                event_id=event.id,
                violations=violations,
            )
        return event
