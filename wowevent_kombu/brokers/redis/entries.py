"""Popped queue entries: which are usable Kombu envelopes, and the quarantine of those that are not.

An entry is quarantined, never raised on, when it is not UTF-8 JSON, not a Kombu envelope, or its
compressed body is refused or inflates too far: the worker's malformed-entry hooks
(:mod:`wowevent_kombu.worker.malformed`) record it and the consumer carries on.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Any

from kombu.utils.json import loads

from wowevent_kombu.brokers.redis.inflate import InflateError, bounded, content_type, inflate

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


# The same check in Lua, for the atomic pop (wowevent_kombu.brokers.redis.bell.POP), which must
# decide inside Redis whether it can record an entry as unacknowledged. It checks only what the
# record needs, UTF-8 (Python's json and Kombu's restore refuse anything else), JSON, an object,
# the delivery tag and info; the channel then runs envelope_problem on every popped entry and
# drops the record of one it quarantines.
ENVELOPE_LUA = """
local function utf8_ok(s)
  if not string.find(s, '[\\128-\\255]') then return true end
  local i, n = 1, #s
  while i <= n do
    local c = string.byte(s, i)
    local size, low, high
    if c < 0x80 then size = 1
    elseif c >= 0xC2 and c <= 0xDF then size, low, high = 2, 0x80, 0xBF
    elseif c == 0xE0 then size, low, high = 3, 0xA0, 0xBF
    elseif c == 0xED then size, low, high = 3, 0x80, 0x9F
    elseif c >= 0xE1 and c <= 0xEF then size, low, high = 3, 0x80, 0xBF
    elseif c == 0xF0 then size, low, high = 4, 0x90, 0xBF
    elseif c >= 0xF1 and c <= 0xF3 then size, low, high = 4, 0x80, 0xBF
    elseif c == 0xF4 then size, low, high = 4, 0x80, 0x8F
    else return false end
    if size > 1 then
      local c2 = string.byte(s, i + 1)
      if not c2 or c2 < low or c2 > high then return false end
      for k = i + 2, i + size - 1 do
        local ck = string.byte(s, k)
        if not ck or ck < 0x80 or ck > 0xBF then return false end
      end
    end
    i = i + size
  end
  return true
end
local function envelope(item)
  if not utf8_ok(item) then return false end
  local ok, decoded = pcall(cjson.decode, item)
  if not ok or type(decoded) ~= 'table' then return false end
  local properties = decoded['properties']
  if type(properties) ~= 'table' then return false end
  local tag, info = properties['delivery_tag'], properties['delivery_info']
  if type(tag) ~= 'string' or tag == '' or type(info) ~= 'table'
      or type(info['exchange']) ~= 'string' or type(info['routing_key']) ~= 'string' then
    return false
  end
  return tag, info['exchange'], info['routing_key']
end
"""
"""Lua function ``envelope(item)``: the entry's delivery tag, exchange and routing key, or false.

False when the entry is not UTF-8 JSON holding the envelope parts Kombu's unacked record needs
(the first checks of :func:`envelope_problem`).
"""


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


OTHER_INFLATE_LIMIT = 64 * 1024 * 1024
"""Most bytes a compressed body of a queue that is no bell queue may inflate to."""


@dataclass(frozen=True)
class Compression:
    """What compressed bodies a queue takes, and how large they may inflate.

    Attributes:
        accept: Content types accepted (``None``: any codec Kombu knows).
        limit: Most bytes a body may inflate to.
    """

    accept: frozenset[str] | None = None
    limit: int = OTHER_INFLATE_LIMIT


def inflated(payload: dict[str, Any], rules: Compression) -> str | None:
    """Inflate a compressed envelope's body in place; what is wrong with it, or ``None``.

    The inflated body replaces the compressed one and the ``compression`` header goes, so
    Kombu never decompresses it again; a codec with no bounded decoder is left to Kombu.
    """
    headers = payload.get("headers") or {}
    codec = headers.get("compression")
    if codec is None:
        return None
    if not isinstance(codec, str):
        return "the envelope's compression header is not a string"
    name = content_type(codec)
    if name is None:
        return f"compressed with {codec!r}, which is no codec this worker knows"
    if rules.accept is not None and name not in rules.accept:
        enabled = ", ".join(sorted(rules.accept)) or "none"
        return (
            f"compressed with {name!r}, which this queue does not accept "
            f"(enabled by task_compression: {enabled})"
        )
    if not bounded(name):
        return None
    if payload["properties"].get("body_encoding") != "base64":
        return "a compressed body must be base64-encoded"
    try:
        body = inflate(base64.b64decode(payload.get("body") or ""), name, rules.limit)
    except InflateError as exc:
        return str(exc)
    payload["body"] = base64.b64encode(body).decode("ascii")
    del headers["compression"]
    return None


def parse_entry(
    raw: bytes | str, queue: str, compression: Compression = Compression()
) -> dict[str, Any]:
    """A popped queue entry as a deliverable envelope (a quarantine one when it is unusable)."""
    data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else raw
    try:
        # Kombu's own loads, so accepted envelopes decode exactly as the stock channel would.
        payload = loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return quarantine(data, queue, "the entry is not UTF-8 text")
    except (ValueError, RecursionError):
        return quarantine(data, queue, "the entry is not JSON")
    problem = envelope_problem(payload) or inflated(payload, compression)
    if problem is not None:
        return quarantine(data, queue, problem)
    payload["properties"][SOURCE_QUEUE] = queue
    return payload  # type: ignore[no-any-return]
