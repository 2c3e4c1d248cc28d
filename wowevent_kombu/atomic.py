"""MULTI/EXEC in one round trip with none of redis-py's per-command pipeline bookkeeping.

The publish path sends a handful of commands per event; redis-py's generic pipeline spends more
CPU on callbacks and annotations than Redis spends executing them. This sends the packed
transaction on one pooled connection and reads every reply, so the connection is never left
with unread replies, whatever fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hiredis
import redis

Command = tuple[Any, ...]
_MULTI = hiredis.pack_command(("MULTI",))
_EXEC = hiredis.pack_command(("EXEC",))


def execute_atomic(
    client: redis.Redis, commands: Sequence[Command], *, then: Sequence[Command] = ()
) -> list[Any]:
    """Run ``commands`` in one MULTI/EXEC and return their replies (raw, undecoded).

    ``then`` commands are sent right after ``EXEC`` on the same connection (``WAIT`` must be,
    to count the replicas that received this transaction); their replies follow EXEC's.

    Raises:
        redis.ResponseError: a command was refused when queued (Redis then aborted the whole
            transaction: nothing was written) or failed inside EXEC.
        redis.ConnectionError, redis.TimeoutError: the connection failed; it is discarded.
    """
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        packed = b"".join(
            [_MULTI, *map(hiredis.pack_command, commands), _EXEC, *map(hiredis.pack_command, then)]
        )
        conn.send_packed_command([packed])  # type: ignore[no-untyped-call]
        queued_errors: list[redis.ResponseError] = []
        for _ in range(len(commands) + 1):
            try:
                conn.read_response()
            except redis.ResponseError as exc:
                queued_errors.append(exc)
        try:
            replies = conn.read_response()
        except redis.ResponseError as exc:
            replies = exc
        after: list[Any] = []
        for _ in then:
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
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        conn.disconnect()  # type: ignore[no-untyped-call]
        raise
    finally:
        pool.release(conn)
