"""Celery protocol-2 task messages in the form Kombu's Redis transport stores them.

A publish builds the body once per event and stamps only the per-subscriber parts (task name,
task id, delivery tag, queue) into a prepared template per copy, which is what makes fan-out to
many subscribers cheap. ``tests/integration`` proves real workers consume exactly this.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from wowevent_kombu.core.errors import EventEncodingError

EVENT_KWARG = "event"
"""The task keyword argument carrying the CloudEvent (visible in Flower as the task's kwargs)."""

REPLAY_HEADER = "wowevent_replay"
"""Message header marking a delivery made by a replay of the log."""

RESENT_HEADER = "wowevent_resent_at"
"""Message header of a replay's or a dead-letter re-drive's delivery: epoch seconds when it was
re-published. Latency of such a delivery is measured from it, not from the (old) event time."""

KWARGSREPR_LIMIT = 1024
_EMBED = '{"callbacks":null,"errbacks":null,"chain":null,"chord":null}'


class _DeliveryTags:
    """Unique delivery tags: a random per-process prefix and a counter (cheaper than uuid4).

    The prefix is renewed when the pid changes, so forked pool children never share tags.
    """

    def __init__(self) -> None:
        self._pid = -1
        self._prefix = ""
        self._numbers: Iterator[int] = iter(())

    def next(self) -> str:
        pid = os.getpid()
        if pid != self._pid:
            self._pid, self._prefix = pid, uuid.uuid4().hex[:20]
            self._numbers = itertools.count(1)
        return f"{self._prefix}-{next(self._numbers)}"


_DELIVERY_TAGS = _DeliveryTags()


def origin() -> str:
    """Celery's ``origin`` header: ``pid@hostname`` of the sending process."""
    return f"{os.getpid()}@{socket.gethostname()}"


@dataclass(frozen=True, slots=True)
class PreparedEvent:
    """The parts of one event's message that every subscriber copy shares."""

    body: str
    kwargsrepr: str
    size: int = 0
    """Bytes of the event's own JSON, UTF-8 encoded (what ``max_event_bytes`` limits)."""
    raw: bytes = b""
    """The task body itself (``body`` is it in base64, as Kombu's Redis envelope holds it)."""


def prepare(event_json: str, *, event_type: str) -> PreparedEvent:
    """Encode the task body ``[[], {"event": ...}, embed]`` once for all of an event's copies."""
    raw = f'[[],{{"{EVENT_KWARG}":{event_json}}},{_EMBED}]'
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EventEncodingError(
            f"event data holds text that is not valid Unicode ({exc.reason}); "
            "decode bytes before publishing",
            event_type=event_type,
        ) from exc
    shown = (
        event_json if len(event_json) <= KWARGSREPR_LIMIT else event_json[:KWARGSREPR_LIMIT] + "..."
    )
    return PreparedEvent(
        body=base64.b64encode(encoded).decode("ascii"),
        kwargsrepr=json.dumps(f"{{'{EVENT_KWARG}': {shown}}}"),
        size=len(encoded) - _WRAPPER_BYTES,
        raw=encoded,
    )


# The task body around the event's JSON is ASCII: its bytes are its characters.
_WRAPPER_BYTES = len(f'[[],{{"{EVENT_KWARG}":}},{_EMBED}]')


def task_message(
    prepared: PreparedEvent,
    *,
    task: str,
    task_id: str,
    queue: str,
    sender: str,
    replay: bool = False,
    resent_at: float | None = None,
) -> str:
    """One subscriber's copy: a complete Kombu/Redis envelope as JSON text.

    ``task``, ``task_id`` and ``queue`` are restricted to JSON-safe characters by their
    validators, so they are stamped in without escaping. ``replay`` marks a replay of the log;
    ``resent_at`` (epoch seconds) marks any re-publish, replay or re-drive.
    """
    delivery_tag = _DELIVERY_TAGS.next()
    extra = f',"{REPLAY_HEADER}":true' if replay else ""
    if resent_at is not None:
        extra += f',"{RESENT_HEADER}":{resent_at!r}'
    return (
        f'{{"body":"{prepared.body}","content-encoding":"utf-8",'
        f'"content-type":"application/json","headers":{{"lang":"py","task":"{task}",'
        f'"id":"{task_id}","shadow":null,"eta":null,"expires":null,"group":null,'
        f'"group_index":null,"retries":0,"timelimit":[null,null],"root_id":"{task_id}",'
        f'"parent_id":null,"argsrepr":"()","kwargsrepr":{prepared.kwargsrepr},'
        f'"origin":"{sender}","ignore_result":true,"replaced_task_nesting":0,'
        f'"stamped_headers":null,"stamps":{{}}{extra}}},"properties":{{"correlation_id":"{task_id}",'
        f'"reply_to":null,"delivery_mode":2,"delivery_info":{{"exchange":"",'
        f'"routing_key":"{queue}"}},"priority":0,"body_encoding":"base64",'
        f'"delivery_tag":"{delivery_tag}"}}}}'
    )


def decode_task_message(raw: bytes | str) -> dict[str, Any]:
    """Parse a stored envelope and its body (for tools and tests, not the worker's hot path)."""
    envelope: dict[str, Any] = json.loads(raw)
    body = envelope["body"]
    if envelope.get("properties", {}).get("body_encoding") == "base64":
        body = base64.b64decode(body).decode("utf-8")
    envelope["decoded_body"] = json.loads(body)
    return envelope
