"""Turning observability on for a bus: metrics, the recent window, worker heartbeat and port.

:func:`instrument` is the one call an app makes. In a worker it adds a bootstep that

- writes a heartbeat (which queues this worker consumes, until when it counts as alive) to
  Redis, which the health rules use to tell whether anything consumes a subscriber's queue;
- serves the worker's own metrics on the settings' ``metrics_port`` (``WOWEVENT_METRICS_PORT``,
  bound to ``metrics_addr``, default ``127.0.0.1``) when that is set.

Prefork: Celery's pool children count in their own processes. Start the worker with
``PROMETHEUS_MULTIPROC_DIR`` pointing at an empty directory of its own (prometheus-client's own
variable, read here only to follow what it does: it reads it when first imported, so set it in
the worker's environment, not in code); the
bootstep empties it at start and serves the sum over every child, dead ones included, so
nothing is double-counted or lost. Without it, a prefork worker's port shows only what the
main process counted, and the bootstep says so in the log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import bootsteps
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.core import names
from wowevent_kombu.observability.health import HealthRules
from wowevent_kombu.observability.metrics import BusMetrics, MetricsMiddleware
from wowevent_kombu.observability.window import WindowRecorder

if TYPE_CHECKING:
    from wowevent_kombu.bus import EventBus

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def instrument(
    bus: EventBus,
    registry: CollectorRegistry | None = None,
    *,
    rules: HealthRules | None = None,
    metrics_port: int | None = None,
    metrics_addr: str | None = None,
) -> BusMetrics:
    """Count and time everything ``bus`` publishes and delivers, and report workers' health.

    Call it where the bus is created, before workers start. Its delivery hooks run first in
    the middleware chain (so their ``on_failure`` runs last and sees a dead-letter mark).

    Args:
        bus: The bus to observe.
        registry: Where the counters and histograms are registered; a new private registry
            when omitted (available as ``metrics.registry``).
        rules: Health rules; their ``bucket_seconds`` sets the width of the window buckets the
            workers write. Defaults to :meth:`HealthRules.load` (``WOWEVENT_HEALTH_*``).
        metrics_port: The worker's metrics port (0 picks a free one, announced in the
            heartbeat); defaults to ``WOWEVENT_METRICS_PORT``, and no port when unset.
        metrics_addr: The address the port binds; defaults to ``WOWEVENT_METRICS_ADDR``, else
            ``127.0.0.1``.

    Returns:
        The metrics object, also set as ``bus.metrics`` so publishes are counted.
    """
    metrics = BusMetrics(registry if registry is not None else CollectorRegistry(), bus.exchange)
    chosen = rules or HealthRules.load()
    recorder = WindowRecorder(
        lambda: make_client(bus.settings), bus.exchange, bucket_seconds=chosen.bucket_seconds
    )
    bus.metrics = metrics
    # The in-memory test double has no Redis to keep the window in: metrics only.
    in_memory = bus.settings.broker_url.startswith("memory:")
    bus.middleware.insert(0, MetricsMiddleware(metrics, None if in_memory else recorder))
    bus.app.steps["worker"].add(
        make_telemetry_step(bus, metrics, recorder, chosen, metrics_port, metrics_addr)
    )
    return metrics


def exposition_registry(metrics: BusMetrics) -> CollectorRegistry:
    """What a worker's port serves: the multiprocess sum when enabled, else the registry."""
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return metrics.registry
    combined = CollectorRegistry()
    MultiProcessCollector(combined, path)  # type: ignore[no-untyped-call]
    return combined


def clear_multiproc_dir(path: str) -> int:
    """Remove value files left by an earlier run (counters would otherwise start high)."""
    removed = 0
    for file in Path(path).glob("*.db"):
        file.unlink(missing_ok=True)
        removed += 1
    return removed


class Heartbeat:
    """Announces a live worker and the queues it consumes, refreshed by a daemon thread."""

    def __init__(self, bus: EventBus, hostname: str, interval: float) -> None:
        self.bus = bus
        self.hostname = hostname
        # Two workers may share a node name on one host (Celery only warns): keep both.
        self.field = f"{hostname}:{os.getpid()}"
        self.interval = interval
        self.queues: list[str] = []
        self.metrics_port: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client = make_client(bus.settings)

    def beat(self) -> None:
        """Write the heartbeat once."""
        doc = {
            "hostname": self.hostname,
            "pid": os.getpid(),
            "queues": self.queues,
            "metrics_port": self.metrics_port,
            "expires": time.time() + 3 * self.interval,
        }
        self._client.hset(names.workers_key(self.bus.exchange), self.field, json.dumps(doc))

    def start(self) -> None:
        """Beat now and then every ``interval`` seconds (a Redis outage only delays it)."""
        try:
            self.beat()
        except Exception as exc:
            log.warning("worker heartbeat failed: %s", exc)
        self._thread = threading.Thread(target=self._run, name="wowevent-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:
                log.warning("worker heartbeat failed: %s", exc)

    def stop(self) -> None:
        """Stop beating and remove the heartbeat (the worker no longer consumes)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 1)
        try:
            self._client.hdel(names.workers_key(self.bus.exchange), self.field)
        except Exception as exc:
            log.warning("could not remove the worker heartbeat: %s", exc)
        self._client.close()


def make_telemetry_step(
    bus: EventBus,
    metrics: BusMetrics,
    recorder: WindowRecorder,
    rules: HealthRules,
    port: int | None,
    addr: str | None,
) -> type[bootsteps.StartStopStep]:
    """A worker bootstep bound to ``bus``: heartbeat, metrics port, window flushing."""

    class TelemetryStep(bootsteps.StartStopStep):  # type: ignore[misc]
        """Heartbeat and per-worker metrics port of an instrumented bus."""

        name = f"wowevent_kombu.observability.telemetry.TelemetryStep[{bus.exchange}]"

        def __init__(self, worker: Any, **kwargs: Any) -> None:
            super().__init__(worker, **kwargs)
            settings = bus.settings  # WOWEVENT_METRICS_PORT / WOWEVENT_METRICS_ADDR
            self.port = port if port is not None else settings.metrics_port
            self.addr = addr or settings.metrics_addr
            self.server: Any = None
            self.heartbeat: Heartbeat | None = None
            multiproc = os.environ.get(MULTIPROC_ENV)
            if multiproc:
                # Before the pool forks: no child has written yet.
                clear_multiproc_dir(multiproc)
            elif self.port is not None and getattr(worker, "pool_cls", None) is not None:
                pool = str(getattr(worker.pool_cls, "__module__", ""))
                if "prefork" in pool:
                    log.warning(
                        "metrics port of a prefork worker without %s: counts made in pool "
                        "children are not served; set it to an empty directory per worker",
                        MULTIPROC_ENV,
                    )

        def start(self, worker: Any) -> None:
            hostname = str(getattr(worker, "hostname", None) or f"worker-{os.getpid()}")
            heartbeat = Heartbeat(bus, hostname, rules.heartbeat_seconds)
            heartbeat.queues = sorted(worker.app.amqp.queues.consume_from)
            if self.port is not None:
                self.server, _ = start_http_server(
                    self.port, addr=self.addr, registry=exposition_registry(metrics)
                )
                heartbeat.metrics_port = int(self.server.server_port)
                log.info(
                    "wowevent metrics on http://%s:%s/metrics", self.addr, heartbeat.metrics_port
                )
            heartbeat.start()
            self.heartbeat = heartbeat

        def stop(self, worker: Any) -> None:
            recorder.close()
            if self.heartbeat is not None:
                self.heartbeat.stop()
                self.heartbeat = None
            if self.server is not None:
                self.server.shutdown()
                self.server.server_close()
                self.server = None

    return TelemetryStep
