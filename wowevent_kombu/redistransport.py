"""Kombu's Redis transport with one change: a queue entry that is not a message cannot kill it.

Kombu's Redis channel parses each popped entry with ``json.loads`` inside the worker's event
loop: an entry that is not UTF-8 JSON, or JSON that is not a Kombu envelope, raises there and
stops the worker ("Unrecoverable error"), and the entry, already popped, is gone. This channel
checks each entry first and wraps one that is not a usable envelope in a *quarantine* envelope:
its raw bytes as the body, the content type :data:`QUARANTINE_CONTENT_TYPE` (which no worker
accepts, so Celery reports it as a decode error) and the problem in the ``wowevent_malformed``
header. The worker's malformed-entry hooks (:mod:`wowevent_kombu.malformed`) then record it.

Every delivered envelope also gets the queue it was popped from in the property
:data:`SOURCE_QUEUE`, since a hostile entry's own ``delivery_info`` cannot be trusted to say.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from queue import Empty
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.utils.json import loads

QUARANTINE_CONTENT_TYPE = "application/x-wowevent-malformed"
"""Content type of a quarantine envelope (never in any ``accept_content``)."""

MALFORMED_HEADER = "wowevent_malformed"
"""Header of a quarantine envelope: what was wrong with the entry."""

SOURCE_QUEUE = "wowevent_queue"
"""Envelope property: the Redis list the entry was popped from."""


def envelope_problem(payload: Any) -> str | None:
    """What stops Kombu from delivering ``payload`` as a message, or ``None`` if nothing does."""
    if not isinstance(payload, dict):
        return f"the entry is JSON but a {type(payload).__name__}, not a message envelope"
    properties = payload.get("properties")
    if not isinstance(properties, dict):
        return "the envelope has no 'properties' object"
    tag = properties.get("delivery_tag")
    if not isinstance(tag, str) or not tag:
        return "the envelope has no delivery_tag string"
    info = properties.get("delivery_info")
    if not isinstance(info, dict) or not all(
        isinstance(info.get(key), str) for key in ("exchange", "routing_key")
    ):
        return "the envelope's delivery_info lacks exchange and routing_key strings"
    if payload.get("headers") is not None and not isinstance(payload["headers"], dict):
        return "the envelope's headers are not an object"
    for key in ("content-type", "content-encoding"):
        if payload.get(key) is not None and not isinstance(payload[key], str):
            return f"the envelope's {key!r} is not a string"
    body = payload.get("body")
    if body is not None and not isinstance(body, str):
        return "the envelope's body is not a string"
    encoding = properties.get("body_encoding")
    if encoding not in (None, "base64"):
        return f"unknown body_encoding {encoding!r}"
    if encoding == "base64" and body:
        try:
            base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "the body is not valid base64"
    return None


def quarantine(raw: bytes, queue: str, problem: str) -> dict[str, Any]:
    """The envelope that carries a malformed entry's raw bytes to the worker's hooks."""
    return {
        "body": base64.b64encode(raw).decode("ascii"),
        "content-type": QUARANTINE_CONTENT_TYPE,
        "content-encoding": "binary",
        "headers": {MALFORMED_HEADER: problem},
        "properties": {
            "delivery_tag": f"malformed-{uuid.uuid4().hex}",
            "delivery_info": {"exchange": "", "routing_key": queue},
            "body_encoding": "base64",
            "priority": 0,
            SOURCE_QUEUE: queue,
        },
    }


def parse_entry(raw: bytes | str, queue: str) -> dict[str, Any]:
    """A popped queue entry as a deliverable envelope (a quarantine one when it is unusable)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    try:
        # Kombu's own loads, so accepted envelopes decode exactly as the stock channel would.
        payload = loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return quarantine(data, queue, "the entry is not UTF-8 text")
    except (ValueError, RecursionError):
        return quarantine(data, queue, "the entry is not JSON")
    problem = envelope_problem(payload)
    if problem is not None:
        return quarantine(data, queue, problem)
    payload["properties"][SOURCE_QUEUE] = queue
    return payload  # type: ignore[no-any-return]


class GuardedChannel(kombu_redis.Channel):  # type: ignore[misc]
    """A Redis channel that quarantines unusable entries instead of raising in the event loop."""

    def _brpop_read(self, **options: Any) -> bool:
        # Mirrors kombu.transport.redis.Channel._brpop_read (5.7) except for the parsing.
        try:
            try:
                dest__item = self.client.parse_response(self.client.connection, "BRPOP", **options)
            except self.connection_errors:
                self.client.connection.disconnect()
                raise
            if not dest__item:
                raise Empty()
            dest_raw, item = dest__item
            dest = kombu_redis.bytes_to_str(dest_raw).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(dest)
            self.connection._deliver(parse_entry(item, dest), dest)
            return True
        finally:
            self._in_poll = None
            flush = getattr(self, "_flush_brpop_reauth", None)
            if flush is not None:
                flush()

    def _get(self, queue: str) -> dict[str, Any]:
        with self.conn_or_acquire() as client:
            for pri in self.priority_steps:
                item = client.rpop(self._q_for_pri(queue, pri))
                if item:
                    self._maybe_update_queues_expire(client, queue)
                    return parse_entry(item, queue)
            self._maybe_update_queues_expire(client, queue)
            raise Empty()


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """Kombu's Redis transport using :class:`GuardedChannel` (``redis://`` and ``rediss://``)."""

    Channel = GuardedChannel


class GuardedSentinelChannel(GuardedChannel, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """:class:`GuardedChannel`'s parsing on Kombu's Sentinel channel."""


class SentinelTransport(kombu_redis.SentinelTransport):  # type: ignore[misc]
    """Kombu's Sentinel transport using :class:`GuardedSentinelChannel` (``sentinel://``)."""

    Channel = GuardedSentinelChannel
