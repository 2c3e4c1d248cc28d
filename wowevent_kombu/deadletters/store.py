"""The dead-letter store: failed deliveries wait in Redis until an operator re-drives or purges.

Layout (keys from :mod:`wowevent_kombu.core.names`): a HASH ``<exchange>:dlq:records`` maps a record
id to the record as JSON, and a ZSET ``<exchange>:dlq:index`` orders the ids by last failure
time. The record id is the failed delivery's Celery task id, which is unique per (event,
subscriber, re-drive); writing the same delivery twice (a crash between the write and the ack)
overwrites one record instead of adding a second. Re-driving records to their subscribers is
:mod:`wowevent_kombu.deadletters.redrive`.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Unpack

import redis

from wowevent_kombu.core import names, wire
from wowevent_kombu.core.errors import InvalidFilterError, UnknownDeadLetterError
from wowevent_kombu.deadletters.record import (
    REASONS,
    DeadLetter,
    DeadLetterFilter,
    Where,
    filter_of,
)
from wowevent_kombu.deadletters.redrive import Redriver, Target

log = logging.getLogger(__name__)

CHUNK = 1000
"""Records read or re-driven per Redis round trip in bulk operations."""

# A script rather than MULTI/EXEC: EXEC runs every queued command even when one fails, so a
# refused HSET would still index a record that does not exist. Here the HSET failing stops it.
_WRITE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
"""


@dataclasses.dataclass(frozen=True)
class Page:
    """One page of :meth:`DeadLetterStore.list`; pass ``cursor`` back for the next one."""

    records: list[DeadLetter]
    cursor: str | None


def _encode_cursor(score: float, record_id: str) -> str:
    return f"{score!r}|{record_id}"


def _decode_cursor(cursor: str) -> tuple[float, str]:
    score, sep, record_id = cursor.partition("|")
    try:
        if not sep or not record_id:
            raise ValueError(cursor)
        return float(score), record_id
    except ValueError:
        raise InvalidFilterError(
            f"malformed cursor {cursor!r}; pass back the cursor a previous list returned"
        ) from None


class DeadLetterStore:
    """Read, re-drive and purge one exchange's dead-letter records.

    Args:
        client: Redis client of the bus.
        exchange: The bus's exchange (every key starts with it).
        known_subscribers: Names a re-drive may go to (bound in Redis or registered here); a
            record whose subscriber is not among them is refused, since nobody would consume it.
        sender: Celery ``origin`` header of re-driven messages.
        send: Delivers re-driven messages (queue -> messages) on a broker outside Redis
            (RabbitMQ), before their records are removed; a record is then re-driven
            at least once (two operators re-driving it at the same instant may both deliver
            it). ``None``: the messages are pushed to the Redis queues in the same atomic step
            that removes the records (exactly once).
    """

    def __init__(
        self,
        client: redis.Redis,
        exchange: str,
        *,
        known_subscribers: Callable[[], Iterable[str]],
        sender: str | None = None,
        send: Callable[[Mapping[str, Sequence[str]]], object] | None = None,
    ) -> None:
        self._client = client
        self.exchange = exchange
        self._records = names.dead_letter_records_key(exchange)
        self._index = names.dead_letter_index_key(exchange)
        self._write = client.register_script(_WRITE)
        self._redriver = Redriver(
            client,
            exchange,
            records_key=self._records,
            index_key=self._index,
            known_subscribers=known_subscribers,
            sender=sender or wire.origin(),
            send=send,
            chunk=CHUNK,
        )

    @property
    def client(self) -> redis.Redis:
        """The Redis client the store uses (shared with the bus)."""
        return self._client

    # -- writing ------------------------------------------------------------------------------

    def write(self, record: DeadLetter) -> None:
        """Store ``record``, replacing one with the same id, in one atomic step."""
        self._write(
            keys=[self._records, self._index],
            args=[record.id, record.to_json(), repr(record.last_failure)],
        )

    def trim(
        self, *, max_age: float | None = None, max_records: int | None = None
    ) -> builtins.list[str]:
        """Apply a retention: drop records older than ``max_age`` s and beyond ``max_records``.

        Returns:
            The ids dropped (also logged as a warning, since they are gone for good).
        """
        doomed: set[str] = set()
        if max_age is not None:
            cutoff = time.time() - max_age
            doomed.update(self._decode(self._client.zrangebyscore(self._index, "-inf", cutoff)))
        if max_records is not None:
            excess = int(self._client.zcard(self._index)) - max_records
            if excess > 0:
                doomed.update(self._decode(self._client.zrange(self._index, 0, excess - 1)))
        dropped = self._delete(sorted(doomed))
        if dropped:
            log.warning(
                "dead-letter retention (max_age=%s, max_records=%s) dropped %d record(s) of "
                "exchange %r: %s",
                max_age, max_records, len(dropped), self.exchange, ", ".join(dropped[:20]),
            )  # fmt: skip
        return dropped

    # -- reading ------------------------------------------------------------------------------

    def get(self, record_id: str) -> DeadLetter:
        """One record by id.

        Raises:
            UnknownDeadLetterError: no such record.
        """
        raw = self._client.hget(self._records, record_id)
        if raw is None:
            raise UnknownDeadLetterError(
                f"no dead-letter record {record_id!r} on exchange {self.exchange!r} (it may "
                "have been re-driven or purged); 'wowevent dlq list' shows those there are",
                record_id=record_id,
            )
        return DeadLetter.from_json(raw)

    def list(
        self,
        flt: DeadLetterFilter | None = None,
        *,
        limit: int = 100,
        cursor: str | None = None,
        **where: Unpack[Where],
    ) -> Page:
        """Records matching the filter, oldest last failure first, ``limit`` at a time.

        The filter is ``flt`` or the keywords ``subscriber``, ``type``, ``reason``, ``since``
        and ``until`` (as in :class:`DeadLetterFilter`), the same for every bulk operation.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidFilterError(f"limit must be a positive integer, got {limit!r}")
        flt = filter_of(flt, where)
        after = _decode_cursor(cursor) if cursor else None
        out: builtins.list[tuple[float, DeadLetter]] = []
        for score, data in self._scan(flt, after):
            record = DeadLetter.from_dict(data)
            out.append((score, record))
            if len(out) == limit:
                return Page([r for _, r in out], _encode_cursor(score, record.id))
        return Page([r for _, r in out], None)

    def iter(
        self, flt: DeadLetterFilter | None = None, **where: Unpack[Where]
    ) -> Iterator[DeadLetter]:
        """Every record matching the filter (as for :meth:`list`), oldest first, in chunks."""
        for _, data in self._scan(filter_of(flt, where)):
            yield DeadLetter.from_dict(data)

    def count(self, flt: DeadLetterFilter | None = None, **where: Unpack[Where]) -> int:
        """How many records match (as for :meth:`list`; constant time on time alone)."""
        flt = filter_of(flt, where)
        if flt.subscriber is None and flt.type is None and flt.reason is None:
            lo = "-inf" if flt.since is None else flt.since
            hi = "+inf" if flt.until is None else flt.until
            return int(self._client.zcount(self._index, lo, hi))
        return sum(1 for _ in self._scan(flt))

    def count_by_subscriber(self) -> dict[str, int]:
        """Records kept per subscriber (subscribers with none are absent), read from the index.

        Reads every record, ``CHUNK`` per round trip: the cost grows with the store's size,
        which retention (:meth:`trim`) bounds.
        """
        return self._totals()[1]

    def stats(self) -> dict[str, Any]:
        """Totals by subscriber and by reason, and the oldest and newest failure times."""
        total, by_subscriber, by_reason = self._totals()
        ends = [
            self._client.zrange(self._index, 0, 0, withscores=True),
            self._client.zrange(self._index, -1, -1, withscores=True),
        ]
        oldest, newest = (float(e[0][1]) if e else None for e in ends)
        return {
            "total": total,
            "by_subscriber": dict(sorted(by_subscriber.items())),
            "by_reason": by_reason,
            "oldest": oldest,
            "newest": newest,
        }

    def _totals(self) -> tuple[int, dict[str, int], dict[str, int]]:
        by_subscriber: dict[str, int] = {}
        by_reason: dict[str, int] = dict.fromkeys(REASONS, 0)
        total = 0
        for _, data in self._scan(DeadLetterFilter()):
            total += 1
            subscriber, reason = data["subscriber"], data["reason"]
            by_subscriber[subscriber] = by_subscriber.get(subscriber, 0) + 1
            by_reason[reason] = by_reason.get(reason, 0) + 1
        return total, by_subscriber, by_reason

    def _scan(
        self, flt: DeadLetterFilter, after: tuple[float, str] | None = None
    ) -> Iterator[tuple[float, dict[str, Any]]]:
        """``(score, stored record)`` in index order, strictly after ``after``, matching ``flt``.

        Bulk operations work on the stored dicts: building :class:`DeadLetter` and its attempts
        would cost more than the Redis round trips.
        """
        hi: float | str = "+inf" if flt.until is None else flt.until
        lo: float | str = "-inf" if flt.since is None else flt.since
        if after is not None:
            score, last = after
            yield from self._load(flt, self._ties(score, last))
            lo = f"({score!r}"
        while True:
            found: Any = self._client.zrangebyscore(
                self._index, lo, hi, start=0, num=CHUNK, withscores=True
            )
            batch = [(float(s), m.decode()) for m, s in found]
            yield from self._load(flt, batch)
            if len(batch) < CHUNK:
                return
            score, last = batch[-1]
            # Members sharing the last score may straddle the page; finish them by id order.
            yield from self._load(flt, self._ties(score, last))
            lo = f"({score!r}"

    def _ties(self, score: float, last: str) -> builtins.list[tuple[float, str]]:
        members = self._decode(self._client.zrangebyscore(self._index, score, score))
        return [(score, m) for m in members if m > last]

    def _load(
        self, flt: DeadLetterFilter, entries: Sequence[tuple[float, str]]
    ) -> Iterator[tuple[float, dict[str, Any]]]:
        if not entries:
            return
        raws = self._client.hmget(self._records, [m for _, m in entries])
        for (score, _), raw in zip(entries, raws, strict=True):
            if raw is None:  # removed since the index was read
                continue
            data = json.loads(raw)
            if flt.matches(data):
                yield score, data

    @staticmethod
    def _decode(members: Any) -> builtins.list[str]:
        return [m.decode() if isinstance(m, bytes) else m for m in members]

    # -- re-driving and purging ---------------------------------------------------------------

    def retry(self, *record_ids: str, dry_run: bool = False) -> builtins.list[str]:
        """Re-drive records by id to their own subscriber, as fresh tasks with fresh retries.

        Every id is checked first; nothing is re-driven unless all exist and all their
        subscribers are still bound.

        Returns:
            The ids re-driven (or that would be, with ``dry_run``).

        Raises:
            UnknownDeadLetterError: an id has no record.
            DeadLetterError: a record's subscriber is no longer bound.
        """
        records = [self.get(record_id) for record_id in dict.fromkeys(record_ids)]
        targets = [Target(r.id, r.subscriber, r.event_id, r.event_type, r.event) for r in records]
        return self._redriver.redrive(targets, dry_run=dry_run)

    def retry_all(
        self,
        flt: DeadLetterFilter | None = None,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        **where: Unpack[Where],
    ) -> builtins.list[str]:
        """Re-drive every record matching the filter (as for :meth:`list`; see :meth:`retry`).

        ``progress`` is called with the number of records handled after each chunk.
        """
        targets = [
            Target(d["id"], d["subscriber"], d.get("event_id"), d.get("event_type"), d.get("event"))
            for _, d in self._scan(filter_of(flt, where))
        ]
        return self._redriver.redrive(targets, dry_run=dry_run, progress=progress)

    def redrive_message(self, record: DeadLetter) -> str:
        """The Celery task message that re-drives ``record`` to its subscriber.

        The task id is fresh (derived from the record id), and the retry count starts at 0.
        """
        return self._redriver.message(
            Target(record.id, record.subscriber, record.event_id, record.event_type, record.event)
        )

    def purge(
        self,
        *record_ids: str,
        flt: DeadLetterFilter | None = None,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
        **where: Unpack[Where],
    ) -> builtins.list[str]:
        """Delete records by id, or every record matching the filter (as for :meth:`list`).

        Ids and a filter are never both allowed; with neither, every record goes.

        Raises:
            UnknownDeadLetterError: an id has no record (nothing is deleted then).
        """
        chosen = filter_of(flt, where)
        if record_ids and (flt is not None or any(v is not None for v in where.values())):
            raise InvalidFilterError("purge takes record ids or a filter, not both")
        if record_ids:
            ids = [self.get(record_id).id for record_id in dict.fromkeys(record_ids)]
        else:
            ids = [d["id"] for _, d in self._scan(chosen)]
        if dry_run:
            return ids
        return self._delete(ids, progress=progress)

    def _delete(
        self, ids: Sequence[str], *, progress: Callable[[int], None] | None = None
    ) -> builtins.list[str]:
        deleted: builtins.list[str] = []
        for start in range(0, len(ids), CHUNK):
            chunk = list(ids[start : start + CHUNK])
            pipe = self._client.pipeline(transaction=True)
            for record_id in chunk:
                pipe.hdel(self._records, record_id)
            pipe.zrem(self._index, *chunk)
            results = pipe.execute()
            deleted += [i for i, n in zip(chunk, results, strict=False) if n]
            if progress is not None:
                progress(len(chunk))
        return deleted
