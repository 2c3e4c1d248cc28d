"""``wowevent dlq``: list, show, re-drive, purge and count dead-lettered deliveries.

Thin commands over :class:`~wowevent_kombu.deadletters.store.DeadLetterStore`. A bad filter is a
usage error (exit 2); an unknown record id or a subscriber that is no longer bound is exit 1, and in
every error case nothing is re-driven or removed.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

import click

from wowevent_kombu.cli._common import (
    EXIT_USAGE,
    CliContext,
    handle_errors,
    redis_errors_as_unavailable,
)
from wowevent_kombu.cli.types import Count, DeadLetterCursor, EpochTime
from wowevent_kombu.core.errors import InvalidFilterError
from wowevent_kombu.deadletters.record import REASONS, DeadLetter, DeadLetterFilter
from wowevent_kombu.deadletters.store import DeadLetterStore

F = TypeVar("F", bound=Callable[..., Any])

pass_ctx = click.make_pass_decorator(CliContext)

LIST_MAX = 1_000_000
"""The most records one ``dlq list`` page may hold (they are all in memory at once)."""


def iso(epoch: float | None) -> str:
    """Epoch seconds as an ISO 8601 UTC time to the second ('-' when unknown)."""
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def bad_filters_are_usage_errors(func: F) -> F:
    """A malformed filter exits 2 with the reason, like any other usage error."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except InvalidFilterError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USAGE)

    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper  # type: ignore[return-value]


def filter_options(func: F) -> F:
    """``--subscriber --type --reason --since --until``, shared by every bulk command."""
    options = [
        click.option("--subscriber", help="Only this subscriber's records."),
        click.option("--type", "event_type", help="Only events of this exact type."),
        click.option("--reason", type=click.Choice(REASONS), help="Only this reason."),
        click.option(
            "--since",
            type=EpochTime(),
            help="Last failure at or after: ISO time, epoch or age (2h).",
        ),
        click.option(
            "--until", type=EpochTime(), help="Last failure at or before: ISO time, epoch or age."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def make_filter(
    subscriber: str | None,
    event_type: str | None,
    reason: str | None,
    since: float | None,
    until: float | None,
) -> DeadLetterFilter:
    """The library filter of the shared options."""
    return DeadLetterFilter(subscriber, event_type, reason, since, until)


@contextlib.contextmanager
def progress(total: int, label: str, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when it is a terminal; otherwise no callback at all."""
    if not enabled or total == 0 or not sys.stderr.isatty():
        yield None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        yield bar.update


def store_of(obj: CliContext) -> DeadLetterStore:
    return obj.bus().dead_letters


def summary(record: DeadLetter) -> dict[str, Any]:
    """A record without its tracebacks, for ``list --json``."""
    data = record.to_dict()
    data["attempts"] = len(record.attempts)
    data["error"] = record.error
    return data


@click.group()
def dlq() -> None:
    """Dead-lettered deliveries: list, show, retry (re-drive), purge, stats."""


@dlq.command(name="list")
@filter_options
@click.option("--limit", type=Count(1, LIST_MAX), default=50, show_default=True)
@click.option("--cursor", type=DeadLetterCursor(),
              help="Continue after the page that printed this cursor.")  # fmt: skip
@pass_ctx
@handle_errors
@bad_filters_are_usage_errors
@redis_errors_as_unavailable
def list_command(
    obj: CliContext,
    subscriber: str | None,
    event_type: str | None,
    reason: str | None,
    since: float | None,
    until: float | None,
    limit: int,
    cursor: str | None,
) -> None:
    """List records, oldest last failure first."""
    flt = make_filter(subscriber, event_type, reason, since, until)
    page = store_of(obj).list(
        subscriber=flt.subscriber, type=flt.type, reason=flt.reason,
        since=flt.since, until=flt.until, limit=limit, cursor=cursor,
    )  # fmt: skip
    rows = [summary(r) for r in page.records]
    lines = [f"{'ID':<36}  {'SUBSCRIBER':<20} {'REASON':<11} {'TRIES':>5}  {'LAST FAILURE':<20}  "
             "TYPE / ERROR"]  # fmt: skip
    for r in page.records:
        lines.append(
            f"{r.id:<36}  {r.subscriber:<20} {r.reason:<11} {len(r.attempts):>5}  "
            f"{iso(r.last_failure):<20}  {r.event_type or '-'}  {r.error[:80]}"
        )
    if page.cursor:
        lines.append(f"more: --cursor '{page.cursor}'")
    text = "\n".join(lines) if rows else "no dead-letter records match"
    obj.emit({"records": rows, "cursor": page.cursor}, text)


@dlq.command()
@click.argument("record_id")
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def show(obj: CliContext, record_id: str) -> None:
    """Show one record: the event, and every attempt with its traceback."""
    record = store_of(obj).get(record_id)
    lines = [
        f"id:          {record.id} (the failed delivery's task id)",
        f"subscriber:  {record.subscriber}",
        f"reason:      {record.reason}",
        f"event:       {record.event_type or '-'} {record.event_id or '-'}"
        + (" (replayed)" if record.replayed else ""),
        f"failures:    first {iso(record.first_failure)}, last {iso(record.last_failure)}",
        "",
        json.dumps(record.event, indent=2, default=str),
    ]
    for attempt in record.attempts:
        lines += [
            "",
            f"--- attempt {attempt.number} at {iso(attempt.failed_at)}: "
            f"{attempt.exception_type}: {attempt.message}",
            attempt.traceback.rstrip() or "(no traceback: the process running it died)",
        ]
    obj.emit(record.to_dict(), "\n".join(lines))


def _selection(
    ids: tuple[str, ...], all_: bool, flt: DeadLetterFilter, verb: str
) -> DeadLetterFilter | None:
    filtered = flt != DeadLetterFilter()
    if ids and (all_ or filtered):
        raise click.UsageError(f"{verb} takes record ids or --all with filters, not both")
    if not ids and not all_:
        raise click.UsageError(f"{verb} needs record ids, or --all (optionally with filters)")
    return None if ids else flt


@dlq.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every record matching the filters.")
@filter_options
@click.option("--dry-run", is_flag=True, help="Say what would be re-driven; change nothing.")
@pass_ctx
@handle_errors
@bad_filters_are_usage_errors
@redis_errors_as_unavailable
def retry(
    obj: CliContext,
    ids: tuple[str, ...],
    all_: bool,
    subscriber: str | None,
    event_type: str | None,
    reason: str | None,
    since: float | None,
    until: float | None,
    dry_run: bool,
) -> None:
    """Re-drive records to their own subscriber as fresh tasks (fresh retry budget)."""
    flt = _selection(ids, all_, make_filter(subscriber, event_type, reason, since, until), "retry")
    store = store_of(obj)
    if flt is None:
        done = store.retry(*ids, dry_run=dry_run)
    else:
        total = store.count(flt) if sys.stderr.isatty() and not dry_run else 0
        with progress(total, "re-driving", not obj.as_json) as bar:
            done = store.retry_all(flt, dry_run=dry_run, progress=bar)
    verb = "would re-drive" if dry_run else "re-drove"
    obj.emit({"retried": done, "dry_run": dry_run}, f"{verb} {len(done)} record(s)")


@dlq.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every record matching the filters.")
@filter_options
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
@click.option("--yes", is_flag=True, help="Really delete (records are gone for good).")
@pass_ctx
@handle_errors
@bad_filters_are_usage_errors
@redis_errors_as_unavailable
def purge(
    obj: CliContext,
    ids: tuple[str, ...],
    all_: bool,
    subscriber: str | None,
    event_type: str | None,
    reason: str | None,
    since: float | None,
    until: float | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Delete records for good (needs --yes unless --dry-run)."""
    flt = _selection(ids, all_, make_filter(subscriber, event_type, reason, since, until), "purge")
    if not yes and not dry_run:
        raise click.UsageError("purge deletes records for good: add --yes (or try --dry-run)")
    store = store_of(obj)
    if flt is None:
        done = store.purge(*ids, dry_run=dry_run)
    else:
        total = store.count(flt) if sys.stderr.isatty() and not dry_run else 0
        with progress(total, "purging", not obj.as_json) as bar:
            done = store.purge(flt=flt, dry_run=dry_run, progress=bar)
    verb = "would purge" if dry_run else "purged"
    obj.emit({"purged": done, "dry_run": dry_run}, f"{verb} {len(done)} record(s)")


@dlq.command()
@pass_ctx
@handle_errors
@redis_errors_as_unavailable
def stats(obj: CliContext) -> None:
    """Counts by subscriber and reason, and the oldest and newest failure."""
    data = store_of(obj).stats()
    lines = [
        f"total: {data['total']}  (oldest {iso(data['oldest'])}, newest {iso(data['newest'])})"
    ]
    lines += [f"  reason {k:<12} {v:>8}" for k, v in data["by_reason"].items()]
    lines += [f"  subscriber {k:<30} {v:>8}" for k, v in data["by_subscriber"].items()]
    obj.emit(data, "\n".join(lines))
