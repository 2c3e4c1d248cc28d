"""``wowevent schemas ...``: register, list, show, check and validate schemas from the shell.

Exit codes beyond the CLI's usual ones: 1 the registry refused the schema (incompatible, or a
version conflict) or a schema was not found; 65 the schema file or the data is invalid.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import redis

from wowevent_kombu.cli._common import (
    EXIT_DATAERR,
    EXIT_ERROR,
    EXIT_UNAVAILABLE,
    CliContext,
    pass_ctx,
)
from wowevent_kombu.core.errors import EventValidationError, InvalidSchemaError, SchemaError
from wowevent_kombu.core.event import Event, decode_json
from wowevent_kombu.core.names import DEFAULT_EXCHANGE
from wowevent_kombu.core.settings import DEFAULT_BROKER_URL
from wowevent_kombu.schemas.catalogue import asyncapi_document
from wowevent_kombu.schemas.compatibility import DEFAULT_MODE, MODES
from wowevent_kombu.schemas.registry import SchemaRegistry
from wowevent_kombu.schemas.schema import EventSchema, describe_violations

F = TypeVar("F", bound=Callable[..., Any])


def schema_errors(func: F) -> F:
    """Registry errors as one line on stderr and a named exit code."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (InvalidSchemaError, EventValidationError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_DATAERR)
        except SchemaError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_ERROR)
        except (redis.RedisError, OSError) as exc:
            click.echo(f"error: Redis is unavailable: {exc}", err=True)
            sys.exit(EXIT_UNAVAILABLE)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def open_registry(obj: CliContext, namespace: str | None) -> SchemaRegistry:
    """The app's bus registry (with ``-A``), else one on ``--broker`` under the exchange name."""
    if obj.app_path or obj.celery_app:
        bus = obj.bus()
        if bus.schemas is not None and namespace in (None, bus.schemas.namespace):
            return bus.schemas
        # The bus's own client: the same broker settings (Sentinel included) as its publishes.
        client = getattr(bus.transport, "client", None)
        if client is not None:
            return SchemaRegistry(client, namespace=namespace or bus.exchange, refresh_interval=0)
        return SchemaRegistry.from_url(
            bus.settings.redis_url, namespace=namespace or bus.exchange, refresh_interval=0
        )
    return SchemaRegistry.from_url(
        obj.broker or DEFAULT_BROKER_URL,
        namespace=namespace or obj.exchange or DEFAULT_EXCHANGE,
        refresh_interval=0,
    )


namespace_option = click.option(
    "--namespace", envvar="WOWEVENT_SCHEMA_NAMESPACE",
    help="Registry key prefix [default: the exchange; env WOWEVENT_SCHEMA_NAMESPACE].",
)  # fmt: skip
mode_option = click.option(
    "--compatibility", type=click.Choice(MODES), default=DEFAULT_MODE, show_default=True,
    help="Which earlier versions the new one must stay compatible with, and how.",
)  # fmt: skip


@click.group()
def schemas() -> None:
    """Manage the event schemas in the registry shared by publishers and workers."""


@schemas.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=Path))
@click.option("--type", "event_type", help="Event type (default: from the file or its folder).")
@click.option("--version", help="Schema version (default: from the file or its name).")
@mode_option
@namespace_option
@pass_ctx
@schema_errors
def register(
    obj: CliContext,
    file: Path,
    event_type: str | None,
    version: str | None,
    compatibility: str,
    namespace: str | None,
) -> None:
    """Register FILE (a schema file, or a folder of <type>/<version>.json files)."""
    registry = open_registry(obj, namespace)
    if file.is_dir():
        added = registry.load_dir(file, compatibility=compatibility)
        rows = [{"type": s.type, "version": s.version} for s in added]
        obj.emit(
            {"registered": rows},
            "\n".join(f"registered {s.type} {s.version}" for s in added) or "nothing new",
        )
        return
    schema = EventSchema.from_file(file, type=event_type, version=version)
    stored = registry.register(schema, compatibility=compatibility)
    obj.emit(
        {"type": schema.type, "version": schema.version, "registered": stored},
        f"{'registered' if stored else 'already registered'} {schema.type} {schema.version}",
    )


@schemas.command(name="list")
@namespace_option
@pass_ctx
@schema_errors
def list_(obj: CliContext, namespace: str | None) -> None:
    """List event types with their schema versions."""
    registry = open_registry(obj, namespace)
    rows = [{"type": t, "versions": registry.versions(t)} for t in registry.types()]
    lines = [f"{'TYPE':<40} {'LATEST':<12} VERSIONS"] + [
        f"{r['type']:<40} {r['versions'][-1]:<12} {', '.join(r['versions'])}" for r in rows
    ]
    obj.emit(rows, "\n".join(lines) if rows else "no schemas are registered")


@schemas.command()
@click.argument("event_type")
@click.argument("version", required=False)
@namespace_option
@pass_ctx
@schema_errors
def show(obj: CliContext, event_type: str, version: str | None, namespace: str | None) -> None:
    """Print the schema of EVENT_TYPE at VERSION (default: the latest)."""
    registry = open_registry(obj, namespace)
    schema = registry.get(event_type, version)
    record = next(r for r in registry.history(event_type) if r.schema.version == schema.version)
    obj.emit(
        record.as_dict(),
        f"# {schema.type} {schema.version} (registered {record.registered_at}, "
        f"compatibility {record.compatibility})\n" + json.dumps(schema.schema, indent=2),
    )


@schemas.command()
@click.argument("event_type")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--version", help="Version it would get (default: from the file name).")
@mode_option
@namespace_option
@pass_ctx
@schema_errors
def check(
    obj: CliContext,
    event_type: str,
    file: Path,
    version: str | None,
    compatibility: str,
    namespace: str | None,
) -> None:
    """Would FILE be accepted as a new version of EVENT_TYPE? Nothing is written."""
    registry = open_registry(obj, namespace)
    schema = EventSchema.from_file(file, type=event_type, version=version)
    new = registry.check(schema, compatibility=compatibility)
    verdict = "accepted" if new else "already registered (no-op)"
    obj.emit(
        {"type": schema.type, "version": schema.version, "accepted": True, "new": new},
        f"{schema.type} {schema.version}: {verdict} under {compatibility}",
    )


@schemas.command()
@click.argument("event_type")
@click.argument("data")
@click.option("--version", help="Schema version (default: the latest).")
@namespace_option
@pass_ctx
@schema_errors
def validate(
    obj: CliContext, event_type: str, data: str, version: str | None, namespace: str | None
) -> None:
    """Check DATA (JSON text, or @file) against EVENT_TYPE's schema."""
    text = Path(data[1:]).read_text(encoding="utf-8") if data.startswith("@") else data
    try:
        payload = decode_json(text)
    except ValueError as exc:
        raise InvalidSchemaError(f"DATA is not valid JSON: {exc}") from exc
    registry = open_registry(obj, namespace)
    event = Event(type=event_type, data=payload, schema_version=version)
    try:
        checked = registry.validate(event, require=True)
    except EventValidationError as exc:
        if obj.as_json:
            click.echo(
                json.dumps(
                    {
                        "valid": False,
                        "type": event_type,
                        "version": exc.schema_version,
                        "violations": [v.as_dict() for v in exc.violations],
                        "error": str(exc),
                    },
                    indent=2,
                )
            )
        else:
            click.echo(f"invalid: {exc}" if not exc.violations else
                       f"invalid against {event_type} {exc.schema_version}:\n"
                       + describe_violations(list(exc.violations), limit=1000))  # fmt: skip
        sys.exit(EXIT_DATAERR)
    obj.emit(
        {"valid": True, "type": event_type, "version": checked.schema_version, "violations": []},
        f"valid against {event_type} {checked.schema_version}",
    )


@schemas.command()
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the document here (default: standard output).")  # fmt: skip
@click.option("--doc-version", default="1.0.0", show_default=True,
              help="The catalogue's own version (info.version).")  # fmt: skip
@namespace_option
@pass_ctx
@schema_errors
def asyncapi(obj: CliContext, output: Path | None, doc_version: str, namespace: str | None) -> None:
    """Write the AsyncAPI 3.0 catalogue: event types, every schema version, the subscribers."""
    bus = obj.bus()
    document = asyncapi_document(bus, registry=open_registry(obj, namespace), version=doc_version)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text, encoding="utf-8")
    click.echo(
        f"wrote {output}: {len(document['channels'])} channel(s), "
        f"{len(document['components']['messages'])} message(s), "
        f"{len(document['operations'])} operation(s)",
        err=True,
    )
