"""The ``wowevent status`` and ``wowevent serve`` commands (mounted on the ``wowevent`` group)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

import click
from prometheus_client import CollectorRegistry

from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.cli._common import CliContext, handle_errors, redis_errors_as_unavailable
from wowevent_kombu.cli.types import Count, FiniteFloat
from wowevent_kombu.observability.collector import ClusterCollector
from wowevent_kombu.observability.health import HealthRules
from wowevent_kombu.observability.metrics import BusMetrics
from wowevent_kombu.observability.service import StatusService, make_server
from wowevent_kombu.observability.status import ClusterReader, ClusterStatus

F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(func: F) -> F:
    """The group's error handling (named exit codes) around a command that reads Redis."""
    return handle_errors(redis_errors_as_unavailable(func))


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 1000:.1f}" if value < 10 else f"{value:.0f}s"


_COLUMNS = (
    ("SUBSCRIBER", "<"), ("HEALTH", "<"), ("EV/S", ">"), ("DELIVERY p50/p95/p99 ms", ">"),
    ("END-TO-END p50/p95/p99 ms", ">"), ("BACKLOG", ">"), ("OLDEST", ">"), ("DLQ", ">"),
)  # fmt: skip


def _row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        f"{cell:{align}{width}}"
        for cell, width, (_, align) in zip(cells, widths, _COLUMNS, strict=True)
    ).rstrip()


def status_table(status: ClusterStatus) -> str:
    """The human form of a cluster snapshot: columns as wide as their widest cell."""
    if not status.subscribers:
        return f"no subscribers are bound on exchange {status.exchange!r}"
    rows: list[tuple[list[str], list[str]]] = []
    for sub in status.subscribers:
        d = sub.window.latency("delivery")
        e = sub.window.latency("end_to_end")
        oldest = "-" if sub.oldest_age is None else f"{sub.oldest_age:.0f}s"
        cells = [
            sub.name, sub.health, f"{sub.window.throughput:.1f}",
            "/".join(_ms(d[k]) for k in ("p50", "p95", "p99")),
            "/".join(_ms(e[k]) for k in ("p50", "p95", "p99")),
            str(sub.backlog), oldest, str(sub.dlq_size),
        ]  # fmt: skip
        rows.append((cells, sub.reasons))
    head = [title for title, _ in _COLUMNS]
    widths = [
        max(len(c) for c in column) for column in zip(head, *(r for r, _ in rows), strict=True)
    ]
    lines = [_row(head, widths)]
    for cells, reasons in rows:
        lines.append(_row(cells, widths))
        lines.extend(f"  - {reason}" for reason in reasons)
    log_length = "-" if status.log_length is None else str(status.log_length)
    lines.append(
        f"window {status.window_seconds:g} s · {len(status.workers)} live worker(s) · "
        f"log length {log_length}"
    )
    return "\n".join(lines)


def reader_for(obj: CliContext) -> ClusterReader:
    """A cluster reader on the bus's Redis with the configured health rules."""
    bus = obj.bus()
    return ClusterReader(make_client(bus.settings), bus.exchange, HealthRules.load())


@click.command()
@click.option("--window", type=FiniteFloat(1, 900, unit=" of seconds"),
              help="Seconds of history [default 60].")  # fmt: skip
@click.pass_obj
@cli_errors
def status(obj: CliContext, window: float | None) -> None:
    """Per-subscriber throughput, latency percentiles, backlog, DLQ size and health."""
    snapshot = reader_for(obj).snapshot(window_seconds=window)
    obj.emit(snapshot.as_dict(), status_table(snapshot))


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, envvar="WOWEVENT_SERVE_HOST")
@click.option("--port", default=8000, show_default=True, type=Count(0, 65535),
              envvar="WOWEVENT_SERVE_PORT", help="0 picks a free port (printed).")  # fmt: skip
@click.option("--admin-token", envvar="WOWEVENT_ADMIN_TOKEN",
              help="Bearer token enabling /admin/* (off when unset).")  # fmt: skip
@click.pass_obj
@cli_errors
def serve(obj: CliContext, host: str, port: int, admin_token: str | None) -> None:
    """Serve /health, /ready, /metrics, /status and admin endpoints until SIGTERM or Ctrl-C."""
    bus = obj.bus()
    registry = CollectorRegistry()
    reader = reader_for(obj)
    registry.register(ClusterCollector(reader))
    if bus.metrics is None:
        bus.metrics = BusMetrics(registry, bus.exchange)
    else:
        registry.register(bus.metrics.registry)
    service = StatusService(bus, reader, registry, admin_token=admin_token)
    server = make_server(service, host, port)
    bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(
        f"serving on http://{bound_host}:{bound_port} (admin {'on' if admin_token else 'off'})"
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()
        bus.close()
    click.echo("stopped")
