"""Redis clients made from the broker settings, with bounded timeouts and no hidden retries.

With a ``sentinel://`` broker the client asks the sentinels for the current primary whenever it
opens a connection, so after a failover the next command (once its broken connection has been
dropped) reaches the new primary; a command that was in flight when the primary died fails.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from wowevent_kombu.core.errors import ConfigurationError
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.core.urls import redact_url, sentinel_hosts, url_scheme


def redis_url(broker_url: str) -> str:
    """Translate Kombu's URL forms to redis-py's (``redis+socket://`` becomes ``unix://``)."""
    parts = urlsplit(broker_url)
    if parts.scheme == "redis+socket":
        return urlunsplit(("unix", parts.netloc, parts.path, parts.query, parts.fragment))
    return broker_url


def make_client(settings: Settings, **options: Any) -> redis.Redis:
    """A Redis client whose every command fails within ``publish_timeout`` instead of hanging.

    redis-py retries failed commands by default; a publish must not, because a retried
    ``EXEC`` could commit twice. Callers that want retries add them knowingly.
    """
    url = redis_url(settings.redis_url)
    scheme = url_scheme(url)
    if scheme == "memory":
        raise ConfigurationError("the memory:// broker has no Redis; use wowevent_kombu.testing")
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.publish_timeout,
        "socket_connect_timeout": settings.publish_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
        "client_name": "wowevent",
    }
    kwargs.update(options)
    if scheme == "sentinel":
        return _sentinel_client(settings, kwargs)
    try:
        client: redis.Redis = redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"bad broker URL {redact_url(url)}: {exc}") from exc
    return client


def _sentinel_client(settings: Settings, kwargs: dict[str, Any]) -> redis.Redis:
    """A client of the primary that Sentinel names, re-resolved on every new connection."""
    first = urlsplit(settings.redis_url.split(";")[0])
    db_text = first.path.strip("/") or "0"
    if not (db_text.isascii() and db_text.isdigit()):
        raise ConfigurationError(
            f"bad database in {redact_url(settings.redis_url)}: {first.path[:50]!r} is not a "
            "number; write sentinel://host:port/<db>"
        )
    db = int(db_text)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": settings.publish_timeout,
        "socket_connect_timeout": settings.publish_timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    if settings.sentinel_username is not None:
        sentinel_kwargs["username"] = settings.sentinel_username
    if settings.sentinel_password is not None:
        sentinel_kwargs["password"] = settings.sentinel_password
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        sentinel_hosts(settings.redis_url), sentinel_kwargs=sentinel_kwargs
    )
    master_kwargs = dict(kwargs)
    # Percent-decoded like redis-py and Kombu do, so a password with '@' or '/' works here too.
    if first.username:
        master_kwargs.setdefault("username", unquote(first.username))
    if first.password:
        master_kwargs.setdefault("password", unquote(first.password))
    client: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
        str(settings.master_name), db=db, **master_kwargs
    )
    return client


def kombu_transport_options(settings: Settings) -> dict[str, Any]:
    """Transport options for a Kombu ``Connection`` of the bus's own (outside a worker)."""
    if settings.amqp:
        return {"confirm_publish": True}
    options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout}
    if url_scheme(settings.broker_url) == "sentinel":
        options["master_name"] = settings.master_name
        sentinel_kwargs = {
            key: value
            for key, value in (
                ("username", settings.sentinel_username),
                ("password", settings.sentinel_password),
            )
            if value is not None
        }
        if sentinel_kwargs:
            options["sentinel_kwargs"] = sentinel_kwargs
    return options


def make_async_client(settings: Settings) -> aioredis.Redis | None:
    """An asyncio client with :func:`make_client`'s timeouts and no retries.

    ``None`` over Sentinel, whose async discovery is not wired up here: callers fall back to
    the blocking client in a thread.
    """
    url = redis_url(settings.redis_url)
    if url_scheme(url) in ("memory", "sentinel"):
        return None
    try:
        client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=settings.publish_timeout,
            socket_connect_timeout=settings.publish_timeout,
            retry=AsyncRetry(NoBackoff(), 0),
            health_check_interval=30,
            client_name="wowevent-async",
        )
    except ValueError as exc:
        raise ConfigurationError(f"bad broker URL {redact_url(url)}: {exc}") from exc
    return client
