"""Atomic Redis steps in one round trip: MULTI/EXEC and server-side scripts.

The publish path is one script call per publish; redis-py's generic pipeline and script
helpers spend more CPU on callbacks and annotations than Redis spends executing them. This sends
the packed commands on one pooled connection and reads every reply, so the connection is never
left with unread replies, whatever fails.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import hiredis
import redis
from redis.exceptions import NoScriptError

from wowevent_kombu.brokers.compat import pool_connection

Command = tuple[Any, ...]
_MULTI = hiredis.pack_command(("MULTI",))
_EXEC = hiredis.pack_command(("EXEC",))


class LuaScript(NamedTuple):
    """A script's text and the SHA-1 ``EVALSHA`` names it by."""

    text: str
    sha: str

    @classmethod
    def of(cls, text: str) -> LuaScript:
        """The script ``text`` with its digest."""
        return cls(text, hashlib.sha1(text.encode()).hexdigest())  # noqa: S324 - Redis's naming


def run_script(
    send: Callable[..., Any], script: LuaScript, keys: Sequence[str], args: Sequence[Any]
) -> Any:
    """Run ``script`` by its hash through ``send(*command)``; its reply.

    A server that does not know the script yet answers ``NOSCRIPT`` having run nothing, and
    the call is repeated once with ``EVAL``, which also caches the script for the next calls.
    """
    try:
        return send("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return send("EVAL", script.text, len(keys), *keys, *args)


def execute_atomic(
    client: redis.Redis, commands: Sequence[Command], *, then: Sequence[Command] = ()
) -> list[Any]:
    """Run ``commands`` in one MULTI/EXEC on a connection borrowed from the pool.

    Returns the replies, raw and undecoded. ``then`` commands are sent right after ``EXEC`` on
    the same connection (``WAIT`` must be, to count the replicas that received this
    transaction); their replies follow EXEC's.

    Raises:
        redis.ResponseError: a command was refused when queued (Redis then aborted the whole
            transaction: nothing was written) or failed inside EXEC.
        redis.ConnectionError, redis.TimeoutError: the connection failed; it is discarded.
    """
    pool = client.connection_pool
    conn = pool_connection(pool)
    try:
        return _transact(conn, commands, then)
    except redis.ResponseError:
        raise
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


class PinnedTransactions:
    """Runs transactions on one connection kept per thread (and per process after a fork).

    Borrowing a connection from redis-py's pool and returning it costs about as much CPU as
    packing a whole publish; a publisher sending transaction after transaction keeps its own.
    A connection that fails, or is interrupted with replies unread, is dropped and replaced.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._local = threading.local()

    def execute(self, commands: Sequence[Command], *, then: Sequence[Command] = ()) -> list[Any]:
        """Like :func:`execute_atomic`, on this thread's pinned connection."""
        conn = self._acquire()
        try:
            return _transact(conn, commands, then)
        except redis.ResponseError:
            raise  # every reply was read: the connection is still in step
        except BaseException:
            self._drop()
            raise

    def run_script(
        self,
        script: LuaScript,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        then: Sequence[Command] = (),
    ) -> list[Any]:
        """Run ``script`` by its hash on this thread's pinned connection, then ``then``.

        Returns the script's reply followed by those of ``then``, raw and undecoded. A server
        that does not know the script yet (first use, restart, failover, ``SCRIPT FLUSH``)
        answers ``NOSCRIPT`` having run nothing, and the call is repeated once with ``EVAL``,
        which also caches the script for the next calls.

        Raises:
            redis.ResponseError: the script failed (or a ``then`` command did), every reply
                read; the connection stays in use.
            redis.ConnectionError, redis.TimeoutError: the connection failed; it is discarded.
        """
        conn = self._acquire()
        try:
            replies = _call(conn, ("EVALSHA", script.sha), keys, args, then)
            if isinstance(replies[0], NoScriptError):
                replies = _call(conn, ("EVAL", script.text), keys, args, then)
        except BaseException:
            self._drop()
            raise
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    def _acquire(self) -> Any:
        pid = os.getpid()
        if getattr(self._local, "pid", None) == pid and self._local.conn is not None:
            return self._local.conn
        self._local.conn, self._local.pid = pool_connection(self._pool), pid
        return self._local.conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.disconnect()
            self._pool.release(conn)
        self._local.conn = None

    def release(self) -> None:
        """Return this thread's connection to the pool (others go back when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            self._pool.release(conn)
        self._local.conn = None


def _transact(conn: Any, commands: Sequence[Command], then: Sequence[Command] = ()) -> list[Any]:
    packed = b"".join(
        [_MULTI, *map(hiredis.pack_command, commands), _EXEC, *map(hiredis.pack_command, then)]
    )
    conn.send_packed_command([packed])
    queued_errors: list[redis.ResponseError] = []
    for _ in range(len(commands) + 1):
        try:
            conn.read_response()
        except redis.ResponseError as exc:
            queued_errors.append(exc)
    replies: Any
    try:
        replies = conn.read_response()
    except redis.ResponseError as exc:
        replies = exc
    after: list[Any] = []
    for _ in then:  # read every reply before raising, so the connection stays in step
        try:
            after.append(conn.read_response())
        except redis.ResponseError as exc:
            after.append(exc)
    if isinstance(replies, redis.ResponseError):
        raise (queued_errors[0] if queued_errors else replies) from None
    if queued_errors:
        raise queued_errors[0]
    if not isinstance(replies, list):
        raise redis.ResponseError(f"unexpected EXEC reply {replies!r}")
    for reply in [*replies, *after]:
        if isinstance(reply, Exception):
            raise reply
    return [*replies, *after]


def _call(
    conn: Any,
    head: tuple[str, str],
    keys: Sequence[str],
    args: Sequence[Any],
    then: Sequence[Command],
) -> list[Any]:
    """Send one script call and ``then``; every reply, an error reply as its exception."""
    call = hiredis.pack_command((*head, len(keys), *keys, *args))
    conn.send_packed_command([b"".join([call, *map(hiredis.pack_command, then)])])
    replies: list[Any] = []
    for _ in range(1 + len(then)):  # read every reply before raising: the connection stays in step
        try:
            replies.append(conn.read_response())
        except redis.ResponseError as exc:
            replies.append(exc)
    return replies
