"""The ``wowevent log`` group and ``wowevent replay``: thin commands over the log and replay API.

Exit codes as in :mod:`wowevent_kombu.cli`, plus 130 for a replay interrupted by Ctrl-C. A
replay stopped by Ctrl-C or by a failure mid-way (69 when Redis failed it, else 1) prints the
``--resume`` id; its record in Redis says ``interrupted`` or ``failed`` with the reason.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from wowevent_kombu.cli._common import (
    EXIT_ERROR,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    CliContext,
    handle_errors,
    pass_ctx,
    redis_errors_as_unavailable,
)
from wowevent_kombu.cli.types import Count, LogPosition, LogTime, ReplaySpeed
from wowevent_kombu.core.errors import InvalidPatternError, LogQueryError, ReplayInterrupted
from wowevent_kombu.log.eventlog import LogEntry
from wowevent_kombu.log.replay import ReplayReport

EXIT_INTERRUPTED = 130

ENTRIES_MAX = 1_000_000
"""The most log entries one ``log read`` or ``log tail`` prints (all are in memory at once)."""

F = TypeVar("F", bound=Callable[..., Any])


def bad_input_is_usage(func: F) -> F:
    """A malformed time, cursor, speed or pattern exits with the usage code and one line."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (LogQueryError, InvalidPatternError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def _line(entry: LogEntry) -> str:
    data = json.dumps(entry.event.data, separators=(",", ":"))
    if len(data) > 120:
        data = data[:117] + "..."
    return f"{entry.position:<18} {entry.event.type:<28} {entry.event.id}  {data}"


def _show(obj: CliContext, entries: list[LogEntry]) -> None:
    if obj.as_json:
        for entry in entries:
            click.echo(json.dumps(entry.to_dict(), separators=(",", ":")))
    else:
        for entry in entries:
            click.echo(_line(entry))


@click.group(name="log")
def log_group() -> None:
    """Query the persisted event log (times: ISO 8601, an age like 15m/2h/7d, or a position)."""


@log_group.command(name="tail")
@click.option("-n", "--count", type=Count(1, ENTRIES_MAX), default=10, show_default=True,
              help="Entries to show.")  # fmt: skip
@click.option("-f", "--follow", is_flag=True, help="Keep printing entries as they are logged.")
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
@bad_input_is_usage
def log_tail(obj: CliContext, count: int, follow: bool) -> None:
    """Print the newest entries of the log (one JSON object per line with --json)."""
    eventlog = obj.bus().log
    entries = eventlog.tail(count)
    _show(obj, entries)
    if not follow:
        return
    after = entries[-1].position if entries else eventlog.last_position()
    try:
        while True:
            fresh = eventlog.follow(after or "0-0")
            _show(obj, fresh)
            if fresh:
                after = fresh[-1].position
    except KeyboardInterrupt:
        return


@log_group.command(name="read")
@click.option("--since", type=LogTime(), help="Earliest log time or position (inclusive).")
@click.option("--until", type=LogTime(), help="Latest log time or position (inclusive).")
@click.option("--type", "types", multiple=True, help="Type pattern, e.g. 'order.*' (repeatable).")
@click.option("--correlation-id")
@click.option("--causation-id")
@click.option("--source")
@click.option("--subject")
@click.option("--limit", type=Count(1, ENTRIES_MAX), default=100, show_default=True)
@click.option("--cursor", type=LogPosition(),
              help="Continue after this position (printed as 'next:').")  # fmt: skip
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
@bad_input_is_usage
def log_read(
    obj: CliContext,
    since: datetime | str | None,
    until: datetime | str | None,
    types: tuple[str, ...],
    correlation_id: str | None,
    causation_id: str | None,
    source: str | None,
    subject: str | None,
    limit: int,
    cursor: str | None,
) -> None:
    """Print logged events matching every filter, in publish order."""
    entries = obj.bus().log.read(
        since=since, until=until, types=list(types) or None,
        correlation_id=correlation_id, causation_id=causation_id, source=source,
        subject=subject, limit=limit, cursor=cursor,
    )  # fmt: skip
    following = entries[-1].position if len(entries) == limit else None
    if obj.as_json:
        page = {"entries": [e.to_dict() for e in entries], "cursor": following}
        click.echo(json.dumps(page, indent=2))
        return
    _show(obj, entries)
    click.echo(f"{len(entries)} events" + (f"; next: --cursor {following}" if following else ""))


@log_group.command(name="get")
@click.argument("event_id")
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def log_get(obj: CliContext, event_id: str) -> None:
    """Print the logged event with EVENT_ID (its CloudEvent and position)."""
    entry = obj.bus().log.get(event_id)
    if entry is None:
        click.echo(
            f"error: event {event_id!r} is not in the log (never published on this exchange, "
            "or older than the log's retention)",
            err=True,
        )
        sys.exit(1)
    text = json.dumps(entry.to_dict(), indent=2)
    obj.emit(entry.to_dict(), text)


@log_group.command(name="stats")
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def log_stats(obj: CliContext) -> None:
    """Length, time span, retention and memory of the log; subscriber checkpoints."""
    eventlog = obj.bus().log
    stats = {**eventlog.stats(), "checkpoints": eventlog.checkpoints()}
    width = max(len(k) for k in stats)
    lines = [f"{k:<{width}}  {v}" for k, v in stats.items() if k != "checkpoints"]
    lines += [f"checkpoint {name}: {pos}" for name, pos in sorted(stats["checkpoints"].items())]
    obj.emit(stats, "\n".join(lines))


def _summary(report: ReplayReport) -> str:
    per = ", ".join(f"{n}={c}" for n, c in sorted(report.delivered.items())) or "none"
    return (
        f"replay {report.replay_id} {report.status}: {report.scanned} events scanned, "
        f"{report.total_delivered} deliveries ({per}), {report.skipped} skipped, "
        f"{report.duration:.2f} s"
    )


@click.command(name="replay")
@click.option("-s", "--subscriber", "subscribers", multiple=True,
              help="Replay to this subscriber (repeatable); default: all bound.")  # fmt: skip
@click.option("--since", type=LogTime(), help="Earliest log time or position.")
@click.option("--until", type=LogTime(),
              help="Latest log time or position (default: the log's end now).")  # fmt: skip
@click.option("--type", "types", multiple=True, help="Type pattern (repeatable).")
@click.option("--correlation-id")
@click.option("--source")
@click.option("--speed", type=ReplaySpeed(), default="instant", show_default=True,
              help="instant, a factor of original pacing (1.0, 10x), a rate (500/s).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Count what would be delivered; send nothing.")
@click.option("--force", is_flag=True, help="Deliver even where the patterns do not match.")
@click.option("--from-checkpoint", is_flag=True, help="After the subscriber's checkpoint.")
@click.option("--resume", "resume", metavar="REPLAY_ID", help="Continue an interrupted replay.")
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
@bad_input_is_usage
def replay_command(
    obj: CliContext,
    subscribers: tuple[str, ...],
    since: datetime | str | None,
    until: datetime | str | None,
    types: tuple[str, ...],
    correlation_id: str | None,
    source: str | None,
    speed: str,
    dry_run: bool,
    force: bool,
    from_checkpoint: bool,
    resume: str | None,
) -> None:
    """Re-publish logged events as tasks to the chosen subscribers, marked as replays."""
    bus = obj.bus()
    bar: Any = None
    if sys.stdout.isatty() and not obj.as_json:
        bar = click.progressbar(length=1000, label="replaying", file=sys.stderr)
        bar.__enter__()

    def advance(report: ReplayReport, fraction: float) -> None:
        if bar is not None:
            bar.update(int(fraction * 1000) - bar.pos)

    try:
        report = bus.replay(
            list(subscribers) or None, since=since, until=until,
            types=list(types) or None, correlation_id=correlation_id, source=source,
            speed=speed, dry_run=dry_run, force=force, from_checkpoint=from_checkpoint,
            resume=resume, progress=advance,
        )  # fmt: skip
    except ReplayInterrupted as exc:
        if bar is not None:
            bar.__exit__(None, None, None)
        failed = exc.report.status != "interrupted"
        click.echo(f"\nerror: {exc}" if failed else f"\n{exc}", err=True)
        if obj.as_json:
            click.echo(json.dumps(exc.report.to_dict(), indent=2))
        sys.exit(_stopped_code(exc) if failed else EXIT_INTERRUPTED)
    if bar is not None:
        bar.__exit__(None, None, None)
    obj.emit(report.to_dict(), _summary(report))


def _stopped_code(exc: ReplayInterrupted) -> int:
    """Exit code of a replay that failed mid-way: 69 when Redis failed it, else 1."""
    import redis

    cause = exc.__cause__
    return EXIT_UNAVAILABLE if isinstance(cause, redis.RedisError | OSError) else EXIT_ERROR
