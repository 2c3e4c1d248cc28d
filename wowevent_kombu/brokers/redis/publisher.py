"""Getting events into Redis: the log append and every subscriber copy in one atomic call.

The call is the publish script (:mod:`wowevent_kombu.brokers.redis.publishscript`). The binding
table is cached per process. Each publish call also reads the table's version and size; when they
differ from the cached snapshot the cache is refreshed and the event is delivered, in a follow-up
call, to every subscriber the stale cache missed. So a binding that existed before a publish started
is never missed, and the common case costs no ``SMEMBERS`` and no extra round trip.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from wowevent_kombu.brokers.outgoing import Outgoing, copies, unroutable_error
from wowevent_kombu.brokers.redis import bell
from wowevent_kombu.brokers.redis.atomic import Command, PinnedTransactions
from wowevent_kombu.brokers.redis.errors import redis_error
from wowevent_kombu.brokers.redis.logscript import NO_LOG, LogAppender, LogWriter
from wowevent_kombu.brokers.redis.publishscript import PUBLISH, PublishCall, stamp
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.errors import PublishError, ReplicationError
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.core.topology import BindingSnapshot, BindingTable
from wowevent_kombu.core.urls import redact_url

log = logging.getLogger(__name__)


class RedisTransport:
    """The production transport over one Redis client."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self._client = client
        self._transactions = PinnedTransactions(client)
        self._settings = settings
        self._table = BindingTable(client, settings.exchange)
        self.log_appender: LogAppender = LogWriter(settings)
        self._call = PublishCall(settings.exchange)
        self._sender = wire.origin()
        self._snapshot: BindingSnapshot | None = None
        self._refresh_lock = threading.Lock()

    @property
    def client(self) -> redis.Redis:
        """The Redis client (shared with the log, DLQ and registry of the same bus)."""
        return self._client

    def snapshot(self, *, refresh: bool = False) -> BindingSnapshot:
        return self._snapshot_for((), None, refresh=refresh)

    def _snapshot_for(
        self, ids: tuple[str, ...], event_type: str | None, *, refresh: bool = False
    ) -> BindingSnapshot:
        current = self._snapshot
        if current is None or refresh:
            with self._refresh_lock:
                try:
                    current = self._table.read()
                except redis.RedisError as exc:
                    raise self._error(exc, "reading the binding table", ids, event_type) from exc
                self._snapshot = current
        return current

    def send(self, batch: Sequence[Outgoing], *, mandatory: bool) -> list[tuple[str, ...]]:
        if not batch:
            return []
        ids = tuple(item.event.id for item in batch)
        first_type = batch[0].event.type
        snap = self._snapshot_for(ids, first_type)
        routes = [self._route(snap, item.event.type) for item in batch]
        if mandatory and not all(routes):
            # The cache may predate the binding; check the table itself before refusing.
            snap = self._snapshot_for(ids, first_type, refresh=True)
            routes = [self._route(snap, item.event.type) for item in batch]
            self._refuse_unroutable(batch, routes)
        if self._commit(batch, routes, ids, with_log=True) != snap.stamp:
            routes = self._deliver_missed(batch, routes, ids)
        return routes

    def _route(self, snap: BindingSnapshot, event_type: str) -> tuple[str, ...]:
        return route(snap, event_type)

    def _refuse_unroutable(self, batch: Sequence[Outgoing], routes: list[tuple[str, ...]]) -> None:
        for item, queues in zip(batch, routes, strict=True):
            if not queues:
                raise unroutable_error(self._settings.exchange, batch, item.event.type)

    def _commit(
        self,
        batch: Sequence[Outgoing],
        routes: Sequence[tuple[str, ...]],
        ids: tuple[str, ...],
        *,
        with_log: bool,
    ) -> tuple[int, int]:
        """One publish script call: stamp read, log append and indexes, pushes, bells, count.

        Returns the binding table's ``(version, size)`` as the script read them.
        """
        keys, args = script_call(
            self._call, self.log_appender, self._sender, batch, routes, with_log=with_log
        )
        replicas = self._settings.wait_replicas
        then: list[Command] = []
        if replicas:
            then.append(("WAIT", replicas, self._settings.wait_timeout_ms))
        try:
            results = self._transactions.run_script(PUBLISH, keys, args, then=then)
        except redis.RedisError as exc:
            raise self._error(exc, "publishing", ids, batch[0].event.type) from exc
        if replicas and int(results[-1]) < replicas:
            raise ReplicationError(
                f"published on the primary but only {int(results[-1])} of {replicas} replica(s) "
                f"acknowledged it within {self._settings.wait_timeout_ms} ms: a failover now "
                "could lose it; re-publish the same event (same id) once replicas are back",
                event_ids=ids,
                event_type=batch[0].event.type,
                outcome_unknown=True,
                acknowledged=int(results[-1]),
            )
        return stamp(results[0])

    def _deliver_missed(
        self, batch: Sequence[Outgoing], routes: list[tuple[str, ...]], ids: tuple[str, ...]
    ) -> list[tuple[str, ...]]:
        try:
            fresh = self._snapshot_for(ids, batch[0].event.type, refresh=True)
        except PublishError:
            # The events are committed; only a binding made during this publish could be missed.
            log.warning("could not re-read the binding table after publishing %s", ids[:3])
            return routes
        missed = missed_routes(fresh, batch, routes)
        if any(missed):
            log.debug(
                "binding table changed during publish; delivering %d missed copies",
                sum(map(len, missed)),
            )
            self._commit(batch, missed, ids, with_log=False)
        return merged_routes(routes, missed)

    def _error(
        self, exc: redis.RedisError, doing: str, ids: tuple[str, ...], event_type: str | None = None
    ) -> PublishError:
        return redis_error(exc, doing, redact_url(self._settings.redis_url), ids, event_type)

    def bind(self, queue: str, patterns: Sequence[str]) -> None:
        self._table.bind(queue, patterns)
        self._snapshot = None

    def unbind(self, queue: str, patterns: Sequence[str] | None = None) -> list[str]:
        removed = self._table.unbind(queue, patterns)
        self._snapshot = None
        return removed

    def queue_depths(self, queues: Sequence[str]) -> dict[str, int]:
        pipe = self._client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(queue)
        return {q: int(n) for q, n in zip(queues, pipe.execute(), strict=True)}

    def delete_queue(self, queue: str) -> None:
        self._client.delete(queue, names.bell_key(queue))

    def push_commands(self, pushes: Mapping[str, Sequence[str]]) -> list[Command]:
        # One LPUSH per queue keeps the given order (the consumer pops the other end), each
        # followed by its bell's ring, which wakes the workers consuming that queue.
        commands: list[Command] = []
        for queue, messages in pushes.items():
            if messages:
                commands += [("LPUSH", queue, *messages), *bell.ring(queue)]
        return commands

    def close(self) -> None:
        self._transactions.release()
        self._client.close()


def route(snap: BindingSnapshot, event_type: str) -> tuple[str, ...]:
    """The queues an event of ``event_type`` goes to, as ``snap`` binds them (sorted)."""
    return tuple(sorted(snap.matcher.match(event_type)))


def script_call(
    call: PublishCall,
    appender: LogAppender,
    sender: str,
    batch: Sequence[Outgoing],
    routes: Sequence[tuple[str, ...]],
    *,
    with_log: bool,
) -> tuple[list[str], list[Any]]:
    """The publish script's ``(keys, args)``: each event's copies, and (``with_log``) the log
    append of the whole batch and the count of events that reached nobody."""
    pushes: dict[str, list[str]] = {}
    unroutable = 0
    for item, queues in zip(batch, routes, strict=True):
        if not queues:
            unroutable += 1
        for queue, message in copies(call.exchange, item, queues, sender):
            pushes.setdefault(queue, []).append(message)
    # Log and index every event of the batch in the same call as its deliveries.
    logged = appender.arguments(batch) if with_log else NO_LOG
    return call.arguments(logged, pushes, unroutable if with_log else 0)


def missed_routes(
    fresh: BindingSnapshot, batch: Sequence[Outgoing], routes: Sequence[tuple[str, ...]]
) -> list[tuple[str, ...]]:
    """Per event, the queues a fresher binding table adds to those it was sent to."""
    return [
        tuple(q for q in route(fresh, item.event.type) if q not in queues)
        for item, queues in zip(batch, routes, strict=True)
    ]


def merged_routes(
    routes: Sequence[tuple[str, ...]], missed: Sequence[tuple[str, ...]]
) -> list[tuple[str, ...]]:
    """Per event, every queue it reached in the first call and the follow-up."""
    return [tuple(sorted({*a, *b})) for a, b in zip(routes, missed, strict=True)]
