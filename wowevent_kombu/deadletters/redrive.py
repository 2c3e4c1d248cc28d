"""Re-drive: dead-letter records sent back to their own subscribers as fresh Celery tasks.

A record is re-driven only if it is still there when its message is pushed (two operators, or a
retry racing a purge, must not deliver it twice); on Redis the push, the bell and the record's
removal are one script. :class:`~wowevent_kombu.deadletters.store.DeadLetterStore` delegates its
``retry`` and ``retry_all`` here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import redis

from wowevent_kombu.brokers.redis import bell
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.errors import DeadLetterError

# Re-drive is conditional on the record still being there (two operators, or a retry racing a purge,
# must not deliver it twice), which MULTI/EXEC cannot express; a script is just as atomic. Each push
# rings the queue's bell (bell.RING_LUA's ring), the last two ARGV being the token and
# the most tokens a bell holds. KEYS: records, index, queue..., the queues' bells in the same order;
# ARGV: (id, queue number, message) triples, token, most tokens. Queue number 0: the message was
# already sent elsewhere (a RabbitMQ broker), only the record is removed.
_REDRIVE = (
    bell.RING_LUA
    + """
local queues = (#KEYS - 2) / 2
local token, most = ARGV[#ARGV - 1], tonumber(ARGV[#ARGV])
local moved = {}
for i = 1, #ARGV - 2, 3 do
  if redis.call('HDEL', KEYS[1], ARGV[i]) == 1 then
    local n = tonumber(ARGV[i + 1])
    redis.call('ZREM', KEYS[2], ARGV[i])
    if n > 0 then
      redis.call('LPUSH', KEYS[2 + n], ARGV[i + 2])
      ring(KEYS[2 + queues + n], token, most)
    end
    moved[#moved + 1] = ARGV[i]
  end
end
return moved
"""
)


class Target(NamedTuple):
    """What a re-drive needs of a record."""

    id: str
    subscriber: str
    event_id: str | None
    event_type: str | None
    event: Any


class Redriver:
    """Re-drives one exchange's records, ``chunk`` per Redis round trip.

    Args:
        client: Redis client of the bus.
        exchange: The bus's exchange.
        records_key: The HASH of records (see :mod:`wowevent_kombu.deadletters.store`).
        index_key: The ZSET indexing them.
        known_subscribers: Names a re-drive may go to.
        sender: Celery ``origin`` header of re-driven messages.
        send: Delivers the messages on a broker outside Redis (RabbitMQ) before the records
            are removed; ``None`` pushes them to Redis in the same atomic step.
        chunk: Records per round trip.
    """

    def __init__(
        self,
        client: redis.Redis,
        exchange: str,
        *,
        records_key: str,
        index_key: str,
        known_subscribers: Callable[[], Iterable[str]],
        sender: str,
        send: Callable[[Mapping[str, Sequence[str]]], object] | None,
        chunk: int,
    ) -> None:
        self.exchange = exchange
        self._records = records_key
        self._index = index_key
        self._known = known_subscribers
        self._sender = sender
        self._send = send
        self._chunk = chunk
        self._redrive = client.register_script(_REDRIVE)

    def redrive(
        self,
        records: Sequence[Target],
        *,
        dry_run: bool,
        progress: Callable[[int], None] | None = None,
    ) -> list[str]:
        """Re-drive ``records`` (all of them checked first); the ids moved (or, with
        ``dry_run``, that would be).

        Raises:
            DeadLetterError: a record's subscriber is no longer bound.
        """
        known = set(self._known())
        gone = sorted({r.subscriber for r in records} - known)
        if gone:
            raise DeadLetterError(
                f"subscriber(s) {', '.join(gone)} are no longer bound on exchange "
                f"{self.exchange!r}: nobody would consume a re-drive, so nothing was re-driven. "
                "Deploy the subscriber again, or narrow the filter (--subscriber) / purge them"
            )
        if dry_run:
            return [r.id for r in records]
        moved: list[str] = []
        for start in range(0, len(records), self._chunk):
            chunk = records[start : start + self._chunk]
            queues: dict[str, int] = {}
            argv: list[str] = []
            sent: dict[str, list[str]] = {}
            for record in chunk:
                queue = names.queue_name(self.exchange, record.subscriber)
                message = self.message(record)
                if self._send is not None:
                    sent.setdefault(queue, []).append(message)
                    argv += [record.id, "0", ""]
                    continue
                number = queues.setdefault(queue, len(queues) + 1)
                argv += [record.id, str(number), message]
            if self._send is not None:
                self._send(sent)
            bells = [names.bell_key(queue) for queue in queues]
            argv += [bell.TOKEN, str(bell.MOST_TOKENS)]
            done = self._redrive(keys=[self._records, self._index, *queues, *bells], args=argv)
            moved += [m.decode() if isinstance(m, bytes) else m for m in done]
            if progress is not None:
                progress(len(chunk))
        return moved

    def message(self, record: Target) -> str:
        """The Celery task message re-driving ``record``: a fresh task id, retries from 0."""
        text = json.dumps(record.event, separators=(",", ":"), ensure_ascii=False)
        prepared = wire.prepare(text, event_type=record.event_type or "")
        return wire.task_message(
            prepared,
            task=names.task_name(record.subscriber),
            task_id=names.task_id(
                record.event_id or record.id, record.subscriber, names.redrive_tag(record.id)
            ),
            queue=names.queue_name(self.exchange, record.subscriber),
            sender=self._sender,
            resent_at=time.time(),
        )
