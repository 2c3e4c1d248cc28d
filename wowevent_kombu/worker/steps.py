"""Worker integration: start-up checks and the bootstep that makes a worker consume the bus."""

from __future__ import annotations

import logging
import math
import ssl
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import redis
from celery import Celery, bootsteps

from wowevent_kombu.brokers.amqp import topology as amqptopology
from wowevent_kombu.brokers.amqp.dispatch import register_dispatch_task
from wowevent_kombu.brokers.celery.queues import consume_queues
from wowevent_kombu.brokers.compat import require_supported
from wowevent_kombu.brokers.redis.channel import (
    BELL_QUEUES_OPTION,
    COMPRESSION_OPTION,
    INFLATE_LIMIT_OPTION,
)
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.brokers.redis.inflate import content_type
from wowevent_kombu.brokers.temporary import REAP_INTERVAL, reap
from wowevent_kombu.core.errors import ConfigurationError, WowEventError
from wowevent_kombu.worker.subscriber import Subscriber

if TYPE_CHECKING:
    from wowevent_kombu.worker.busview import BusView

log = logging.getLogger(__name__)

GUARDED_TRANSPORT = "wowevent_kombu.brokers.redis.transport:Transport"
"""What ``broker_transport`` is set to in workers (see :func:`install_guarded_transport`)."""

GUARDED_SENTINEL_TRANSPORT = "wowevent_kombu.brokers.redis.transport:SentinelTransport"
"""The same for ``sentinel://`` brokers."""

_UNSAFE_CONTENT = ("pickle", "yaml", "application/x-python-serialize", "application/x-yaml")


def longest_retry_delay(task: Any) -> float:
    """The longest countdown Celery may hold in worker memory for one retry of ``task``.

    Mirrors Celery's own rules: with ``retry_backoff`` the countdown is capped by
    ``retry_backoff_max``; otherwise ``self.retry()`` uses ``default_retry_delay``.
    """
    if task.max_retries == 0:
        return 0.0
    delay = float(task.default_retry_delay or 0)
    if getattr(task, "retry_backoff", False):
        delay = max(delay, float(getattr(task, "retry_backoff_max", 600) or 0))
    return delay


def check_worker_config(
    app: Celery,
    visibility_timeout: float,
    subscribers: Iterable[Subscriber],
    worker_time_limit: float | None = None,
) -> list[str]:
    """Refuse configurations that lose or duplicate events; return warnings for the doubtful.

    Args:
        app: The worker's Celery app.
        visibility_timeout: The broker's redelivery timeout (seconds).
        subscribers: The subscribers this worker runs.
        worker_time_limit: The worker's own hard limit (``celery worker --time-limit``), which
            applies to every task without a ``time_limit`` of its own; defaults to the app's
            ``task_time_limit``.

    Raises:
        ConfigurationError: pickle or another unsafe serialiser is accepted, or a subscriber's
            retry countdown plus its time limit reaches the visibility timeout (Redis would then
            redeliver a retry that the worker still holds, running it twice).
    """
    conf = app.conf
    accepted = [str(c) for c in (conf.accept_content or [])]
    unsafe = [c for c in accepted if any(u in c for u in _UNSAFE_CONTENT)]
    if unsafe or conf.task_serializer != "json":
        raise ConfigurationError(
            f"the bus carries JSON only, but accept_content={accepted!r} and "
            f"task_serializer={conf.task_serializer!r}; set accept_content=['json'] and "
            "task_serializer='json' (pickle lets any publisher run code in the worker)"
        )
    warnings: list[str] = []
    for sub in subscribers:
        task = sub.task
        time_limit = task.time_limit or worker_time_limit or conf.task_time_limit
        delay = longest_retry_delay(task)
        held = delay + float(time_limit or 0)
        if held >= visibility_timeout:
            raise ConfigurationError(
                f"subscriber {sub.name!r}: a retry may wait {delay:g} s and the handler may run "
                f"{float(time_limit or 0):g} s, which reaches the broker's visibility_timeout of "
                f"{visibility_timeout:g} s: Redis would redeliver the event while the worker still "
                "holds it. Raise broker_transport_options['visibility_timeout'] or lower "
                "retry_backoff_max / default_retry_delay / time_limit"
            )
        if not time_limit and visibility_timeout != math.inf:
            warnings.append(
                f"subscriber {sub.name!r} has no time_limit: a handler running longer than "
                f"{visibility_timeout - delay:g} s would be redelivered while still running"
            )
    return warnings


def install_guarded_transport(app: Celery) -> bool:
    """Make the worker read its queues through :mod:`wowevent_kombu.brokers.redis.channel`.

    Kombu's stock Redis channel stops the worker on a queue entry that is not a JSON envelope;
    the guarded one quarantines it instead. Applied to ``redis://`` and ``rediss://`` brokers
    when ``broker_transport`` is unset, and its Sentinel variant to ``sentinel://`` brokers;
    another transport set on purpose is left alone (with a warning). A ``rediss://`` URL
    without TLS options keeps Kombu's own default (certificates not verified, with the same
    warning Kombu gives); pass ``ssl_cert_reqs=required`` and ``ssl_ca_certs=...`` in the URL
    or set ``broker_use_ssl`` to verify them.

    Returns:
        Whether the guarded transport is used.
    """
    conf = app.conf
    url = str(conf.broker_url or "")
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "sentinel"):
        return False
    stock: tuple[str, ...]
    if scheme == "sentinel":
        guarded, stock = GUARDED_SENTINEL_TRANSPORT, ("sentinel",)
    else:
        guarded, stock = GUARDED_TRANSPORT, ("redis", "rediss")
    if conf.broker_transport not in (None, "", *stock, guarded):
        log.warning(
            "broker_transport=%r is not the guarded Redis transport: a malformed queue entry "
            "can stop this worker", conf.broker_transport,
        )  # fmt: skip
        return False
    tls_options = [k for k in parse_qs(urlsplit(url).query) if k.startswith("ssl_")]
    if scheme == "rediss" and not conf.broker_use_ssl and not tls_options:
        log.warning(
            "rediss:// broker URL without TLS options: the server certificate is not verified; "
            "add ssl_cert_reqs=required&ssl_ca_certs=<ca file> to the URL or set broker_use_ssl"
        )
        conf.broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_NONE}
    conf.broker_transport = guarded
    return True


def enable_bells(app: Celery, queues: Iterable[str]) -> None:
    """Let the guarded transport consume ``queues`` through their bells, atomically.

    Only for queues whose every writer rings the bell (the bus's subscriber queues: its
    publishes, replays, re-drives, and Celery's retries and restores through this transport);
    a push that rings none waits for the worker's next sweep, up to ``brpop_timeout``.
    """
    conf = app.conf
    options = dict(conf.broker_transport_options or {})
    options[BELL_QUEUES_OPTION] = sorted({*options.get(BELL_QUEUES_OPTION, ()), *queues})
    conf.broker_transport_options = options


def inflate_limit(max_event_bytes: int) -> int:
    """Most bytes a subscriber message's compressed body may inflate to.

    A body holds one event of at most ``max_event_bytes`` as JSON; Celery's retries re-encode
    it, and ASCII-only JSON can write a character as six (``\\uXXXX``), plus the headers.
    """
    return 6 * max_event_bytes + 64 * 1024


def limit_compression(app: Celery, max_event_bytes: int) -> None:
    """Let the subscriber queues take only the compression the app itself sends, bounded.

    The bus never compresses what it publishes; Celery compresses a retry when the app sets
    ``task_compression``. Anything else compressed in a subscriber queue is refused before it
    is decompressed, and an accepted body inflates to :func:`inflate_limit` at most.
    """
    conf = app.conf
    enabled = content_type(str(conf.task_compression)) if conf.task_compression else None
    options = dict(conf.broker_transport_options or {})
    options[COMPRESSION_OPTION] = [enabled] if enabled else []
    options[INFLATE_LIMIT_OPTION] = inflate_limit(max_event_bytes)
    conf.broker_transport_options = options


def make_bootstep(bus: BusView) -> type[bootsteps.StartStopStep]:
    """A worker bootstep class bound to ``bus`` (one per bus, so no global registry is needed)."""

    class WowEventStep(bootsteps.StartStopStep):  # type: ignore[misc]
        """Checks the configuration and adds the subscriber queues (no I/O: Redis may be down)."""

        name = f"wowevent_kombu.worker.steps.WowEventStep[{bus.exchange}]"

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            settings = bus.settings
            # Before any private Celery/Kombu member is touched: no half-working worker.
            require_supported(amqp=settings.amqp)
            # RabbitMQ redelivers only when a consumer's connection closes: no timeout applies.
            visibility = math.inf if settings.amqp else settings.visibility_timeout
            for warning in check_worker_config(
                worker.app,
                visibility,
                bus.subscribers.values(),
                getattr(worker, "time_limit", None),
            ):
                log.warning(warning)
            if getattr(bus, "metrics", None) is None:
                log.info(
                    "bus %r is not instrumented: this worker writes no heartbeat, so `wowevent "
                    "status` will not count it as live; call wowevent_kombu.instrument(bus) "
                    "where the bus is created",
                    bus.exchange,
                )
            attach_queues(worker.app, bus)
            if settings.amqp:
                register_dispatch_task(worker.app, bus.exchange, bus.queues_to_subscribers)
            elif install_guarded_transport(worker.app):
                enable_bells(worker.app, [sub.queue for sub in bus.subscribers.values()])
                limit_compression(worker.app, settings.max_event_bytes)

    return WowEventStep


def make_binding_step(bus: BusView) -> type[bootsteps.StartStopStep]:
    """A consumer bootstep that binds the subscribers each time the worker (re)connects.

    Running after the broker connection is up lets a worker start while Redis is still down,
    and re-binding on every reconnect restores a binding table lost with a Redis that keeps
    nothing on disk.
    """

    class WowEventBindings(bootsteps.StartStopStep):  # type: ignore[misc]
        """Declares the bus's bindings once the consumer is connected."""

        name = f"wowevent_kombu.worker.steps.WowEventBindings[{bus.exchange}]"
        requires = ("celery.worker.consumer.connection:Connection",)

        def __init__(self, consumer: Any, **kwargs: Any) -> None:
            super().__init__(consumer, **kwargs)
            self._tick: Any = None
            self._reaper: TemporaryReaper | None = None

        def start(self, consumer: Any) -> None:
            try:
                declared = bus.declare()
            except (WowEventError, redis.RedisError) as exc:
                # Kombu binds the consumed queues itself as it starts consuming; publishers
                # see those bindings too, so this only delays the version bump.
                log.warning("could not declare the bus's bindings yet: %s", exc)
            else:
                # Celery's banner shows one routing key per queue; this names every pattern.
                for name, patterns in sorted(declared.items()):
                    log.info("subscriber %s bound to %s", name, ", ".join(patterns))
            hub = getattr(consumer, "hub", None)
            if self._reaper is None:
                self._reaper = TemporaryReaper(bus)
                self._reaper()
                if hub is not None:
                    hub.call_repeatedly(REAP_INTERVAL, self._reaper)
            if self._tick is None and hub is not None and bus.settings.amqp:
                # On RabbitMQ nothing wakes an idle event loop (on Redis the consumer's wait
                # returns every second), so a warm shutdown would sit in the loop's poll until
                # Celery's next timer, ~10 s: a one-second tick bounds it.
                self._tick = hub.call_repeatedly(1.0, _idle_tick)

    return WowEventBindings


class TemporaryReaper:
    """Removes temporary queues whose consumer was killed (:mod:`wowevent_kombu.brokers.temporary`).

    Run by every worker at start and every :data:`REAP_INTERVAL` on its event loop; a failure
    is logged and retried at the next interval.
    """

    def __init__(self, bus: BusView) -> None:
        self._bus = bus
        self._client: redis.Redis | None = None

    def __call__(self) -> None:
        try:
            if self._client is None:
                self._client = make_client(self._bus.settings)
            reap(self._bus.transport, self._client, self._bus.exchange)
        except (WowEventError, redis.RedisError) as exc:
            log.debug("could not look for abandoned temporary queues: %s", exc)


def _idle_tick() -> None:
    """Nothing: the timer only makes the worker's event loop look at its state every second."""


def attach_queues(app: Celery, bus: BusView) -> None:
    """Make the worker consume every subscriber queue it was not told to leave out.

    With ``-Q`` the worker consumes only the named queues, so a subscriber queue is consumed
    only when named there; without ``-Q`` every subscriber queue is consumed.
    """
    amqp = bus.settings.amqp
    consume_queues(
        app,
        [
            amqptopology.subscriber_queue(bus.exchange, sub.queue, sub.patterns)
            if amqp
            else sub.kombu_queue(bus.kombu_exchange)
            for sub in bus.subscribers.values()
        ],
    )
