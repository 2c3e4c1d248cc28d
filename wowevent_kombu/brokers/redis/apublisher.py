"""Publishing from asyncio: the same atomic script call per publish, round trips pipelined.

:class:`AsyncRedisTransport` is :class:`~wowevent_kombu.brokers.redis.publisher.RedisTransport`
for an event loop: each ``publish`` (or ``publish_many`` batch) is still one run of the publish
script, so the log append and every subscriber copy commit together or not at all. What
changes is how calls reach Redis: publishes awaited by many tasks at once are collected by one
sender task and written as one pipeline, so 100 publishes in flight cost about one round trip,
not 100, and no connection is held per task. Nothing here blocks the loop: the binding table is
read with the async client, and the snapshot logic (a cached table, checked against the
script's own read of its version) is the blocking transport's.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import hiredis
import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from wowevent_kombu.brokers.outgoing import Outgoing, unroutable_error
from wowevent_kombu.brokers.redis.errors import redis_error
from wowevent_kombu.brokers.redis.logscript import LogAppender, LogWriter
from wowevent_kombu.brokers.redis.publisher import (
    merged_routes,
    missed_routes,
    route,
    script_call,
)
from wowevent_kombu.brokers.redis.publishscript import PUBLISH, PublishCall, stamp
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.errors import PublishError, ReplicationError
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.core.topology import Binding, BindingSnapshot
from wowevent_kombu.core.urls import redact_url

__all__ = ["MAX_PIPELINE", "AsyncRedisTransport"]

log = logging.getLogger(__name__)

MAX_PIPELINE = 512
"""Publish calls written in one pipeline at most; more wait for the next round trip."""

Call = tuple[list[str], list[Any], "asyncio.Future[Any]"]


class AsyncRedisTransport:
    """Publishes for one event loop over a ``redis.asyncio`` client (see the module docstring).

    Args:
        client: An async Redis client on the bus's Redis (closed by :meth:`aclose`).
        settings: The bus settings.
    """

    def __init__(self, client: aioredis.Redis, settings: Settings) -> None:
        self._client = client
        self._settings = settings
        self._call = PublishCall(settings.exchange)
        self.log_appender: LogAppender = LogWriter(settings)
        self._sender = wire.origin()
        self._snapshot: BindingSnapshot | None = None
        self._refresh: asyncio.Lock | None = None
        self._pending: list[Call] = []
        self._writing = False
        self._writer: asyncio.Task[None] | None = None
        self._conn: Any = None
        self._inflight: asyncio.Future[None] | None = None
        self._wait_ms = settings.wait_timeout_ms
        self._closed = False

    # -- the binding table ------------------------------------------------------------------

    async def snapshot(self, *, refresh: bool = False) -> BindingSnapshot:
        """The binding table, cached until a publish finds it stale (or ``refresh``)."""
        current = self._snapshot
        if current is not None and not refresh:
            return current
        if self._refresh is None:
            self._refresh = asyncio.Lock()
        async with self._refresh:
            if self._snapshot is not None and self._snapshot is not current and not refresh:
                return self._snapshot  # another task refreshed it meanwhile
            pipe = self._client.pipeline(transaction=True)
            pipe.get(names.binding_version_key(self._settings.exchange))
            pipe.scard(names.binding_table_key(self._settings.exchange))
            pipe.smembers(names.binding_table_key(self._settings.exchange))
            version, size, members = await pipe.execute()
            bindings = []
            for raw in members:
                text = raw.decode() if isinstance(raw, bytes) else str(raw)
                parsed = names.split_binding_member(text)
                if parsed is not None:
                    bindings.append(Binding(*parsed))
            self._snapshot = BindingSnapshot.build(int(version or 0), int(size), bindings)
            return self._snapshot

    # -- publishing -------------------------------------------------------------------------

    async def send(self, batch: Sequence[Outgoing], *, mandatory: bool) -> list[tuple[str, ...]]:
        """Log and deliver ``batch`` in one script call; the queues each event reached."""
        if not batch:
            return []
        ids = tuple(item.event.id for item in batch)
        first_type = batch[0].event.type
        try:
            snap = await self.snapshot()
            routes = [route(snap, item.event.type) for item in batch]
            if mandatory and not all(routes):
                snap = await self.snapshot(refresh=True)
                routes = [route(snap, item.event.type) for item in batch]
                for item, queues in zip(batch, routes, strict=True):
                    if not queues:
                        raise unroutable_error(self._settings.exchange, batch, item.event.type)
        except redis.RedisError as exc:
            raise self._error(exc, "reading the binding table", ids, first_type) from exc
        if await self._commit(batch, routes, ids, with_log=True) != snap.stamp:
            routes = await self._deliver_missed(batch, routes, ids)
        return routes

    async def _commit(
        self,
        batch: Sequence[Outgoing],
        routes: Sequence[tuple[str, ...]],
        ids: tuple[str, ...],
        *,
        with_log: bool,
    ) -> tuple[int, int]:
        keys, args = script_call(
            self._call, self.log_appender, self._sender, batch, routes, with_log=with_log
        )
        try:
            reply, acknowledged = await self._submit(keys, args)
        except redis.RedisError as exc:
            raise self._error(exc, "publishing", ids, batch[0].event.type) from exc
        replicas = self._settings.wait_replicas
        if replicas and acknowledged < replicas:
            raise ReplicationError(
                f"published on the primary but only {acknowledged} of {replicas} replica(s) "
                f"acknowledged it within {self._settings.wait_timeout_ms} ms: a failover now "
                "could lose it; re-publish the same event (same id) once replicas are back",
                event_ids=ids,
                event_type=batch[0].event.type,
                outcome_unknown=True,
                acknowledged=acknowledged,
            )
        return stamp(reply)

    async def _deliver_missed(
        self, batch: Sequence[Outgoing], routes: list[tuple[str, ...]], ids: tuple[str, ...]
    ) -> list[tuple[str, ...]]:
        try:
            fresh = await self.snapshot(refresh=True)
        except redis.RedisError:
            log.warning("could not re-read the binding table after publishing %s", ids[:3])
            return routes
        missed = missed_routes(fresh, batch, routes)
        if any(missed):
            await self._commit(batch, missed, ids, with_log=False)
        return merged_routes(routes, missed)

    # -- the pipelined writer ---------------------------------------------------------------

    async def _submit(self, keys: list[str], args: list[Any]) -> tuple[Any, int]:
        """Queue one script call; its reply and the replicas that took it.

        The first caller that finds no write in progress writes: its own call and every call
        queued meanwhile, a pipeline at a time, until none is left. The others only wait, so
        a lone publisher pays one round trip and no task switch, and 100 concurrent ones share
        a few round trips. A pipeline of several calls is shielded: a writer cancelled
        mid-write does not cut it short for the others, and a task takes over the queue.
        """
        if self._closed:
            raise PublishError("the async publisher is closed", event_ids=())
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((keys, args, future))
        if not self._writing:
            self._writing = True
            handed_over = False
            try:
                await self._drain()
            except asyncio.CancelledError:
                handed_over = True  # the queue (and a shielded write) outlive this caller
                self._writer = loop.create_task(self._adopt(), name="wowevent-apublish")
                raise
            finally:
                if not handed_over:
                    self._writing = False
        result: tuple[Any, int] = await future
        return result

    async def _drain(self) -> None:
        while self._pending:
            calls, self._pending = self._pending[:MAX_PIPELINE], self._pending[MAX_PIPELINE:]
            if len(calls) == 1:
                await self._write(calls)
            else:
                self._inflight = asyncio.ensure_future(self._write(calls))
                await asyncio.shield(self._inflight)

    async def _adopt(self) -> None:
        try:
            if self._inflight is not None and not self._inflight.done():
                await asyncio.wait([self._inflight])
            await self._drain()
        finally:
            self._writing = False

    async def _write(self, calls: list[Call]) -> None:
        """One pipeline of script calls (and ``WAIT``); each caller gets its own reply."""
        replicas = self._settings.wait_replicas
        try:
            replies = await self._pipeline(calls, "EVALSHA", PUBLISH.sha, replicas)
            missing = [i for i, r in enumerate(replies[: len(calls)]) if _no_script(r)]
            if missing:
                again = await self._pipeline(
                    [calls[i] for i in missing], "EVAL", PUBLISH.text, replicas
                )
                for i, reply in zip(missing, again, strict=False):
                    replies[i] = reply
                if replicas:
                    replies[-1] = again[-1]
        except Exception as exc:  # the connection failed: every caller hears of it
            for _, _, future in calls:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (a lone, unshielded call): its caller is gone
            for _, _, future in calls:
                future.cancel()
            raise
        acknowledged = int(replies[-1]) if replicas else 0
        for (_, _, future), reply in zip(calls, replies, strict=False):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result((reply, acknowledged))

    async def _pipeline(
        self, calls: list[Call], verb: str, script: str, replicas: int
    ) -> list[Any]:
        """Write every call (and ``WAIT``) on the pinned connection at once; read each reply.

        Packed with hiredis, as the blocking transport does: redis-py's own packing of a
        25-argument script call costs more CPU than the rest of a publish.
        """
        commands = [hiredis.pack_command((verb, script, len(k), *k, *a)) for k, a, _ in calls]
        if replicas:
            wait: Any = ("WAIT", replicas, self._wait_ms)
            commands.append(hiredis.pack_command(wait))
        conn = await self._acquire()
        replies: list[Any] = []
        try:
            await conn.send_packed_command(b"".join(commands), check_health=False)
            for _ in commands:  # every reply is read, so the connection stays in step
                try:
                    replies.append(await conn.read_response())
                except redis.ResponseError as exc:
                    replies.append(exc)
        except BaseException:
            await self._drop()
            raise
        return replies

    async def _acquire(self) -> Any:
        if self._conn is None:
            pool: Any = self._client.connection_pool
            try:
                self._conn = await pool.get_connection()
            except TypeError:  # redis-py before 6 requires the (unused) command name
                self._conn = await pool.get_connection("EVALSHA")
        return self._conn

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.disconnect()
            await self._client.connection_pool.release(conn)

    def _error(
        self, exc: redis.RedisError, doing: str, ids: tuple[str, ...], event_type: str | None
    ) -> PublishError:
        return redis_error(exc, doing, redact_url(self._settings.redis_url), ids, event_type)

    async def aclose(self) -> None:
        """Let queued publishes finish (up to 5 s), then close the client's connections."""
        self._closed = True
        for _ in range(5000):
            if not self._pending and not self._writing:
                break
            await asyncio.sleep(0.001)
        if self._conn is not None:
            await self._client.connection_pool.release(self._conn)
            self._conn = None
        await self._client.aclose()


def _no_script(reply: Any) -> bool:
    return isinstance(reply, NoScriptError) or (
        isinstance(reply, redis.ResponseError) and str(reply).startswith("NOSCRIPT")
    )
