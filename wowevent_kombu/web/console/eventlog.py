"""The event log: find events by correlation id, type pattern or time range, and open one."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from wowevent_kombu.core.errors import InvalidPatternError, LogQueryError
from wowevent_kombu.log.eventlog import LogEntry
from wowevent_kombu.web.console.fields import as_position, patterns, query, text
from wowevent_kombu.web.console.render import ConsoleRoute, render
from wowevent_kombu.web.console.session import PREFIX, Refused, Viewer
from wowevent_kombu.web.context import context_of

__all__ = ["router"]

router = APIRouter(prefix=f"{PREFIX}/log", route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 50
Field = Annotated[str | None, Query(max_length=255)]


@router.get("")
def search(
    request: Request,
    session: Viewer,
    correlation_id: Field = None,
    types: Field = None,
    since: Field = None,
    until: Field = None,
    cursor: Field = None,
) -> Response:
    """Logged events matching every given filter, in publish order, a page at a time."""
    typed = {
        "correlation_id": text(correlation_id), "types": text(types), "since": text(since),
        "until": text(until),
    }  # fmt: skip
    entries: list[LogEntry] = []
    problem = None
    try:
        entries = context_of(request).bus.log.read(
            since=as_position(typed["since"]), until=as_position(typed["until"]),
            types=patterns(typed["types"]) or None, correlation_id=typed["correlation_id"],
            limit=PAGE_SIZE, cursor=text(cursor),
        )  # fmt: skip
    except (LogQueryError, InvalidPatternError) as exc:
        problem = str(exc)
    more = len(entries) == PAGE_SIZE
    return render(
        request, "eventlog.html", 400 if problem else 200, section="log", typed=typed,
        entries=entries, problem=problem,
        next_url=f"{PREFIX}/log{query(**typed, cursor=entries[-1].position)}" if more else None,
        first_url=f"{PREFIX}/log{query(**typed)}" if cursor else None,
    )  # fmt: skip


@router.get("/{event_id}")
def event_page(request: Request, session: Viewer, event_id: str) -> Response:
    """One logged event, as published."""
    entry = context_of(request).bus.log.get(event_id[:255])
    if entry is None:
        raise Refused(404, f"No event {event_id[:255]!r} is in the log (it may have expired).")
    return render(
        request, "event.html", section="log", entry=entry, document=entry.event.to_cloudevent()
    )  # fmt: skip
