"""Dead-letter records: a failed delivery, its attempts, and the filters that select records.

The store that keeps them in Redis is :mod:`wowevent_kombu.deadletters.store`.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any, TypedDict

from wowevent_kombu.core.errors import InvalidFilterError

REASONS = ("exhausted", "rejected", "invalid", "worker_lost", "malformed")
"""Why a delivery was dead-lettered: retries used up; a ``Reject`` or a ``dont_autoretry_for``
exception; an event that is not a valid CloudEvent; the pool child died past ``max_retries``;
a queue entry that was not a runnable message of the subscriber (not JSON, not a Celery
message, an unknown task, a refused content type such as pickle)."""


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One failed attempt of a delivery.

    Attributes:
        number: 1 for the first run, 2 for the first retry, ...
        exception_type: Qualified name of the exception class.
        message: ``str()`` of the exception.
        traceback: The formatted traceback (empty when the process died without one).
        failed_at: Epoch seconds when the failure was seen.
        started_at: Epoch seconds when the handler started, when known.
    """

    number: int
    exception_type: str
    message: str
    traceback: str
    failed_at: float
    started_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The attempt as JSON-ready data."""
        return {f: getattr(self, f) for f in _ATTEMPT_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Attempt:
        """Read an attempt written by :meth:`to_dict`."""
        return cls(**{k: v for k, v in data.items() if k in _ATTEMPT_FIELDS})


@dataclasses.dataclass(frozen=True)
class DeadLetter:
    """One dead-lettered delivery of one event to one subscriber.

    Attributes:
        id: Record id: the task id of the failed delivery.
        subscriber: The subscriber whose handler failed; a re-drive goes to it only.
        event_id: The event's id (``None`` when the message held no readable event).
        event_type: The event's type, when readable.
        event: The CloudEvent document as it was delivered (the raw value when invalid).
        reason: One of :data:`REASONS`.
        attempts: Every failed attempt, oldest first.
        replayed: The failed delivery came from a replay of the event log.
    """

    id: str
    subscriber: str
    event_id: str | None
    event_type: str | None
    event: Any
    reason: str
    attempts: tuple[Attempt, ...]
    replayed: bool = False

    @property
    def first_failure(self) -> float:
        """Epoch seconds of the first failed attempt."""
        return min((a.failed_at for a in self.attempts), default=0.0)

    @property
    def last_failure(self) -> float:
        """Epoch seconds of the last failed attempt (the index score)."""
        return max((a.failed_at for a in self.attempts), default=0.0)

    @property
    def error(self) -> str:
        """``Type: message`` of the last attempt."""
        if not self.attempts:
            return ""
        last = self.attempts[-1]
        return f"{last.exception_type}: {last.message}"

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data, with its task id and first and last failure times."""
        # Not dataclasses.asdict: it deep-copies the event, which dominates bulk writes.
        data = {f: getattr(self, f) for f in _RECORD_FIELDS}
        data["attempts"] = [a.to_dict() for a in self.attempts]
        data["task_id"] = self.id
        data["first_failure"] = self.first_failure
        data["last_failure"] = self.last_failure
        return data

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps(self.to_dict(), separators=(",", ":"), default=str)

    @classmethod
    def from_json(cls, raw: str | bytes) -> DeadLetter:
        """Read a stored record."""
        return cls.from_dict(json.loads(raw))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeadLetter:
        """Read a record from its :meth:`to_dict` form."""
        return cls(
            id=data["id"],
            subscriber=data["subscriber"],
            event_id=data.get("event_id"),
            event_type=data.get("event_type"),
            event=data.get("event"),
            reason=data["reason"],
            attempts=tuple(Attempt.from_dict(a) for a in data.get("attempts", ())),
            replayed=bool(data.get("replayed", False)),
        )


_ATTEMPT_FIELDS = tuple(f.name for f in dataclasses.fields(Attempt))
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(DeadLetter))


def as_epoch(value: float | datetime | None, *, name: str) -> float | None:
    """A filter time as epoch seconds; naive datetimes are taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidFilterError(f"{name} must be a datetime or epoch seconds, got {value!r}")
    return float(value)


@dataclasses.dataclass(frozen=True)
class DeadLetterFilter:
    """Which records an operation applies to; every field left ``None`` matches everything.

    ``since`` and ``until`` bound the last failure time (inclusive), as epoch seconds.
    """

    subscriber: str | None = None
    type: str | None = None
    reason: str | None = None
    since: float | None = None
    until: float | None = None

    def __post_init__(self) -> None:
        if self.reason is not None and self.reason not in REASONS:
            raise InvalidFilterError(
                f"unknown reason {self.reason!r}; use one of {', '.join(REASONS)}"
            )
        for name in ("since", "until"):
            object.__setattr__(self, name, as_epoch(getattr(self, name), name=name))
        if self.since is not None and self.until is not None and self.since > self.until:
            raise InvalidFilterError(f"since ({self.since}) is after until ({self.until})")

    def matches(self, data: dict[str, Any]) -> bool:
        """Whether a stored record (as a dict) passes the non-time fields.

        Time is applied on the index, before records are read.
        """
        return (
            (self.subscriber is None or data.get("subscriber") == self.subscriber)
            and (self.type is None or data.get("event_type") == self.type)
            and (self.reason is None or data.get("reason") == self.reason)
        )


class Where(TypedDict, total=False):
    """The filter keywords every bulk operation of the store takes (a :class:`DeadLetterFilter`)."""

    subscriber: str | None
    type: str | None
    reason: str | None
    since: float | datetime | None
    until: float | datetime | None


def filter_of(flt: DeadLetterFilter | None, where: Where) -> DeadLetterFilter:
    """One filter from either a :class:`DeadLetterFilter` or the keywords of :class:`Where`.

    Raises:
        InvalidFilterError: both were given, or a keyword is unknown or out of range.
    """
    unknown = set(where) - set(Where.__annotations__)
    if unknown:
        raise InvalidFilterError(
            f"unknown filter keyword(s) {sorted(unknown)}; use {', '.join(Where.__annotations__)}"
        )
    given = {k: v for k, v in where.items() if v is not None}
    if flt is not None and given:
        raise InvalidFilterError(
            f"pass a DeadLetterFilter or filter keywords, not both (got {sorted(given)} too)"
        )
    if flt is not None:
        return flt
    return DeadLetterFilter(**given)  # type: ignore[arg-type]
