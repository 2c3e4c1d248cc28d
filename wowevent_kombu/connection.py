"""Redis clients made from the broker URL, with bounded timeouts and no hidden retries."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from .errors import ConfigurationError
from .settings import Settings, redact_url


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
    url = redis_url(settings.broker_url)
    if urlsplit(url).scheme == "memory":
        raise ConfigurationError("the memory:// broker has no Redis; use wowevent_kombu.testing")
    kwargs: dict[str, Any] = {
        "socket_timeout": settings.publish_timeout,
        "socket_connect_timeout": settings.publish_timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 30,
        "client_name": "wowevent",
    }
    kwargs.update(options)
    try:
        client: redis.Redis = redis.Redis.from_url(url, **kwargs)
    except ValueError as exc:
        raise ConfigurationError(f"bad broker URL {redact_url(url)}: {exc}") from exc
    return client
