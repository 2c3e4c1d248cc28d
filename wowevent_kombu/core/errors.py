"""The exception tree: every error the library raises derives from :class:`WowEventError`.

::

    WowEventError
    ├── InvalidEventError            an event cannot be built or sent as given
    │   ├── InvalidEventTypeError    a type is not dot-separated words
    │   ├── EventTooLargeError       the encoded event exceeds the size limit
    │   ├── EventEncodingError       data is not JSON (NaN, bytes, objects, bad UTF-8)
    │   └── EventValidationError     data breaks its schema, or has no schema where one is required
    ├── InvalidPatternError          a subscription pattern is malformed
    ├── InvalidSubscriberError       a subscriber name or option is unusable
    ├── UnknownSubscriberError       a name that no bus or binding knows
    ├── ConfigurationError           settings that would lose or duplicate events
    ├── LogQueryError                a log query or replay selection is malformed
    ├── UnknownReplayError           ``--resume`` names no recorded replay
    ├── ReplayInterrupted            a replay stopped early (Ctrl-C); resumable by its id
    ├── Reject                       raised by a handler: dead-letter now, never retry
    ├── DeadLetterError              a dead-letter operation cannot be done as asked
    │   ├── UnknownDeadLetterError   no record has that id
    │   └── InvalidFilterError       a filter value is malformed
    ├── DeadLetterWriteError         a failed delivery could not be recorded (requeued)
    ├── SchemaError                  a schema cannot be registered or found
    │   ├── InvalidSchemaError       not JSON Schema, version not semver, type not an event type
    │   ├── SchemaConflictError      the version exists with another document, or is not the newest
    │   ├── IncompatibleSchemaError  the compatibility mode refuses the change (names it)
    │   └── UnknownSchemaError       no schema of that type (and version) is registered
    └── PublishError                 Redis did not accept the publish
        ├── UnroutableEventError     ``mandatory=True`` and no subscriber matched
        └── ReplicationError         written on the primary, too few replicas acknowledged it

Every error carries the context it is about (event id, type, subscriber) as attributes and says
in its message what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wowevent_kombu.core.findings import Change, Violation


def _restore(cls: type[WowEventError], args: tuple[Any, ...], state: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class WowEventError(Exception):
    """Root of every error raised by wowevent_kombu.

    Errors pickle with their attributes (keyword-only constructors would otherwise make Celery
    replace them by a picklable base class before failure hooks see them).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (type(self), self.args, dict(self.__dict__)))


class InvalidEventError(WowEventError, ValueError):
    """An event cannot be built or sent as given."""

    def __init__(self, message: str, *, event_type: str | None = None) -> None:
        super().__init__(message)
        self.event_type = event_type


class InvalidEventTypeError(InvalidEventError):
    """An event type is not a sequence of dot-separated words."""


class EventTooLargeError(InvalidEventError):
    """The encoded event is larger than the configured limit."""

    def __init__(self, message: str, *, event_type: str | None, size: int, limit: int) -> None:
        super().__init__(message, event_type=event_type)
        self.size = size
        self.limit = limit


class EventEncodingError(InvalidEventError):
    """Event data cannot be encoded as strict JSON."""


class EventValidationError(InvalidEventError):
    """An event's data does not follow its schema, or no schema exists where one is required.

    Subscribers never retry it (it is an :class:`InvalidEventError`): the same data would fail
    the same way.

    Attributes:
        violations: Every violation found, each with its JSON path (empty when the schema itself
            is missing).
        schema_version: The schema version checked against, if any.
        event_id: The event's id, if it had one.
    """

    def __init__(
        self,
        message: str,
        *,
        event_type: str | None,
        schema_version: str | None = None,
        event_id: str | None = None,
        violations: Sequence[Violation] = (),
    ) -> None:
        super().__init__(message, event_type=event_type)
        self.schema_version = schema_version
        self.event_id = event_id
        self.violations = tuple(violations)


class InvalidPatternError(WowEventError, ValueError):
    """A subscription pattern is malformed."""

    def __init__(self, message: str, *, pattern: str) -> None:
        super().__init__(message)
        self.pattern = pattern


class InvalidSubscriberError(WowEventError, ValueError):
    """A subscriber's name or options cannot be used."""

    def __init__(self, message: str, *, subscriber: str | None = None) -> None:
        super().__init__(message)
        self.subscriber = subscriber


class UnknownSubscriberError(WowEventError, LookupError):
    """A subscriber name that is neither registered on the bus nor bound in Redis."""

    def __init__(self, message: str, *, subscriber: str) -> None:
        super().__init__(message)
        self.subscriber = subscriber


class ConfigurationError(WowEventError):
    """Settings that would make the bus lose or duplicate events."""


class SchemaError(WowEventError):
    """A schema cannot be registered or found."""

    def __init__(
        self, message: str, *, event_type: str | None = None, version: str | None = None
    ) -> None:
        super().__init__(message)
        self.event_type = event_type
        self.version = version


class InvalidSchemaError(SchemaError, ValueError):
    """A schema document, version, type or compatibility mode is unusable."""


class SchemaConflictError(SchemaError):
    """The version is registered with another document, or is not newer than the latest."""


class IncompatibleSchemaError(SchemaError):
    """The compatibility mode refuses the new version.

    Attributes:
        changes: Each breaking change found, with the version it breaks against.
        mode: The compatibility mode that was asked for.
    """

    def __init__(
        self,
        message: str,
        *,
        event_type: str,
        version: str,
        mode: str,
        changes: Sequence[Change],
    ) -> None:
        super().__init__(message, event_type=event_type, version=version)
        self.mode = mode
        self.changes = tuple(changes)


class UnknownSchemaError(SchemaError, LookupError):
    """No schema of that type (or of that version) is registered."""


class PublishError(WowEventError):
    """Redis did not accept a publish; nothing of it was written.

    When the connection broke after the transaction was sent, Redis may have committed it:
    ``outcome_unknown`` is then true, and re-publishing the same event (same id) is the safe
    recovery because subscribers see the same event id and task ids.
    """

    def __init__(
        self,
        message: str,
        *,
        event_ids: tuple[str, ...] = (),
        event_type: str | None = None,
        outcome_unknown: bool = False,
    ) -> None:
        super().__init__(message)
        self.event_ids = event_ids
        self.event_type = event_type
        self.outcome_unknown = outcome_unknown


class UnroutableEventError(PublishError):
    """``mandatory=True`` was asked and no subscriber's pattern matched the event type."""


class ReplicationError(PublishError):
    """``wait_replicas`` was asked and fewer replicas acknowledged the publish in time.

    The publish is on the primary (subscribers may already run it) but a failover could lose
    it, so ``outcome_unknown`` is true: re-publish the same event (same id) once the replicas
    are back. ``acknowledged`` is how many replicas did confirm it.
    """

    def __init__(self, message: str, *, acknowledged: int = 0, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.acknowledged = acknowledged


class LogQueryError(WowEventError, ValueError):
    """A log query or replay selection cannot be run as given (e.g. ``since`` after ``until``)."""


class UnknownReplayError(WowEventError, LookupError):
    """A replay id that no replay record in Redis carries (finished long ago, or mistyped)."""

    def __init__(self, message: str, *, replay_id: str) -> None:
        super().__init__(message)
        self.replay_id = replay_id


class ReplayInterrupted(WowEventError):
    """A replay stopped before its end; every batch sent so far is recorded.

    Resume it with ``bus.replay(resume=exc.replay_id)`` (CLI: ``--resume REPLAY_ID``): it goes
    on after the last event whose delivery was committed, so nothing is sent twice or skipped.
    """

    def __init__(self, message: str, *, replay_id: str, report: Any) -> None:
        super().__init__(message)
        self.replay_id = replay_id
        self.report = report


class Reject(WowEventError):
    """Raised by a handler to send the delivery to the dead-letter store at once.

    The delivery is never retried (whatever ``autoretry_for`` says) and its record's reason is
    ``rejected``. Not to be confused with ``celery.exceptions.Reject``, which asks the broker to
    requeue or drop the message and leaves no record.
    """


class DeadLetterError(WowEventError):
    """A dead-letter store operation cannot be done as asked; nothing was changed."""


class UnknownDeadLetterError(DeadLetterError, LookupError):
    """No dead-letter record has this id (never written, already re-driven or purged)."""

    def __init__(self, message: str, *, record_id: str) -> None:
        super().__init__(message)
        self.record_id = record_id


class InvalidFilterError(DeadLetterError, ValueError):
    """A dead-letter filter value (reason, time, limit, cursor) is malformed."""


class DeadLetterWriteError(WowEventError):
    """A failed delivery could not be written to the dead-letter store.

    The worker then requeues the message instead of acknowledging it (or, if Redis refuses that
    too, leaves it for Redis to restore after the visibility timeout): the event is not lost.
    Takes only a message, so it survives the trip from a pool child to the worker's main process.
    """
