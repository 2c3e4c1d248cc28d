"""Bus settings: one frozen value read in one place from arguments, environment and Celery conf."""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from typing import Any

from wowevent_kombu.core.errors import ConfigurationError
from wowevent_kombu.core.names import DEFAULT_EXCHANGE, valid_subscriber_name
from wowevent_kombu.core.urls import (
    credentials_in_userinfo,
    redact_url,
    sentinel_hosts,
    url_scheme,
)

DEFAULT_BROKER_URL = "redis://localhost:6379/0"
ENV_PREFIX = "WOWEVENT_"
REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "unix", "sentinel")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


MAX_PUBLISH_TIMEOUT = 3600.0
"""Longest publish timeout accepted: an hour is far past any sane wait for Redis, and far
below what a socket timeout can hold (1e300 overflows the platform's time_t)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Settings:
    """How one bus talks to Redis and what it accepts.

    Attributes:
        broker_url: Redis URL (``redis://``, ``rediss://``, ``redis+socket://``, ``unix://``),
            Kombu's Sentinel form ``sentinel://host:port;sentinel://host:port`` (the password and
            database of the first part apply to the primary), or a RabbitMQ URL (``amqp://``,
            ``amqps://``, ``pyamqp://``), which needs ``store_url`` too. ``password=`` and
            ``username=`` query parameters are moved into the userinfo (see
            :func:`credentials_in_userinfo`), the one place both redis-py and Kombu read them.
        store_url: The Redis that keeps the event log, the dead letters, the schema registry
            and the binding table. Defaults to ``broker_url`` when that is Redis; required with
            a RabbitMQ broker (any Redis URL form above, Sentinel included).
        exchange: The topic exchange; also the prefix of every queue and key of the bus, so two
            buses with different exchanges share nothing.
        publish_timeout: Seconds a publish may wait for Redis before raising ``PublishError``.
        max_event_bytes: Largest encoded event accepted (default 256 KiB).
        log_maxlen: Approximate number of events the log keeps.
        log_max_age: Seconds the log keeps an event (approximate; default 7 days). The log's
            indexes and the processed-id sets of idempotent subscribers share this retention.
        visibility_timeout: Kombu's redelivery timeout for unacknowledged deliveries (seconds).
        master_name: The Sentinel service name; required with ``sentinel://``, read from
            ``broker_transport_options['master_name']`` like Kombu does.
        sentinel_username: Username for the sentinels themselves (``sentinel_kwargs``).
        sentinel_password: Password for the sentinels themselves (``sentinel_kwargs``).
        wait_replicas: After each publish transaction, ``WAIT`` for this many replicas to
            acknowledge it and raise ``ReplicationError`` when fewer do (0: do not wait).
        wait_timeout_ms: How long that ``WAIT`` may block (milliseconds, below
            ``publish_timeout``).
        metrics_port: The port each instrumented worker serves ``/metrics`` on (0: any free
            port; ``None``: none).
        metrics_addr: The address that port listens on (loopback unless set).
    """

    broker_url: str = DEFAULT_BROKER_URL
    store_url: str | None = None
    exchange: str = DEFAULT_EXCHANGE
    publish_timeout: float = 5.0
    max_event_bytes: int = 256 * 1024
    log_maxlen: int = 1_000_000
    log_max_age: float = 7 * 86400.0
    visibility_timeout: float = 3600.0
    master_name: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    wait_replicas: int = 0
    wait_timeout_ms: int = 1000
    metrics_port: int | None = None
    metrics_addr: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self._check_types()
        if not valid_subscriber_name(self.exchange) or ":" in self.exchange:
            raise ConfigurationError(
                f"exchange name {self.exchange!r} must be letters, digits, '_', '-' or '.'"
            )
        scheme = url_scheme(self.broker_url)
        if scheme not in (*REDIS_SCHEMES, *AMQP_SCHEMES, "memory"):
            raise ConfigurationError(
                f"broker URL scheme {scheme!r} is not supported by this bus "
                f"({redact_url(self.broker_url)}); use redis://, rediss://, redis+socket://, "
                "sentinel:// or amqp://"
            )
        # Frozen, but normalised once here: every client of the bus then reads one form.
        object.__setattr__(self, "broker_url", credentials_in_userinfo(self.broker_url))
        if scheme in AMQP_SCHEMES and not self.store_url:
            raise ConfigurationError(
                f"a RabbitMQ broker ({redact_url(self.broker_url)}) needs a Redis for the event "
                "log, dead letters and schemas: set app.conf.wowevent_store_url = 'redis://...' "
                f"on the Celery app (or the environment variable {ENV_PREFIX}STORE_URL; "
                "--store on the wowevent command)"
            )
        if self.store_url is not None:
            if url_scheme(self.store_url) not in REDIS_SCHEMES:
                raise ConfigurationError(
                    f"store_url {redact_url(self.store_url)} is not a Redis URL: use redis://, "
                    "rediss://, redis+socket:// or sentinel://"
                )
            object.__setattr__(self, "store_url", credentials_in_userinfo(self.store_url))
        if url_scheme(self.redis_url) == "sentinel":
            sentinel_hosts(self.redis_url)
            if not self.master_name:
                raise ConfigurationError(
                    "a sentinel:// broker URL needs the primary's service name: set "
                    "broker_transport_options={'master_name': ...} or WOWEVENT_MASTER_NAME"
                )
        if self.wait_replicas < 0:
            raise ConfigurationError(f"wait_replicas must be >= 0, got {self.wait_replicas!r}")
        if self.wait_replicas and not 0 < self.wait_timeout_ms < self.publish_timeout * 1000:
            raise ConfigurationError(
                f"wait_timeout_ms must be between 1 and publish_timeout ({self.publish_timeout} s)"
                f" in milliseconds, got {self.wait_timeout_ms!r}: WAIT 0 would block forever"
            )
        if not 0 < self.publish_timeout <= MAX_PUBLISH_TIMEOUT:  # NaN fails this too
            raise ConfigurationError(
                f"publish_timeout must be above 0 and at most {MAX_PUBLISH_TIMEOUT:g} seconds "
                f"(a socket timeout), got {self.publish_timeout!r}"
            )
        for name in ("visibility_timeout", "log_max_age"):
            if not 0 < getattr(self, name) < math.inf:  # NaN fails this too
                raise ConfigurationError(
                    f"{name} must be positive and finite, got {getattr(self, name)!r}"
                )
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ConfigurationError(
                f"metrics_port must be a port from 0 to 65535, got {self.metrics_port!r}"
            )
        for name in ("max_event_bytes", "log_maxlen"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)!r}")

    def _check_types(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kind = str(field.type)
            if kind.endswith("| None") and value is None:
                continue
            if kind.startswith("str"):
                wanted, fits = "a string", isinstance(value, str)
            elif kind in ("int", "int | None"):
                wanted = "an integer"
                fits = isinstance(value, int) and not isinstance(value, bool)
            else:
                wanted = "a number"
                fits = isinstance(value, int | float) and not isinstance(value, bool)
            if not fits:
                secret = "password" in field.name
                shown = "***" if secret else repr(value)[:100]
                raise ConfigurationError(
                    f"setting {field.name} must be {wanted}, got {type(value).__name__} {shown}"
                )

    @property
    def amqp(self) -> bool:
        """Whether the broker is RabbitMQ (events routed by a real topic exchange)."""
        return url_scheme(self.broker_url) in AMQP_SCHEMES

    @property
    def redis_url(self) -> str:
        """The Redis URL of the log, dead letters, registry and binding table."""
        return self.store_url or self.broker_url

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        shown["broker_url"] = redact_url(self.broker_url)
        if self.store_url is not None:
            shown["store_url"] = redact_url(self.store_url)
        if self.sentinel_password is not None:
            shown["sentinel_password"] = "***"  # noqa: S105 (the redaction mark)
        fields = ", ".join(f"{name}={value!r}" for name, value in shown.items())
        return f"Settings({fields})"

    @staticmethod
    def resolve_exchange(exchange: str | None, environ: Mapping[str, str] | None = None) -> str:
        """The exchange a bus uses: ``exchange``, else ``WOWEVENT_EXCHANGE``, else the default.

        A bus fixes its exchange when it is made (its queue names derive from it), before the
        rest of its settings are read.
        """
        env = os.environ if environ is None else environ
        return exchange or env.get(ENV_PREFIX + "EXCHANGE") or DEFAULT_EXCHANGE

    @classmethod
    def load(
        cls,
        conf: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Read settings: explicit ``overrides`` first, then ``WOWEVENT_*`` variables, then conf.

        The Redis of the log and dead letters beside a RabbitMQ broker comes from
        ``WOWEVENT_STORE_URL``, else the app's ``wowevent_store_url``. The broker URL is the
        exception: the Celery app's ``broker_url`` wins over the
        environment, because the bus must publish where the app's workers consume. For the same
        reason ``master_name`` and ``sentinel_kwargs`` (``username``, ``password``) in
        ``broker_transport_options`` — where Kombu reads them — win over ``WOWEVENT_MASTER_NAME``
        and ``WOWEVENT_SENTINEL_USERNAME``/``WOWEVENT_SENTINEL_PASSWORD``.

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
        if conf.get("wowevent_store_url") and "store_url" not in values:
            values["store_url"] = str(conf["wowevent_store_url"])
        options = _mapping(conf.get("broker_transport_options"), "broker_transport_options")
        if "visibility_timeout" in options and "visibility_timeout" not in values:
            raw = options["visibility_timeout"]
            try:
                values["visibility_timeout"] = float(raw)
            except (TypeError, ValueError):
                raise ConfigurationError(
                    "broker_transport_options['visibility_timeout'] must be a number of seconds,"
                    f" got {raw!r}"
                ) from None
        if options.get("master_name"):
            values["master_name"] = str(options["master_name"])
        sentinel_kwargs = _mapping(options.get("sentinel_kwargs"), "sentinel_kwargs")
        for key, value in sentinel_kwargs.items():
            if key in ("username", "password") and value is not None:
                values[f"sentinel_{key}"] = str(value)
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


def _mapping(value: object, name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{name} must be a dict, got {type(value).__name__}")
    return value


def _coerce(name: str, raw: str, annotation: object) -> Any:
    kind = str(annotation)
    try:
        if kind == "float":
            return float(raw)
        if kind in ("int", "int | None"):
            return int(raw)
    except ValueError as exc:
        raise ConfigurationError(
            f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {kind}"
        ) from exc
    return raw
