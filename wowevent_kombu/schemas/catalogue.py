"""The event catalogue: an AsyncAPI 3.0 document of a bus's event types, schemas and subscribers.

Built from what the bus knows, with no I/O of its own beyond reading the schema registry and
the binding table through the objects passed in:

- one **channel** per registered event type, addressed by the type (the routing key on the
  bus's topic exchange, described by an AMQP channel binding), holding one **message** per
  registered schema version: the payload is that version's JSON Schema, the **headers** are
  the CloudEvents envelope (``type`` and ``schemaversion`` fixed to the message's);
- one ``send`` **operation** per channel (publishing it), and one ``receive`` operation per
  subscriber and event type its patterns match, naming the patterns;
- a channel per subscriber pattern that matches no registered type (addressed by the pattern),
  so a subscriber is listed even before its events have schemas.

``wowevent schemas asyncapi`` writes it; :func:`asyncapi_document` is the one entry point.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wowevent_kombu.core.event import SPEC_VERSION
from wowevent_kombu.core.matcher import TopicMatcher
from wowevent_kombu.core.names import queue_name

if TYPE_CHECKING:
    from wowevent_kombu.bus import EventBus
    from wowevent_kombu.schemas.registry import SchemaRegistry

ASYNCAPI_VERSION = "3.0.0"

_KEY_UNSAFE = re.compile(r"[^\w.\-]")

_ENVELOPE: dict[str, Any] = {
    "specversion": {"type": "string", "const": SPEC_VERSION},
    "id": {"type": "string", "minLength": 1, "description": "Unique per event; kept by replays."},
    "source": {"type": "string", "minLength": 1, "description": "Who published the event."},
    "time": {"type": "string", "format": "date-time"},
    "datacontenttype": {"type": "string", "const": "application/json"},
    "subject": {"type": "string"},
    "dataschema": {"type": "string"},
    "correlationid": {"type": "string", "description": "Ties a request's events together."},
    "causationid": {"type": "string", "description": "Id of the event that caused this one."},
    "traceparent": {"type": "string", "description": "W3C Trace Context (distributed tracing)."},
    "tracestate": {"type": "string"},
}


def _key(text: str) -> str:
    """A component or channel key (AsyncAPI allows letters, digits, ``_ . -``)."""
    return _KEY_UNSAFE.sub("_", text)


def _headers(event_type: str, version: str | None) -> dict[str, Any]:
    properties = {**_ENVELOPE, "type": {"type": "string", "const": event_type}}
    if version is not None:
        properties["schemaversion"] = {"type": "string", "const": version}
    return {
        "type": "object",
        "description": "The CloudEvents 1.0 envelope (structured mode: the event's attributes).",
        "required": ["specversion", "id", "source", "type"],
        "properties": properties,
    }


def asyncapi_document(
    bus: EventBus,
    *,
    registry: SchemaRegistry | None = None,
    subscribers: Mapping[str, Sequence[str]] | None = None,
    version: str = "1.0.0",
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``bus``'s events.

    Args:
        bus: The bus (its exchange, and its subscribers unless ``subscribers`` is given).
        registry: Where the schemas come from; ``bus.schemas`` when omitted. Without one the
            document lists subscribers and their patterns only.
        subscribers: Subscriber name -> patterns; by default those bound in Redis now plus
            those registered on ``bus`` in this process.
        version: The ``info.version`` of the document (the catalogue's, not the bus's).
    """
    registry = registry if registry is not None else bus.schemas
    if subscribers is None:
        local = {name: list(sub.patterns) for name, sub in bus.subscribers.items()}
        subscribers = {**bus.bindings(), **local}
    exchange = bus.exchange
    binding = {
        "amqp": {
            "is": "routingKey",
            "exchange": {"name": exchange, "type": "topic", "durable": True, "autoDelete": False},
        }
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    types = registry.types() if registry is not None else []
    for event_type in types:
        refs: dict[str, Any] = {}
        for record in registry.history(event_type) if registry is not None else []:
            version_id = _key(f"{event_type}.v{record.schema.version}")
            messages[version_id] = {
                "name": event_type,
                "title": f"{event_type} {record.schema.version}",
                "contentType": "application/json",
                "headers": _headers(event_type, record.schema.version),
                "payload": dict(record.schema.schema),
                "x-wowevent-compatibility": record.compatibility,
                "x-wowevent-registered-at": record.registered_at,
            }
            refs[version_id] = {"$ref": f"#/components/messages/{version_id}"}
        channel_id = _key(event_type)
        channels[channel_id] = {
            "address": event_type,
            "title": event_type,
            "messages": refs,
            "bindings": binding,
        }
        operations[_key(f"publish.{event_type}")] = {
            "action": "send",
            "title": f"Publish {event_type}",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{m}"} for m in refs],
        }
    for name, patterns in sorted(subscribers.items()):
        matcher = TopicMatcher((pattern, pattern) for pattern in patterns)
        used: set[str] = set()
        matched = []
        for event_type in types:
            hits = matcher.match(event_type)
            if hits:
                used.update(hits)
                matched.append(event_type)
        for event_type in matched:
            channel_id = _key(event_type)
            operations[_key(f"{name}.receive.{event_type}")] = {
                "action": "receive",
                "title": f"{name} receives {event_type}",
                "summary": f"Subscriber {name} (patterns {', '.join(patterns)})",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "messages": [
                    {"$ref": f"#/channels/{channel_id}/messages/{m}"}
                    for m in channels[channel_id]["messages"]
                ],
                "x-wowevent-subscriber": name,
                "x-wowevent-patterns": list(patterns),
                "x-wowevent-queue": queue_name(exchange, name),
            }
        for pattern in patterns:
            if pattern in used:
                continue
            channel_id = _key(f"pattern.{pattern}")
            channels.setdefault(
                channel_id,
                {
                    "address": pattern,
                    "title": pattern,
                    "description": "A subscription pattern no registered event type matches.",
                    "messages": {},
                    "bindings": binding,
                },
            )
            operations[_key(f"{name}.receive.{pattern}")] = {
                "action": "receive",
                "title": f"{name} receives {pattern}",
                "channel": {"$ref": f"#/channels/{channel_id}"},
                "x-wowevent-subscriber": name,
                "x-wowevent-patterns": list(patterns),
                "x-wowevent-queue": queue_name(exchange, name),
            }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": f"Events on exchange {exchange}",
            "version": version,
            "description": (
                "Every event type with a registered schema, each version as a message, and the "
                "subscribers that receive them. Events are CloudEvents 1.0 in JSON; each "
                "subscriber consumes from its own queue bound to the topic exchange "
                f"{exchange!r} with its patterns ('*' one word, '#' zero or more)."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }
