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
REDIS_SCHEMES = ("redis", "rediss", "redis+socket", "unix", "sentinel")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for logs, repr, status and CLI output).

    Kombu's multi-host form (``sentinel://a:26379;sentinel://b:26379``) is redacted part by part.
    """
    if ";" in url:
        return ";".join(redact_url(part) for part in url.split(";"))
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
        broker_url: Redis URL (``redis://``, ``rediss://``, ``redis+socket://``, ``unix://``),
            Kombu's Sentinel form ``sentinel://host:port;sentinel://host:port`` (the password and
            database of the first part apply to the primary), or a RabbitMQ URL (``amqp://``,
            ``amqps://``, ``pyamqp://``), which needs ``store_url`` too.
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

    def __post_init__(self) -> None:
        if not valid_subscriber_name(self.exchange) or ":" in self.exchange:
            raise ConfigurationError(
                f"exchange name {self.exchange!r} must be letters, digits, '_', '-' or '.'"
            )
        scheme = urlsplit(self.broker_url).scheme
        if scheme not in (*REDIS_SCHEMES, *AMQP_SCHEMES, "memory"):
            raise ConfigurationError(
                f"broker URL scheme {scheme!r} is not supported by this bus "
                f"({redact_url(self.broker_url)}); use redis://, rediss://, redis+socket://, "
                "sentinel:// or amqp://"
            )
        if scheme in AMQP_SCHEMES and not self.store_url:
            raise ConfigurationError(
                f"a RabbitMQ broker ({redact_url(self.broker_url)}) needs a Redis for the event "
                "log, dead letters and schemas: set store_url='redis://...' "
                f"(or {ENV_PREFIX}STORE_URL)"
            )
        if self.store_url is not None:
            store_scheme = urlsplit(self.store_url).scheme
            if store_scheme not in REDIS_SCHEMES:
                raise ConfigurationError(
                    f"store_url {redact_url(self.store_url)} is not a Redis URL: use redis://, "
                    "rediss://, redis+socket:// or sentinel://"
                )
        if urlsplit(self.redis_url).scheme == "sentinel":
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
        for name in ("publish_timeout", "visibility_timeout", "log_max_age"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, got {getattr(self, name)!r}")
        for name in ("max_event_bytes", "log_maxlen"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be at least 1, got {getattr(self, name)!r}")

    @property
    def amqp(self) -> bool:
        """Whether the broker is RabbitMQ (events routed by a real topic exchange)."""
        return urlsplit(self.broker_url).scheme in AMQP_SCHEMES

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
        options = conf.get("broker_transport_options") or {}
        if "visibility_timeout" in options and "visibility_timeout" not in values:
            values["visibility_timeout"] = float(options["visibility_timeout"])
        if options.get("master_name"):
            values["master_name"] = str(options["master_name"])
        for key, value in (options.get("sentinel_kwargs") or {}).items():
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


def sentinel_hosts(broker_url: str) -> list[tuple[str, int]]:
    """``(host, port)`` of each sentinel in Kombu's ``sentinel://a:26379;sentinel://b`` form.

    Raises:
        ConfigurationError: a part is not ``sentinel://host[:port]``.
    """
    hosts = []
    for part in broker_url.split(";"):
        try:
            parts = urlsplit(part.strip())
            port = parts.port or 26379
        except ValueError as exc:
            raise ConfigurationError(f"bad sentinel URL {redact_url(part)}: {exc}") from exc
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ConfigurationError(
                f"bad sentinel URL {redact_url(part)!r} in {redact_url(broker_url)}: every "
                "';'-separated part must be sentinel://host[:port]"
            )
        hosts.append((parts.hostname, port))
    return hosts
