"""Bus settings: one frozen value read in one place from arguments, environment and Celery conf."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigurationError
from .names import DEFAULT_EXCHANGE, valid_subscriber_name

DEFAULT_BROKER_URL = "redis://localhost:6379/0"
ENV_PREFIX = "WOWEVENT_"


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, repr, status and CLI output)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """How one bus talks to Redis and what it accepts.

    Attributes:
        broker_url: Redis URL (``redis://``, ``rediss://``, ``redis+socket://``, ``unix://``).
        exchange: The topic exchange; also the prefix of every queue and key of the bus, so two
            buses with different exchanges share nothing.
        publish_timeout: Seconds a publish may wait for Redis before raising ``PublishError``.
        max_event_bytes: Largest encoded event accepted (default 256 KiB).
        log_maxlen: Approximate number of events the log keeps.
        log_max_age: Seconds the log keeps an event (approximate; default 7 days). The log's
            indexes and the processed-id sets of idempotent subscribers share this retention.
        visibility_timeout: Kombu's redelivery timeout for unacknowledged deliveries (seconds).
    """

    broker_url: str = DEFAULT_BROKER_URL
    exchange: str = DEFAULT_EXCHANGE
    publish_timeout: float = 5.0
    max_event_bytes: int = 256 * 1024
    log_maxlen: int = 1_000_000
    log_max_age: float = 7 * 86400.0
    visibility_timeout: float = 3600.0

    def __post_init__(self) -> None:
        if not valid_subscriber_name(self.exchange) or ":" in self.exchange:
            raise ConfigurationError(
                f"exchange name {self.exchange!r} must be letters, digits, '_', '-' or '.'"
            )
        scheme = urlsplit(self.broker_url).scheme
        if scheme not in ("redis", "rediss", "redis+socket", "unix", "memory"):
            raise ConfigurationError(
                f"broker URL scheme {scheme!r} is not supported by this bus "
                f"({redact_url(self.broker_url)}); use redis://, rediss:// or redis+socket://"
            )
        for name in ("publish_timeout", "visibility_timeout", "log_max_age"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_event_bytes", "log_maxlen"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)!r}")

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["broker_url"] = redact_url(self.broker_url)
        fields = ", ".join(f"{name}={value!r}" for name, value in shown.items())
        return f"Settings({fields})"

    @classmethod
    def load(
        cls,
        conf: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read settings: explicit ``overrides`` first, then ``WOWEVENT_*`` variables, then conf.

        The broker URL is the exception: the Celery app's ``broker_url`` wins over the
        environment, because the bus must publish where the app's workers consume.

        Args:
            conf: The Celery app's configuration (``app.conf``), if any.
            environ: Environment variables (defaults to ``os.environ``).
            overrides: Explicit values; ``None`` values are ignored.
        """
        env = os.environ if environ is None else environ
        conf = conf or {}
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            key = ENV_PREFIX + field.name.upper()
            if key in env:
                values[field.name] = _coerce(field.name, env[key], field.type)
        if conf.get("broker_url"):
            values["broker_url"] = str(conf["broker_url"])
        options = conf.get("broker_transport_options") or {}
        if "visibility_timeout" in options and "visibility_timeout" not in values:
            values["visibility_timeout"] = float(options["visibility_timeout"])
        if options.get("global_keyprefix"):
            raise ConfigurationError(
                "broker_transport_options['global_keyprefix'] is not supported: the bus writes "
                "queue keys directly; isolate buses with distinct exchange names instead"
            )
        values.update({key: value for key, value in overrides.items() if value is not None})
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigurationError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**values)


def _coerce(name: str, raw: str, annotation: object) -> Any:
    kind = str(annotation)
    try:
        if kind == "float":
            return float(raw)
        if kind == "int":
            return int(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}"
        ) from exc
    return raw
