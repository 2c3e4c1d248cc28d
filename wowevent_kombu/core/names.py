"""Every derived name: exchange, queues, task names and Redis keys, as pure functions.

Nothing else in the package builds a key or a queue name inline, so one reading of this module
tells an operator every key the bus touches.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid

DEFAULT_EXCHANGE = "wowevent"
"""The topic exchange subscribers bind to, and the prefix of every queue and key of the bus."""

KOMBU_BINDING_PREFIX = "_kombu.binding."
"""Kombu's Redis transport keeps an exchange's binding table in the SET ``_kombu.binding.<x>``."""

KOMBU_BINDING_SEP = "\x06\x16"
"""Separator between routing key, regex and queue in a binding-table member."""

TAIL_PREFIX = "tail."
"""Subscriber-name prefix of the temporary queues made by ``wowevent tail``."""

_TASK_ID_NAMESPACE = uuid.UUID("6f1b8a52-3c1e-5e4b-9a0e-7a1d2c3b4e5f")
# Matched whole (fullmatch): with re.match, '$' would let a trailing newline through into a
# queue name.
_SUBSCRIBER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}")


def valid_subscriber_name(name: object) -> bool:
    """Tell whether ``name`` can name a subscriber (letters, digits, ``_ . -``, 1-200 chars).

    Anything that is not a string is not a name (``False``, never a ``TypeError``).
    """
    return (
        isinstance(name, str) and _SUBSCRIBER_NAME.fullmatch(name) is not None and ".." not in name
    )


def queue_name(exchange: str, subscriber: str) -> str:
    """The Redis list (Kombu queue) a subscriber's deliveries wait in."""
    return f"{exchange}.{subscriber}"


def subscriber_from_queue(exchange: str, queue: str) -> str | None:
    """Invert :func:`queue_name`; ``None`` for a queue that is not one of this exchange's."""
    prefix = f"{exchange}."
    if queue.startswith(prefix) and len(queue) > len(prefix):
        return queue[len(prefix) :]
    return None


def task_name(subscriber: str) -> str:
    """The Celery task name a subscriber runs under (the subscriber name itself)."""
    return subscriber


def pinned_exchange(exchange: str) -> str:
    """RabbitMQ: the topic exchange that routes by queue name alone (retries, replays, re-drives).

    Each subscriber queue is bound to it with its own name, so a message sent there reaches
    that one queue; Celery's native delayed delivery (countdown retries on quorum queues) needs
    a topic exchange, which the default exchange is not.
    """
    return f"{exchange}.pinned"


def pinned_key(queue: str) -> str:
    """RabbitMQ: the routing key that reaches ``queue`` through the pinned exchange.

    One word (a digest, no dots): Celery's delayed delivery binds ``#.<key>``, which must
    match no other queue's key, and a dotted queue name could end another one.
    """
    return hashlib.blake2b(queue.encode(), digest_size=16).hexdigest()


def dispatch_task_name(exchange: str) -> str:
    """RabbitMQ: the task name an event carries from the topic exchange into every bound queue.

    One routed message lands in several subscriber queues; the worker renames it to the
    subscriber task of the queue it arrived on (see :mod:`wowevent_kombu.brokers.amqp.dispatch`).
    """
    return f"wowevent.dispatch.{exchange}"


def task_id(event_id: str, subscriber: str, attempt_tag: str = "") -> str:
    """The deterministic Celery task id of one event's delivery to one subscriber.

    The same event published twice (same id) gets the same task ids, so duplicates are
    recognisable downstream. ``attempt_tag`` separates deliberate re-deliveries (replays,
    dead-letter re-drives) from the original.
    """
    digest = hashlib.sha1(  # noqa: S324 - RFC 4122 name-based ids are defined with SHA-1
        _TASK_ID_NAMESPACE.bytes + f"{event_id}/{subscriber}/{attempt_tag}".encode()
    ).digest()
    return format_uuid(digest[:16], version=5)


def random_uuid() -> str:
    """A random (version 4) UUID string, built without ``uuid.UUID``'s validation overhead."""
    return format_uuid(os.urandom(16), version=4)


def format_uuid(raw: bytes, *, version: int) -> str:
    """16 bytes as an RFC 4122 UUID string of ``version`` (same text as ``str(uuid.UUID)``)."""
    data = bytearray(raw)
    data[6] = (data[6] & 0x0F) | (version << 4)
    data[8] = (data[8] & 0x3F) | 0x80
    h = data.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


BELL_SUFFIX = f"{KOMBU_BINDING_SEP}bell"
"""Ends every bell key: Kombu's separator followed by a word, never a priority number."""


def bell_key(queue: str) -> str:
    """The list a queue's pushes ring, so workers wake to pop it atomically.

    Kombu's priority lists of a queue are ``queue + KOMBU_BINDING_SEP + <digits>``; a bell
    ends in the separator and a word instead, so it can be neither a queue Kombu can consume
    (Kombu cuts a popped key at its last separator) nor any queue's priority list.
    """
    return f"{queue}{BELL_SUFFIX}"


def lease_key(queue: str) -> str:
    """The key whose expiry marks a temporary queue's consumer as gone (see :func:`bell_key`)."""
    return f"{queue}{KOMBU_BINDING_SEP}lease"


def temporary_queues_key(exchange: str) -> str:
    """Set of the exchange's temporary queues (``wowevent tail``), each kept alive by a lease."""
    return f"{exchange}:temporary"


def binding_table_key(exchange: str) -> str:
    """Kombu's binding table of ``exchange``."""
    return f"{KOMBU_BINDING_PREFIX}{exchange}"


def binding_member(pattern: str, regex: str, queue: str) -> str:
    """One member of Kombu's binding table, in the exact form Kombu itself writes."""
    return KOMBU_BINDING_SEP.join((pattern, regex, queue))


def split_binding_member(member: str) -> tuple[str, str] | None:
    """``(pattern, queue)`` of a binding-table member, ``None`` when it is not well formed."""
    parts = member.split(KOMBU_BINDING_SEP)
    if len(parts) != 3 or not parts[2]:
        return None
    return parts[0], parts[2]


def binding_version_key(exchange: str) -> str:
    """Counter bumped by every bind and unbind, read inside each publish transaction."""
    return f"{exchange}:bindings:version"


def log_key(exchange: str) -> str:
    """The event log stream."""
    return f"{exchange}:log"


def stats_key(exchange: str) -> str:
    """Hash of bus-wide counters kept in Redis (published, unroutable)."""
    return f"{exchange}:stats"


def schema_types_key(namespace: str) -> str:
    """SET of the event types that have at least one registered schema."""
    return f"{namespace}:schema:types"


def schema_versions_key(namespace: str, event_type: str) -> str:
    """HASH of one event type's schemas: version -> stored record (document, mode, time)."""
    return f"{namespace}:schema:v:{event_type}"


def schema_counter_key(namespace: str) -> str:
    """Counter bumped by every registration, so other processes notice new versions cheaply."""
    return f"{namespace}:schema:counter"


def log_ids_prefix(exchange: str) -> str:
    """Prefix of the log's event-id index: one HASH per time bucket, ``<prefix><bucket>``."""
    return f"{exchange}:log:ids:"


def log_ids_key(exchange: str, bucket: int) -> str:
    """One bucket of the event-id index (event id -> log position)."""
    return f"{log_ids_prefix(exchange)}{bucket}"


def log_correlation_key(exchange: str, correlation_id: str, bucket: int) -> str:
    """LIST of the log positions of one correlation id's events logged in one time bucket."""
    return f"{exchange}:log:corr:{bucket}:{correlation_id}"


def replay_key(exchange: str, replay_id: str) -> str:
    """HASH recording one replay's selection and progress (what ``--resume`` reads)."""
    return f"{exchange}:replay:{replay_id}"


def checkpoints_key(exchange: str) -> str:
    """HASH subscriber name -> log position of the newest event it handled successfully."""
    return f"{exchange}:checkpoints"


def processed_key(exchange: str, subscriber: str, bucket: int) -> str:
    """One time bucket of a subscriber's processed-id SET (``idempotent=True``)."""
    return f"{exchange}:processed:{subscriber}:{bucket}"


def workers_key(exchange: str) -> str:
    """Hash of worker heartbeats: ``hostname:pid`` -> JSON (queues, expiry, metrics port)."""
    return f"{exchange}:workers"


def window_key(exchange: str, subscriber: str, bucket: int) -> str:
    """Hash of one subscriber's delivery counts and latency buckets for one time bucket.

    ``bucket`` is the bucket's start in whole seconds since the epoch divided by its width.
    """
    return f"{exchange}:window:{subscriber}:{bucket}"


def dead_letter_records_key(exchange: str) -> str:
    """HASH of dead-letter records: record id (the failed delivery's task id) -> JSON."""
    return f"{exchange}:dlq:records"


def dead_letter_index_key(exchange: str) -> str:
    """ZSET of dead-letter record ids scored by their last failure time (epoch seconds)."""
    return f"{exchange}:dlq:index"


def retry_history_key(exchange: str, task_id: str) -> str:
    """LIST of one delivery's failed attempts so far (JSON each), kept with a TTL."""
    return f"{exchange}:dlq:attempts:{task_id}"


def redrive_tag(record_id: str) -> str:
    """``attempt_tag`` of :func:`task_id` for the re-drive of one dead-letter record."""
    return f"dlq:{record_id}"


def breaker_key(exchange: str, subscriber: str) -> str:
    """HASH of one subscriber's circuit breaker: state, reopen time, backoff, transitions."""
    return f"{exchange}:breaker:{subscriber}"


def breaker_window_key(exchange: str, subscriber: str) -> str:
    """HASH of a closed breaker's recent attempts and failures, one field pair per time bucket."""
    return f"{exchange}:breaker:{subscriber}:window"


def breakers_key(exchange: str) -> str:
    """SET of the subscriber names that have breaker state (what ``wowevent breaker`` lists)."""
    return f"{exchange}:breakers"
