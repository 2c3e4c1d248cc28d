"""What a Redis failure means for a write: the ``PublishError`` saying whether anything landed."""

from __future__ import annotations

import redis
from redis.sentinel import MasterNotFoundError

from wowevent_kombu.core.errors import PublishError

MAY_HAVE_COMMITTED = "Redis may have committed it: re-publish the same event (same id) to be sure"
"""The hint of a write whose command was sent before the connection broke or timed out."""


def nothing_written(exc: BaseException | None) -> str | None:
    """What to do when ``exc`` shows Redis wrote nothing; ``None`` when that is not certain.

    Redis refusing the client (credentials, permissions, still loading its data) or a
    connection that never opened means no command ran.
    """
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.AuthorizationError):
        return "nothing was written: Redis refused the credentials; check the URL's user/password"
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return "nothing was written: the Redis user lacks a permission (see ACL LOG)"
    if isinstance(exc, redis.BusyLoadingError):
        return "nothing was written: Redis is still loading its data; try again once it answers"
    if isinstance(exc, MasterNotFoundError):  # the sentinels named no primary: nothing sent
        return "nothing was written: no Redis primary was found; try again once one answers"
    if isinstance(exc, ConnectionRefusedError) or (
        isinstance(exc, redis.ConnectionError) and "connecting" in str(exc)
    ):
        return "nothing was written: the connection was refused; try again once Redis answers"
    return None


def redis_error(
    exc: redis.RedisError,
    doing: str,
    where: str,
    ids: tuple[str, ...],
    event_type: str | None = None,
) -> PublishError:
    """The ``PublishError`` for a Redis failure while ``doing`` something for events ``ids``.

    Only a write whose command was sent before the connection broke or timed out may have
    been applied; a read, or a refusal before anything ran, says that nothing was written.
    """
    text = str(exc)
    refused = nothing_written(exc)
    writing = not doing.startswith(("reading", "checking"))
    sent = refused is None and isinstance(exc, redis.TimeoutError | redis.ConnectionError)
    unknown = sent and writing
    if unknown:
        hint = MAY_HAVE_COMMITTED
    else:
        hint = refused or "nothing was written; publish again once Redis answers"
    return PublishError(
        f"{doing} failed against {where}: {type(exc).__name__}: {text}; {hint}",
        event_ids=ids,
        event_type=event_type,
        outcome_unknown=unknown and doing == "publishing",
    )
