"""The JSON shapes of the admin API: request bodies (validated) and answers (documented).

They exist for two readers: the service, which refuses a body that does not fit with a 400
naming the field, and ``/openapi.json``, which tells clients (and the fuzzing tests) exactly
what each route takes and gives.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "ERROR_RESPONSES",
    "Attempt",
    "BulkResult",
    "DeadLetterFilterBody",
    "DeadLetterPage",
    "DeadLetterRecord",
    "DeadLetterSelection",
    "ErrorBody",
    "LogEntry",
    "LogPage",
    "PublishBody",
    "ReplayBody",
    "ReplayPreview",
    "ReplayRun",
    "SchemaCheckBody",
    "SchemaCheckResult",
]

Reason = Literal["exhausted", "rejected", "invalid", "worker_lost", "malformed"]

EVENT_TYPE = r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$"
"""Dot-separated words (``order.created``); the bus checks the rest (length, control bytes)."""
TOPIC_PATTERN = r"^([A-Za-z0-9_\-]+|\*|#)(\.([A-Za-z0-9_\-]+|\*|#))*$"
"""A subscription pattern: words, ``*`` (one word) and ``#`` (zero or more)."""
SUBSCRIBER = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$"
"""A subscriber name as the bus accepts it."""

EventType = Annotated[str, Field(min_length=1, max_length=255, pattern=EVENT_TYPE)]
TopicPattern = Annotated[str, Field(min_length=1, max_length=255, pattern=TOPIC_PATTERN)]
SubscriberName = Annotated[str, Field(min_length=1, max_length=200, pattern=SUBSCRIBER)]


class Strict(BaseModel):
    """Bodies refuse fields they do not know (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class ErrorBody(BaseModel):
    """Every error answer."""

    error: str
    details: list[dict[str, Any]] | None = None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("The request is malformed (the error names the field)"),
    401: _error("No bearer token"),
    403: _error("The token is not valid, or is read-only and the route changes something"),
    404: _error("No such record, replay, event, schema or subscriber"),
    408: _error("The request body stalled"),
    409: _error("The operation cannot be done as things are"),
    413: _error("The body is larger than 1 MiB"),
    415: _error("The body is not declared as JSON"),
    422: _error("The event breaks a rule of the bus (type, size, schema)"),
    503: _error("Redis is unavailable; retry later"),
}
"""The error answers every admin route may give, documented once."""


# -- dead letters ------------------------------------------------------------------------------


class Attempt(BaseModel):
    """One failed attempt, with its traceback."""

    number: int
    exception_type: str
    message: str
    traceback: str
    failed_at: float
    started_at: float | None = None


class DeadLetterSummary(BaseModel):
    """A record as listed: who failed on what, why, when and how often."""

    id: str
    subscriber: str
    event_id: str | None
    event_type: str | None
    reason: str
    error: str
    attempts: int
    first_failure: float
    last_failure: float
    replayed: bool


class DeadLetterRecord(DeadLetterSummary):
    """A record in full: the event as delivered and every attempt's traceback."""

    event: Any
    attempt_details: list[Attempt]


class DeadLetterPage(BaseModel):
    """One page of a listing; pass ``cursor`` back for the next (``null`` at the end)."""

    records: list[DeadLetterSummary]
    cursor: str | None


class DeadLetterFilterBody(Strict):
    """Which records a bulk operation takes; every field left out matches everything."""

    subscriber: SubscriberName | None = None
    type: EventType | None = None
    reason: Reason | None = None
    since: float | None = Field(default=None, ge=0, le=1e11)
    until: float | None = Field(default=None, ge=0, le=1e11)


class DeadLetterSelection(Strict):
    """Records by id, or by filter (``all: true`` to take every record deliberately)."""

    ids: list[str] | None = Field(default=None, min_length=1, max_length=10_000)
    filter: DeadLetterFilterBody | None = None
    all: bool = False
    dry_run: bool = False


class BulkResult(BaseModel):
    """What a bulk operation did (or, with ``dry_run``, would do)."""

    ids: list[str]
    count: int
    dry_run: bool


# -- event log ---------------------------------------------------------------------------------


class LogEntry(BaseModel):
    """One logged event and its position."""

    position: str
    logged_at: str
    event: dict[str, Any]


class LogPage(BaseModel):
    """Entries in publish order; ``cursor`` continues after the last (``null`` at the end)."""

    entries: list[LogEntry]
    cursor: str | None


# -- replays -----------------------------------------------------------------------------------


class ReplayBody(Strict):
    """A replay's selection and pace (see ``bus.replay``)."""

    subscribers: list[SubscriberName] = Field(min_length=1, max_length=200)
    since: str | None = Field(default=None, min_length=1, max_length=64)
    until: str | None = Field(default=None, min_length=1, max_length=64)
    types: list[TopicPattern] | None = Field(default=None, max_length=50)
    correlation_id: str | None = Field(default=None, min_length=1, max_length=255)
    source: str | None = Field(default=None, min_length=1, max_length=1024)
    speed: str = Field(default="instant", min_length=1, max_length=32)
    force: bool = False
    dry_run: bool = False


class ReplayPreview(BaseModel):
    """A dry run: how many events the selection holds, by type, and where they would go."""

    scanned: int
    skipped: int
    delivered: dict[str, int]
    total_delivered: int
    types: dict[str, int]
    types_truncated: bool


class ReplayRun(BaseModel):
    """A recorded replay and its progress."""

    replay_id: str
    status: str
    scanned: int
    delivered: dict[str, int]
    skipped: int
    total_delivered: int
    duration: float
    position: str | None
    error: str | None
    selection: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    stopped_at: str | None = None
    stop_requested: bool = False


# -- publishing and schemas --------------------------------------------------------------------


class PublishBody(Strict):
    """One event to publish."""

    type: EventType
    data: Any = None
    source: str | None = Field(default=None, min_length=1, max_length=1024)
    subject: str | None = Field(default=None, min_length=1, max_length=1024)
    id: str | None = Field(default=None, min_length=1, max_length=255)
    mandatory: bool = False


class SchemaCheckBody(Strict):
    """A candidate schema version, checked against the registry without registering it."""

    type: EventType
    version: str = Field(min_length=1, max_length=64)
    schema_: dict[str, Any] = Field(alias="schema")
    compatibility: Literal[
        "none", "backward", "forward", "full",
        "backward_transitive", "forward_transitive", "full_transitive",
    ] | None = None  # fmt: skip

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True)


class SchemaCheckResult(BaseModel):
    """Whether the candidate could be registered, and why not."""

    type: str
    version: str
    compatible: bool
    problems: list[str]
