"""The ``wowevent`` command line (also ``celery wowevent``): thin commands over the library.

Exit codes: 0 success, 1 a bus error, 2 bad usage, 65 bad input data, 69 Redis unavailable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import json
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from celery import Celery

from .bus import EventBus, buses_of
from .cli_types import BROKER_SCHEMES, STORE_SCHEMES, BrokerURL, Count, FiniteFloat
from .errors import InvalidEventError, PublishError, WowEventError
from .event import Event, decode_json
from .names import TAIL_PREFIX

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_DATAERR = 65
EXIT_UNAVAILABLE = 69

F = TypeVar("F", bound=Callable[..., Any])

TAIL_TIMEOUT_MAX = 365 * 86400.0
"""The longest idle timeout of ``tail``: a year (longer is as good as none)."""


@dataclasses.dataclass
class CliContext:
    """What every command needs: how to reach the bus, and the output format."""

    broker: str | None
    exchange: str | None
    app_path: str | None
    as_json: bool
    celery_app: Celery | None = None
    store: str | None = None
    _bus: EventBus | None = None

    def bus(self) -> EventBus:
        """The bus of ``--app`` (or of ``celery -A``), else a bare bus on ``--broker``."""
        if self._bus is None:
            app = self.celery_app or (load_app(self.app_path) if self.app_path else None)
            if app is not None:
                every = buses_of(app)
                buses = [b for b in every if not self.exchange or b.exchange == self.exchange]
                if every and not buses:
                    raise click.UsageError(
                        f"the app's buses use exchange(s) {sorted(b.exchange for b in every)}, "
                        f"not {self.exchange!r} (from --exchange or WOWEVENT_EXCHANGE)"
                    )
                if buses:
                    self._bus = buses[0]
                else:
                    self._bus = EventBus(app, exchange=self.exchange)
            else:
                bare = Celery("wowevent", broker=self.broker, set_as_current=False)
                if self.store:
                    bare.conf.wowevent_store_url = self.store
                self._bus = EventBus(bare, exchange=self.exchange)
        return self._bus

    def emit(self, data: Any, text: str) -> None:
        """Print ``data`` as JSON with ``--json``, else the human ``text``."""
        click.echo(json.dumps(data, indent=2, default=str) if self.as_json else text)


def load_app(path: str) -> Celery:
    """Import a Celery app like ``celery -A``: ``module:attribute`` or a module with ``app``."""
    module_name, _, attribute = path.partition(":")
    sys.path.insert(0, ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise click.UsageError(f"cannot import app module {module_name!r}: {exc}") from exc
    for name in [attribute] if attribute else ["app", "celery"]:
        candidate = getattr(module, name, None)
        if isinstance(candidate, Celery):
            return candidate
    raise click.UsageError(f"{path!r} does not name a Celery app (tried module:app, module:celery)")


def handle_errors(func: F) -> F:
    """Turn library errors into one clear line on stderr and a named exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidEventError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_DATAERR)
        except PublishError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR if exc.__class__ is not PublishError else EXIT_UNAVAILABLE)
        except WowEventError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        except OSError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_UNAVAILABLE)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def redis_errors_as_unavailable(func: F) -> F:
    """Commands that read Redis directly report a down Redis as unavailable, not a traceback."""
    import redis

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except redis.RedisError as exc:
            click.echo(f"error: Redis is unavailable: {exc}", err=True)
            sys.exit(EXIT_UNAVAILABLE)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


pass_ctx = click.make_pass_decorator(CliContext)


@click.group(name="wowevent")
@click.option(
    "--broker", envvar="WOWEVENT_BROKER_URL", type=BrokerURL(BROKER_SCHEMES),
    help="Broker URL, Redis or RabbitMQ [env WOWEVENT_BROKER_URL].",
)  # fmt: skip
@click.option(
    "--store", envvar="WOWEVENT_STORE_URL", type=BrokerURL(STORE_SCHEMES),
    help="Redis of the log and dead letters beside a RabbitMQ broker [env WOWEVENT_STORE_URL].",
)  # fmt: skip
@click.option("--exchange", envvar="WOWEVENT_EXCHANGE", help="Exchange [env WOWEVENT_EXCHANGE].")
@click.option("-A", "--app", "app_path", envvar="WOWEVENT_APP", help="Celery app, module:attr.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")
@click.option("-v", "--verbose", is_flag=True, help="Log the library's debug messages.")
@click.pass_context
def cli(
    ctx: click.Context,
    broker: str | None,
    store: str | None,
    exchange: str | None,
    app_path: str | None,
    as_json: bool,
    verbose: bool,
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
    """Publish one event of EVENT_TYPE with DATA (JSON text)."""
    try:
        payload = decode_json(data)
    except ValueError as exc:
        raise InvalidEventError(f"DATA is not valid JSON: {exc}") from exc
    event = obj.bus().publish(
        event_type,
        payload,
        source=source,
        subject=subject,
        correlation_id=correlation_id,
        mandatory=mandatory,
    )
    obj.emit(event.to_cloudevent(), f"published {event.type} {event.id}")


@cli.command()
@click.argument("pattern", nargs=-1, required=True)
@click.option("--limit", type=Count(1), help="Stop after this many events.")
@click.option("--timeout", type=FiniteFloat(0, TAIL_TIMEOUT_MAX, above=True, unit=" of seconds"),
              help="Stop after this many idle seconds.")  # fmt: skip
@pass_ctx
@handle_errors
def tail(
    obj: CliContext, pattern: tuple[str, ...], limit: int | None, timeout: float | None
) -> None:
    """Print live events matching PATTERN (a temporary queue, unbound on exit)."""
    import uuid

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
    with contextlib.suppress(KeyboardInterrupt):
        bus.consume(handlers, group=group, limit=limit, timeout=timeout, temporary=True)


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
    """Remove subscriber NAME's bindings; queued deliveries stay queued."""
    removed = obj.bus().unsubscribe(name, list(patterns) or None)
    obj.emit(
        {"subscriber": name, "removed": removed},
        f"unbound {name}: {', '.join(removed) or 'nothing matched'}",
    )


def main() -> None:
    """Entry point of the ``wowevent`` script."""
    cli(prog_name="wowevent")


celery_command = cli
"""The same group, mounted by Celery as ``celery wowevent`` (``celery.commands`` entry point)."""


def _add_command_groups() -> None:
    """Attach the commands that live in their own modules (they build on this one)."""
    from .cli_dlq import dlq
    from .cli_observe import serve, status
    from .logcli import log_group, replay_command
    from .schemacli import schemas

    for command in (log_group, replay_command, status, serve, dlq, schemas):
        cli.add_command(command)


if __name__ == "__main__":
    # Run the importable module's group: that is where every command group is registered.
    from wowevent_kombu.cli import main as run_main

    run_main()
else:
    _add_command_groups()
