"""Reading the event log: queries in publish order, lookups by id, stats, checkpoints.

Every published event is in the log stream with its full CloudEvent, at a *position* (the
stream id ``<milliseconds>-<sequence>``, the Redis server's clock when the event was logged).
Time ranges are ranges of positions, so they never scan outside the range; a correlation-id
query reads that id's index instead of the log. Other filters (types, source, subject,
causation id) are applied while reading the range.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import redis

from wowevent_kombu.brokers.redis.logscript import recent_buckets
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import ConfigurationError, InvalidPatternError, LogQueryError
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.matcher import TopicMatcher, validate_pattern
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.log.positions import (
    bound,
    position_time,
    split_position,
)

PAGE = 1000
"""Entries read per ``XRANGE`` round trip."""

# Keep the newest position of a checkpoint: positions compare as (ms, seq), not as strings.
_ADVANCE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur then
  local cm, cs = string.match(cur, '^(%d+)-(%d+)$')
  local nm, ns = string.match(ARGV[2], '^(%d+)-(%d+)$')
  cm, cs, nm, ns = tonumber(cm), tonumber(cs), tonumber(nm), tonumber(ns)
  if nm < cm or (nm == cm and ns <= cs) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw


@dataclasses.dataclass(frozen=True, slots=True)
class RawEntry:
    """One log entry as stored: its position, type, CloudEvent text and parsed document."""

    position: str
    type: str
    json: str
    document: dict[str, Any]


@dataclasses.dataclass(frozen=True, slots=True)
class LogEntry:
    """One logged event and where it sits in the log.

    Attributes:
        position: The stream id; pass it as ``cursor`` to read on after this entry.
        event: The event as published.
    """

    position: str
    event: Event

    @property
    def logged_at(self) -> datetime:
        """When the log recorded the event (Redis server clock)."""
        return position_time(self.position)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: position, logged_at and the CloudEvent."""
        return {
            "position": self.position,
            "logged_at": self.logged_at.isoformat(),
            "event": self.event.to_cloudevent(),
        }


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which log entries a query or replay takes (validated by :meth:`EventLog.select`)."""

    start: tuple[int, int] | None
    end: tuple[int, int] | None
    after: tuple[int, int] | None
    types: tuple[str, ...] = ()
    correlation_id: str | None = None
    causation_id: str | None = None
    source: str | None = None
    subject: str | None = None

    def first(self) -> str:
        """The ``XRANGE`` start."""
        if self.after is not None and (self.start is None or self.after >= self.start):
            return f"({self.after[0]}-{self.after[1]}"
        return "-" if self.start is None else f"{self.start[0]}-{self.start[1]}"

    def last(self) -> str:
        """The ``XRANGE`` end."""
        return "+" if self.end is None else f"{self.end[0]}-{self.end[1]}"


class EventLog:
    """The persisted event log of one bus (``bus.log``).

    Args:
        client: Redis client of the bus.
        settings: Bus settings (exchange, retention).
    """

    @classmethod
    def beside(cls, transport: object, settings: Settings) -> EventLog:
        """The log in the Redis a bus's ``transport`` writes it to.

        Raises:
            ConfigurationError: the transport has no Redis (the in-memory test double).
        """
        client = getattr(transport, "client", None)
        if client is None:
            raise ConfigurationError(
                "the event log lives in Redis; this bus's transport has none "
                "(the in-memory TestBus keeps published events in bus.published)"
            )
        return cls(client, settings)

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        # redis-py types its replies loosely; treat them as untyped and parse them here.
        self._r: Any = client
        self.settings = settings
        self.key = names.log_key(settings.exchange)

    # -- queries -------------------------------------------------------------------------------

    def select(
        self,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        types: str | Sequence[str] | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        source: str | None = None,
        subject: str | None = None,
        cursor: str | None = None,
    ) -> Selection:
        """Validate a query's arguments (see :meth:`read`) into a :class:`Selection`.

        Raises:
            LogQueryError: ``since`` after ``until``, a malformed time, position or cursor.
            InvalidPatternError: a malformed type pattern.
        """
        start, end = bound(since, end=False), bound(until, end=True)
        if start is not None and end is not None and start > end:
            raise LogQueryError(
                f"since ({since}) is after until ({until}): nothing can be in that range"
            )
        after = split_position(cursor) if cursor else None
        patterns = (types,) if isinstance(types, str) else tuple(types or ())
        for pattern in patterns:
            try:
                validate_pattern(pattern)
            except InvalidPatternError as exc:
                raise InvalidPatternError(f"type filter: {exc}", pattern=exc.pattern) from exc
        return Selection(start, end, after, patterns, correlation_id, causation_id, source, subject)

    def read(
        self,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        types: str | Sequence[str] | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        source: str | None = None,
        subject: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> list[LogEntry]:
        """Logged events matching every given filter, in publish order.

        Args:
            since: Earliest log time (a timezone-aware datetime) or position, inclusive.
            until: Latest log time or position, inclusive. Times are when the log recorded
                the event (the Redis server's clock), not the events' own ``time``.
            types: A topic pattern or several (``order.*``, ``#.failed``).
            correlation_id: Only this correlation; answered from its index, not a log scan.
            causation_id: Only events caused by this event id.
            source: Only events of this exact source.
            subject: Only events of this exact subject.
            limit: At most this many entries.
            cursor: Continue after this position (the last entry's ``position``).

        Raises:
            LogQueryError: bad arguments (see :meth:`select`) or a limit below 1.
        """
        if limit < 1:
            raise LogQueryError(f"limit must be at least 1, got {limit}")
        chosen = self.select(
            since=since, until=until, types=types, correlation_id=correlation_id,
            causation_id=causation_id, source=source, subject=subject, cursor=cursor,
        )  # fmt: skip
        out: list[LogEntry] = []
        for raw in self.scan(chosen):
            out.append(LogEntry(raw.position, Event.from_cloudevent(raw.document)))
            if len(out) >= limit:
                break
        return out

    def scan(self, chosen: Selection, *, page: int = PAGE) -> Iterator[RawEntry]:
        """Every entry of a selection, in publish order, read a page at a time."""
        matcher = TopicMatcher((p, "") for p in chosen.types) if chosen.types else None
        source = chosen.correlation_id and self._by_correlation(chosen, page)
        for raw in source or self._by_range(chosen, page):
            if matcher is not None and not matcher.match(raw.type):
                continue
            doc = raw.document
            if (
                (chosen.causation_id is not None and doc.get("causationid") != chosen.causation_id)
                or (chosen.source is not None and doc.get("source") != chosen.source)
                or (chosen.subject is not None and doc.get("subject") != chosen.subject)
            ):
                continue
            yield raw

    def _by_range(self, chosen: Selection, page: int) -> Iterator[RawEntry]:
        first, last = chosen.first(), chosen.last()
        while True:
            rows = self._r.xrange(self.key, first, last, count=page)
            for position, fields in rows:
                yield _raw(position, fields)
            if len(rows) < page:
                return
            first = "(" + _text(rows[-1][0])

    def _by_correlation(self, chosen: Selection, page: int) -> Iterator[RawEntry]:
        exchange, cid = self.settings.exchange, chosen.correlation_id or ""
        buckets = recent_buckets(int(time.time() * 1000), self.settings.log_max_age)
        pipe = self._r.pipeline(transaction=False)
        for bucket in reversed(buckets):
            pipe.lrange(names.log_correlation_key(exchange, cid, bucket), 0, -1)
        found = {split_position(_text(p)) for listed in pipe.execute() for p in listed}
        wanted = sorted(p for p in found if _inside(p, chosen))
        for offset in range(0, len(wanted), page):
            pipe = self._r.pipeline(transaction=False)
            for ms, seq in wanted[offset : offset + page]:
                pipe.xrange(self.key, f"{ms}-{seq}", f"{ms}-{seq}")
            for rows in pipe.execute():
                if rows:  # an empty answer: trimmed from the log by count or age
                    raw = _raw(*rows[0])
                    if raw.document.get("correlationid") == chosen.correlation_id:
                        yield raw

    def get(self, event_id: str) -> LogEntry | None:
        """The logged event with this id, or ``None`` when it is not (or no longer) logged."""
        position = self.position_of(event_id)
        if position is None:
            return None
        rows = self._r.xrange(self.key, position, position)
        if not rows:
            return None
        raw = _raw(*rows[0])
        return LogEntry(raw.position, Event.from_cloudevent(raw.document))

    def position_of(self, event_id: str) -> str | None:
        """The log position of an event id, from the event-id index (one round trip)."""
        buckets = recent_buckets(int(time.time() * 1000), self.settings.log_max_age)
        pipe = self._r.pipeline(transaction=False)
        for bucket in buckets:
            pipe.hget(names.log_ids_key(self.settings.exchange, bucket), event_id)
        for found in pipe.execute():
            if found is not None:
                return _text(found)
        return None

    def tail(self, count: int = 10) -> list[LogEntry]:
        """The newest ``count`` entries, oldest first."""
        if count < 1:
            raise LogQueryError(f"count must be at least 1, got {count}")
        rows = self._r.xrevrange(self.key, "+", "-", count=count)
        return [_entry(_raw(*row)) for row in reversed(rows)]

    def follow(self, after: str | None, *, block: float = 1.0) -> list[LogEntry]:
        """Entries logged after position ``after`` (``None``: from now), waiting up to ``block``."""
        answer = self._r.xread({self.key: after or "$"}, block=int(block * 1000), count=PAGE)
        return [_entry(_raw(*row)) for _, rows in answer or [] for row in rows]

    def first_position(self) -> str | None:
        """The position of the oldest entry, ``None`` for an empty log."""
        rows = self._r.xrange(self.key, "-", "+", count=1)
        return _text(rows[0][0]) if rows else None

    def last_position(self) -> str | None:
        """The position of the newest entry, ``None`` for an empty log."""
        rows = self._r.xrevrange(self.key, "+", "-", count=1)
        return _text(rows[0][0]) if rows else None

    # -- stats and checkpoints -----------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Length, first and last entries, retention and memory of the log.

        ``memory_bytes`` is Redis's own ``MEMORY USAGE`` estimate of the stream (sampled), not
        counting the indexes.
        """
        try:
            info = self._r.xinfo_stream(self.key)
        except redis.ResponseError:
            info = {"length": 0}
        length = int(info.get("length", 0))
        first = info.get("first-entry")
        last = info.get("last-entry")
        memory = int(self._r.memory_usage(self.key) or 0) if length else 0
        return {
            "key": self.key,
            "length": length,
            "first_position": _text(first[0]) if first else None,
            "last_position": _text(last[0]) if last else None,
            "first_logged_at": position_time(_text(first[0])).isoformat() if first else None,
            "last_logged_at": position_time(_text(last[0])).isoformat() if last else None,
            "entries_added": int(info.get("entries-added", length) or 0),
            "retention_count": self.settings.log_maxlen,
            "retention_seconds": self.settings.log_max_age,
            "memory_bytes": memory,
            "bytes_per_event": round(memory / length, 1) if length else None,
        }

    def checkpoints(self) -> dict[str, str]:
        """Subscriber name -> position of the newest event it handled (``checkpoint=True``)."""
        raw = self._r.hgetall(names.checkpoints_key(self.settings.exchange))
        return {_text(k): _text(v) for k, v in raw.items()}

    def checkpoint(self, subscriber: str) -> str | None:
        """One subscriber's checkpoint position, ``None`` when it has none."""
        found = self._r.hget(names.checkpoints_key(self.settings.exchange), subscriber)
        return None if found is None else _text(found)

    def advance_checkpoint(self, subscriber: str, position: str) -> bool:
        """Move a subscriber's checkpoint to ``position`` unless it is already further."""
        split_position(position)
        key = names.checkpoints_key(self.settings.exchange)
        return bool(self._r.eval(_ADVANCE, 1, key, subscriber, position))


def _inside(position: tuple[int, int], chosen: Selection) -> bool:
    return (
        (chosen.start is None or position >= chosen.start)
        and (chosen.end is None or position <= chosen.end)
        and (chosen.after is None or position > chosen.after)
    )


def _raw(position: bytes | str, fields: dict[Any, Any]) -> RawEntry:
    text = _text(fields[b"event"] if b"event" in fields else fields["event"])
    kind = _text(fields[b"type"] if b"type" in fields else fields["type"])
    return RawEntry(_text(position), kind, text, json.loads(text))


def _entry(raw: RawEntry) -> LogEntry:
    return LogEntry(raw.position, Event.from_cloudevent(raw.document))
