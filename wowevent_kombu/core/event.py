"""The event envelope: an immutable CloudEvents 1.0 record with correlation extensions."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from wowevent_kombu.core.errors import EventEncodingError, InvalidEventError, InvalidEventTypeError
from wowevent_kombu.core.names import random_uuid
from wowevent_kombu.core.nesting import MAX_DEPTH, depth_exceeds, text_may_exceed

SPEC_VERSION = "1.0"
DEFAULT_SOURCE = "wowevent"
DEFAULT_CONTENT_TYPE = "application/json"

MAX_TYPE_LENGTH = 255
# Matched whole (fullmatch): with re.match, '$' would accept a word ending in a newline.
_WORD = re.compile(r"[A-Za-z0-9_\-]+")
# What CloudEvents 1.0 forbids in a String attribute: control characters (U+0000-U+001F,
# U+007F-U+009F), surrogates (Python holds only lone ones in a str; they cannot be encoded) and
# Unicode noncharacters.
_NONCHARACTERS = "".join(rf"\U{plane:04X}FFFE\U{plane:04X}FFFF" for plane in range(17))
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef" + _NONCHARACTERS + "]")
_STRING_FIELDS = (
    "subject", "correlation_id", "causation_id", "schema_version", "dataschema",
    "traceparent", "tracestate",
)  # fmt: skip

# CloudEvents attribute name -> Python field name, for the optional attributes and extensions.
_OPTIONAL = {
    "subject": "subject",
    "dataschema": "dataschema",
    "correlationid": "correlation_id",
    "causationid": "causation_id",
    "schemaversion": "schema_version",
    # The CloudEvents distributed-tracing extension (W3C Trace Context).
    "traceparent": "traceparent",
    "tracestate": "tracestate",
}
_REQUIRED = ("id", "source", "type", "specversion")
_KNOWN = {*_REQUIRED, "time", "datacontenttype", "data", *_OPTIONAL}


_VALID_TYPES: dict[str, None] = {}
_VALID_TYPES_LIMIT = 4096


def validate_event_type(event_type: object) -> str:
    """Return ``event_type`` if it is dot-separated words, else raise naming the bad part.

    A word is letters, digits, ``_`` or ``-``; wildcards (``*``, ``#``) and empty words are
    refused because a type names one concrete kind of event.
    """
    if isinstance(event_type, str) and event_type in _VALID_TYPES:
        return event_type
    checked = _check_event_type(event_type)
    if len(_VALID_TYPES) >= _VALID_TYPES_LIMIT:
        _VALID_TYPES.clear()
    # A process publishes few distinct types; remembering the valid ones keeps the hot path
    # to one dict lookup. Only the type string is kept, so this cache holds no state of note.
    _VALID_TYPES[checked] = None
    return checked


def _check_event_type(event_type: object) -> str:
    if not isinstance(event_type, str):
        raise InvalidEventTypeError(
            f"event type must be a string, got {type(event_type).__name__}", event_type=None
        )
    if not event_type:
        raise InvalidEventTypeError("event type is empty; use e.g. 'order.created'")
    if len(event_type) > MAX_TYPE_LENGTH:
        raise InvalidEventTypeError(
            f"event type is {len(event_type)} characters; the limit is {MAX_TYPE_LENGTH}",
            event_type=event_type[:50] + "...",
        )
    for position, word in enumerate(event_type.split("."), start=1):
        if not word:
            raise InvalidEventTypeError(
                f"event type {event_type!r} has an empty word at position {position}; "
                "words are separated by single dots",
                event_type=event_type,
            )
        if _WORD.fullmatch(word) is None:
            raise InvalidEventTypeError(
                f"event type {event_type!r}: word {position} ({word!r}) may hold only letters, "
                "digits, '_' and '-' (wildcards belong in subscription patterns, not types)",
                event_type=event_type,
            )
    return event_type


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, so sub-millisecond latencies stay measurable."""
    if moment.tzinfo is None:
        raise InvalidEventError("event time must be timezone-aware (e.g. datetime.now(UTC))")
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def check_attribute(name: str, value: object, *, event_type: str | None = None) -> str:
    """Return ``value`` if it is a string CloudEvents allows in an attribute, else raise.

    A string attribute must be non-empty and hold no control character (newlines included),
    lone surrogate or Unicode noncharacter: the CloudEvents 1.0 rules for its String type.

    Raises:
        InvalidEventError: naming the attribute and the first character refused.
    """
    if not isinstance(value, str):
        raise InvalidEventError(
            f"event {name} must be a string, got {type(value).__name__}", event_type=event_type
        )
    if not value:
        raise InvalidEventError(f"event {name} is empty", event_type=event_type)
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise InvalidEventError(
            f"event {name} {value[:100]!r} holds {bad.group()!r} at position {bad.start()}: "
            "CloudEvents attributes may not hold control characters (newlines included), "
            "lone surrogates or noncharacters",
            event_type=event_type,
        )
    return value


def parse_time(text: object) -> datetime:
    """Parse an RFC 3339 timestamp as written by CloudEvents producers."""
    if not isinstance(text, str):
        raise InvalidEventError(f"event time must be an RFC 3339 string, got {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as exc:
        raise InvalidEventError(f"event time {text!r} is not an RFC 3339 timestamp") from exc
    if moment.tzinfo is None:
        raise InvalidEventError(f"event time {text!r} has no UTC offset")
    return moment.astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return random_uuid()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """One domain event, following CloudEvents 1.0.

    Attributes:
        type: What happened, as dot-separated words (``order.created``).
        data: The JSON payload.
        source: Who published it (a URI-reference; a service name is fine).
        id: Unique per event; replays and re-drives keep it, so handlers can deduplicate.
        time: When it happened (UTC, microsecond precision).
        subject: What the event is about within the source (e.g. an order id).
        correlation_id: Ties together every event of one request or workflow.
        causation_id: The id of the event that caused this one.
        schema_version: The version of the event type's schema the data follows.
        dataschema: URI of that schema, when there is one.
        datacontenttype: Always ``application/json`` on this bus.
        traceparent: W3C Trace Context of the span that published the event (the CloudEvents
            distributed-tracing extension); set at publish when tracing is enabled
            (:func:`wowevent_kombu.observability.tracing.enable_tracing`).
        tracestate: The vendor part of that trace context, when there is one.
        replayed: True when the delivery came from a replay of the event log (not part of the
            CloudEvent; it describes the delivery, not the event).
    """

    type: str
    data: Any = None
    source: str = DEFAULT_SOURCE
    id: str = dataclasses.field(default_factory=_new_id)
    time: datetime = dataclasses.field(default_factory=_now)
    subject: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    schema_version: str | None = None
    dataschema: str | None = None
    datacontenttype: str = DEFAULT_CONTENT_TYPE
    traceparent: str | None = None
    tracestate: str | None = None
    replayed: bool = dataclasses.field(default=False, compare=False)

    def __post_init__(self) -> None:
        validate_event_type(self.type)
        for name, value in (("id", self.id), ("source", self.source)):
            # isprintable() is a fast yes for nearly every value (it refuses more than
            # CloudEvents does, e.g. a no-break space, which check_attribute then allows).
            if not (isinstance(value, str) and value.isprintable() and value):
                check_attribute(name, value, event_type=self.type)
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            raise InvalidEventError(
                "event time must be a timezone-aware datetime", event_type=self.type
            )
        for field in _STRING_FIELDS:
            value = getattr(self, field)
            if value is not None and not (isinstance(value, str) and value.isprintable() and value):
                check_attribute(field, value, event_type=self.type)
        if not isinstance(self.replayed, bool):
            raise InvalidEventError(
                f"event replayed must be True or False, got {type(self.replayed).__name__}",
                event_type=self.type,
            )
        if self.datacontenttype != DEFAULT_CONTENT_TYPE:
            raise InvalidEventError(
                f"datacontenttype {self.datacontenttype!r} is not supported: the bus carries "
                f"JSON only ({DEFAULT_CONTENT_TYPE})",
                event_type=self.type,
            )

    def caused_by(self, parent: Event) -> Event:
        """This event, re-derived as a consequence of ``parent``.

        The child keeps its own id and takes the parent's correlation id (or the parent's id
        when the parent had none) and ``causation_id = parent.id``.
        """
        return dataclasses.replace(
            self,
            correlation_id=parent.correlation_id or parent.id,
            causation_id=parent.id,
        )

    @classmethod
    def child_of(cls, parent: Event, type: str, data: Any = None, **attributes: Any) -> Event:
        """A new event caused by ``parent`` (same correlation, ``causation_id = parent.id``)."""
        attributes.setdefault("source", parent.source)
        return cls(
            type=type,
            data=data,
            correlation_id=parent.correlation_id or parent.id,
            causation_id=parent.id,
            **attributes,
        )

    def to_cloudevent(self) -> dict[str, Any]:
        """The CloudEvents JSON structured form as a dict (absent optionals are omitted)."""
        out: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": format_time(self.time),
            "datacontenttype": self.datacontenttype,
        }
        for attribute, field in _OPTIONAL.items():
            value = getattr(self, field)
            if value is not None:
                out[attribute] = value
        if self.data is not None:
            out["data"] = self.data
        return out

    def to_json(self) -> str:
        """The structured CloudEvent as strict JSON text (no NaN, no Infinity).

        Raises:
            EventEncodingError: the data is not strict JSON, or nests more than
                :data:`~wowevent_kombu.core.nesting.MAX_DEPTH` levels.
        """
        text = encode_json(self.to_cloudevent(), event_type=self.type)
        # The document adds one level around the data; only text with that many brackets
        # can be too deep, so the walk is skipped for nearly every event.
        if text_may_exceed(text, MAX_DEPTH + 1) and depth_exceeds(self.data, MAX_DEPTH):
            raise EventEncodingError(_TOO_DEEP, event_type=self.type)
        return text

    @classmethod
    def from_cloudevent(cls, document: Mapping[str, Any], *, replayed: bool = False) -> Event:
        """Build an event from the CloudEvents JSON structured form (a parsed dict).

        Unknown extension attributes are refused rather than silently dropped, so a round trip
        never loses anything.
        """
        if not isinstance(document, Mapping):
            raise InvalidEventError(
                f"a CloudEvent must be a JSON object, got {type(document).__name__}"
            )
        missing = [name for name in _REQUIRED if name not in document]
        if missing:
            raise InvalidEventError(f"CloudEvent lacks required attribute(s): {', '.join(missing)}")
        if document["specversion"] != SPEC_VERSION:
            raise InvalidEventError(
                f"CloudEvents specversion {document['specversion']!r} is not supported "
                f"(only {SPEC_VERSION})"
            )
        unknown = sorted(
            (name if isinstance(name, str) else repr(name))[:100] for name in set(document) - _KNOWN
        )
        if unknown:
            raise InvalidEventError(
                f"CloudEvent has attribute(s) this bus does not carry: {', '.join(unknown)}",
                event_type=str(document.get("type"))[:300],
            )
        time_text = document.get("time")
        extra: dict[str, Any] = {
            field: document[attribute]
            for attribute, field in _OPTIONAL.items()
            if attribute in document
        }
        return cls(
            type=document["type"],
            id=document["id"],
            source=document["source"],
            time=parse_time(time_text) if time_text is not None else _now(),
            data=document.get("data"),
            datacontenttype=document.get("datacontenttype", DEFAULT_CONTENT_TYPE),
            replayed=replayed,
            **extra,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Event:
        """Parse the CloudEvents JSON structured form."""
        if not isinstance(text, str | bytes | bytearray):
            raise InvalidEventError(
                f"a JSON CloudEvent is text or bytes, got {type(text).__name__}"
            )
        try:
            document = decode_json(text)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidEventError(f"not a JSON CloudEvent: {exc}") from exc
        return cls.from_cloudevent(document)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_TOO_DEEP = (
    f"event data is nested too deeply: more than {MAX_DEPTH} levels of objects and arrays "
    "(the limit, wowevent_kombu.core.nesting.MAX_DEPTH); flatten it"
)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode_json(value: Any, *, event_type: str | None = None) -> str:
    """Strict, compact JSON: refuses NaN/Infinity and non-JSON objects.

    Like JSON itself, object keys are text: int, float, bool and None keys are written as
    strings (``{1: "x"}`` arrives as ``{"1": "x"}``); other key types are refused.
    """
    try:
        return _ENCODER.encode(value)
    except RecursionError:
        raise EventEncodingError(_TOO_DEEP, event_type=event_type) from None
    except (TypeError, ValueError) as exc:
        raise EventEncodingError(
            f"event data is not JSON-serialisable: {exc}; send only dicts, lists, strings, "
            "finite numbers, booleans and null",
            event_type=event_type,
        ) from exc


def decode_json(text: str | bytes) -> Any:
    """Strict JSON decoding: refuses NaN/Infinity, which Python's json accepts by default.

    Raises:
        ValueError: not JSON, NaN/Infinity, or nested too deeply for the decoder (which would
            otherwise raise ``RecursionError``).
    """
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("JSON is nested too deeply to decode") from None
