"""The ``wowevent`` group and its core commands: publish, tail, subscribers, declare, unbind."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Callable

import click

from wowevent_kombu.brokers.temporary import LEASE_SECONDS
from wowevent_kombu.cli._common import (
    TAIL_TIMEOUT_MAX,
    CliContext,
    handle_errors,
    pass_ctx,
    redis_errors_as_unavailable,
    stop_on_signals,
)
from wowevent_kombu.cli.types import BROKER_SCHEMES, STORE_SCHEMES, BrokerURL, Count, FiniteFloat
from wowevent_kombu.core.errors import InvalidEventError
from wowevent_kombu.core.event import Event, decode_json
from wowevent_kombu.core.names import DEFAULT_EXCHANGE, TAIL_PREFIX
from wowevent_kombu.core.settings import DEFAULT_BROKER_URL


@click.group(name="wowevent")
@click.option(
    "--broker", envvar="WOWEVENT_BROKER_URL", show_envvar=True, type=BrokerURL(BROKER_SCHEMES),
    help=f"Broker URL, Redis or RabbitMQ; with -A the app's own broker is used instead "
    f"[default: {DEFAULT_BROKER_URL}].",
)  # fmt: skip
@click.option(
    "--store", envvar="WOWEVENT_STORE_URL", show_envvar=True, type=BrokerURL(STORE_SCHEMES),
    help="Redis of the log and dead letters beside a RabbitMQ broker [default: the broker].",
)  # fmt: skip
@click.option("--exchange", envvar="WOWEVENT_EXCHANGE", show_envvar=True,
              help=f"Topic exchange of the bus [default: {DEFAULT_EXCHANGE}].")  # fmt: skip
@click.option("-A", "--app", "app_path", envvar="WOWEVENT_APP", show_envvar=True,
              help="Celery app whose bus to use, module or module:attr as for celery -A "
              "[default: none, a bare bus on --broker].")  # fmt: skip
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable JSON output (also accepted after any command).")  # fmt: skip
@click.option("-v", "--verbose", is_flag=True, help="Log the library's debug messages.")
@click.pass_context
def cli(
    ctx: click.Context,
    broker: str | None,
    store: str | None,
    exchange: str | None,
    as_json: bool,
    verbose: bool,
    app_path: str | None = None,
) -> None:
    """Publish, watch and operate a wowevent_kombu event bus."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)
    parent = ctx.obj  # under `celery wowevent`, Celery's CLIContext with the -A app
    celery_app = getattr(parent, "app", None) if parent is not None else None
    ctx.obj = CliContext(broker, exchange, app_path, as_json, celery_app=celery_app, store=store)


@cli.command()
@click.argument("event_type")
@click.argument("data", default="null")
@click.option("--source", default="wowevent-cli", show_default=True)
@click.option("--subject")
@click.option("--correlation-id")
@click.option("--mandatory", is_flag=True, help="Fail if no subscriber matches.")
@pass_ctx
@handle_errors
def publish(
    obj: CliContext,
    event_type: str,
    data: str,
    source: str,
    subject: str | None,
    correlation_id: str | None,
    mandatory: bool,
) -> None:
    """Publish one event of EVENT_TYPE with DATA (JSON text); say which subscribers it reached.

    An event no binding matches is logged but reaches nobody: a warning on stderr says so, and
    with --mandatory it is refused instead (exit 1, nothing written).
    """
    try:
        payload = decode_json(data)
    except ValueError as exc:
        raise InvalidEventError(f"DATA is not valid JSON: {exc}") from exc
    event, reached = obj.bus().publish_reaching(
        event_type,
        payload,
        source=source,
        subject=subject,
        correlation_id=correlation_id,
        mandatory=mandatory,
    )
    who = f": {', '.join(reached)}" if reached else ""
    obj.emit(
        {**event.to_cloudevent(), "subscribers": reached},
        f"published {event.type} {event.id} to {len(reached)} subscriber(s){who}",
    )
    if not reached:
        click.echo(
            f"warning: no subscriber is bound to a pattern matching {event.type!r} on exchange "
            f"{obj.bus().exchange!r}: the event was logged but reaches nobody (see `wowevent "
            "subscribers`; --mandatory makes this an error)",
            err=True,
        )


@cli.command()
@click.argument("pattern", nargs=-1, required=True)
@click.option("--limit", type=Count(1), help="Stop after this many events.")
@click.option("--timeout", type=FiniteFloat(0, TAIL_TIMEOUT_MAX, above=True, unit=" of seconds"),
              help="Stop after this many idle seconds [default: never].")  # fmt: skip
@click.option("--ttl", type=FiniteFloat(1, 86400, unit=" of seconds"), default=LEASE_SECONDS,
              show_default=True, envvar="WOWEVENT_TAIL_TTL", show_envvar=True,
              help="How long the queue of a tail killed with SIGKILL outlives it.")  # fmt: skip
@pass_ctx
@handle_errors
def tail(
    obj: CliContext,
    pattern: tuple[str, ...],
    limit: int | None,
    timeout: float | None,
    ttl: float,
) -> None:
    """Print live events matching PATTERN through a temporary queue.

    The queue, its binding and its bell are removed when tail ends: after --limit or
    --timeout, or on Ctrl-C, SIGTERM (kill, timeout, docker stop, systemd) or SIGHUP. If tail
    is killed outright (SIGKILL), they expire --ttl seconds later.
    """

    bus = obj.bus()

    def show(event: Event) -> None:
        doc = event.to_cloudevent()
        if obj.as_json:
            click.echo(json.dumps(doc, separators=(",", ":")))
        else:
            data = json.dumps(doc.get("data"), separators=(",", ":"))
            click.echo(f"{doc['time']}  {event.type:<30} {event.id}  {data}")

    group = f"{TAIL_PREFIX}{uuid.uuid4().hex[:12]}"
    handlers: dict[str, Callable[[Event], None]] = dict.fromkeys(pattern, show)
    with contextlib.suppress(KeyboardInterrupt), stop_on_signals():
        bus.consume(handlers, group=group, limit=limit, timeout=timeout, temporary=True, lease=ttl)


@cli.command()
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def subscribers(obj: CliContext) -> None:
    """List bound subscribers with their patterns and waiting deliveries."""
    bus = obj.bus()
    bound = bus.bindings()
    depths = bus.queue_depths()
    rows = [
        {"subscriber": name, "patterns": patterns, "waiting": depths.get(name, 0)}
        for name, patterns in sorted(bound.items())
    ]
    lines = [f"{'SUBSCRIBER':<30} {'WAITING':>8}  PATTERNS"] + [
        f"{name:<30} {depths.get(name, 0):>8}  {', '.join(patterns)}"
        for name, patterns in sorted(bound.items())
    ]
    obj.emit(rows, "\n".join(lines) if rows else "no subscribers are bound")


@cli.command()
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def declare(obj: CliContext) -> None:
    """Bind every subscriber of the app (-A) to its patterns (idempotent; run at deploy)."""
    bus = obj.bus()
    if not bus.subscribers:
        raise click.UsageError("no subscribers to declare: pass the app with -A module:app")
    declared = bus.declare()
    obj.emit(
        {k: list(v) for k, v in declared.items()},
        "\n".join(f"declared {n}: {', '.join(p)}" for n, p in sorted(declared.items())),
    )


@cli.command()
@click.argument("name")
@click.option("--pattern", "patterns", multiple=True, help="Only this pattern (repeatable).")
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def unbind(obj: CliContext, name: str, patterns: tuple[str, ...]) -> None:
    """Remove subscriber NAME's bindings; queued deliveries stay queued.

    A leftover `tail` queue (NAME starting with "tail.") is deleted with its bell as well.
    """
    removed = obj.bus().unsubscribe(name, list(patterns) or None)
    obj.emit(
        {"subscriber": name, "removed": removed},
        f"unbound {name}: {', '.join(removed) or 'nothing matched'}",
    )
