"""The ``wowevent status`` and ``wowevent serve`` commands (mounted on the ``wowevent`` group)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click
from prometheus_client import CollectorRegistry

from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.cli._common import CliContext, handle_errors, redis_errors_as_unavailable
from wowevent_kombu.cli.types import Count, FiniteFloat
from wowevent_kombu.observability.collector import ClusterCollector
from wowevent_kombu.observability.health import HealthRules
from wowevent_kombu.observability.metrics import BusMetrics
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
        reasons = list(sub.reasons)
        if sub.breaker is not None and sub.breaker.state != "closed":
            reasons.append(f"circuit breaker {sub.breaker.state}: {sub.breaker.reason}")
        rows.append((cells, reasons))
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
@click.option("--host", default="127.0.0.1", show_default=True, envvar="WOWEVENT_SERVE_HOST",
              help="Address to listen on [env WOWEVENT_SERVE_HOST].")  # fmt: skip
@click.option("--port", default=8000, show_default=True, type=Count(0, 65535),
              envvar="WOWEVENT_SERVE_PORT",
              help="0 picks a free port (printed) [env WOWEVENT_SERVE_PORT].")  # fmt: skip
@click.option("--admin-token", envvar="WOWEVENT_ADMIN_TOKEN",
              help="Token of the admin API and console; both are off when unset "
                   "[env WOWEVENT_ADMIN_TOKEN].")  # fmt: skip
@click.option("--read-token", envvar="WOWEVENT_READ_TOKEN",
              help="Token that may look but not change (console and GET routes) "
                   "[env WOWEVENT_READ_TOKEN].")  # fmt: skip
@click.option("--session-secret", envvar="WOWEVENT_SESSION_SECRET",
              help="Signs console sessions; give every replica the same one (random when "
                   "unset: sessions end at restart) [env WOWEVENT_SESSION_SECRET].")  # fmt: skip
@click.pass_obj
@cli_errors
def serve(
    obj: CliContext,
    host: str,
    port: int,
    admin_token: str | None,
    read_token: str | None,
    session_secret: str | None,
) -> None:
    """Serve probes, /metrics, /status, the admin API and the console until SIGTERM or Ctrl-C."""
    try:
        from wowevent_kombu.web.app import create_app
        from wowevent_kombu.web.auth import Tokens
        from wowevent_kombu.web.server import bind, run
    except ImportError as exc:
        raise click.ClickException(
            f"'wowevent serve' needs the web extra ({exc.name} is missing): "
            "pip install 'wowevent-kombu[web]'"
        ) from exc
    from wowevent_kombu.cli.schemas import open_registry

    tokens = Tokens(admin=admin_token or None, read=read_token or None)
    bus = obj.bus()
    registry = CollectorRegistry()
    reader = reader_for(obj)
    registry.register(ClusterCollector(reader))
    if bus.metrics is None:
        bus.metrics = BusMetrics(registry, bus.exchange)
    else:
        registry.register(bus.metrics.registry)
    schemas = open_registry(obj, None)
    app = create_app(
        bus, reader, registry, tokens=tokens, schemas=schemas, session_secret=session_secret
    )
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
    console = f"; console at http://{shown}:{bound_port}/console/" if tokens.enabled else ""
    click.echo(
        f"serving on http://{shown}:{bound_port} (admin {'on' if tokens.enabled else 'off'}"
        f"{', read-only token on' if tokens.read else ''}){console}"
    )
    run(app, sock, on_stop=bus.close)
    click.echo("stopped")
