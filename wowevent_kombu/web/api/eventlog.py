"""``/admin/log``: read the persisted event log with ``bus.log.read``'s filters; get one event."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from wowevent_kombu.web.api.access import ReadAccess
from wowevent_kombu.web.context import context_of
from wowevent_kombu.web.errors import ApiError
from wowevent_kombu.web.models import ERROR_RESPONSES, LogEntry, LogPage, TopicPattern

__all__ = ["router"]

router = APIRouter(prefix="/admin/log", tags=["event log"], responses=ERROR_RESPONSES)

Bound = Annotated[
    str | None,
    Query(min_length=1, max_length=64, description="ISO 8601 time with a timezone, or a position"),
]
Text = Annotated[str | None, Query(min_length=1, max_length=255)]


@router.get("", response_model=LogPage, dependencies=[ReadAccess])
def read_log(
    request: Request,
    since: Bound = None,
    until: Bound = None,
    types: Annotated[list[TopicPattern] | None, Query(max_length=20)] = None,
    correlation_id: Text = None,
    causation_id: Text = None,
    source: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    subject: Annotated[str | None, Query(min_length=1, max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
) -> dict[str, Any]:
    """Logged events matching every given filter, in publish order, a page at a time.

    ``types`` may be repeated (``?types=order.*&types=payment.#``); an event matching any of
    the patterns is taken.
    """
    entries = context_of(request).bus.log.read(
        since=since, until=until, types=types, correlation_id=correlation_id,
        causation_id=causation_id, source=source, subject=subject, limit=limit, cursor=cursor,
    )  # fmt: skip
    more = len(entries) == limit
    return {
        "entries": [e.to_dict() for e in entries],
        "cursor": entries[-1].position if entries and more else None,
    }


@router.get("/events/{event_id}", response_model=LogEntry, dependencies=[ReadAccess])
def get_logged_event(request: Request, event_id: str) -> dict[str, Any]:
    """One logged event by its id."""
    entry = context_of(request).bus.log.get(event_id)
    if entry is None:
        raise ApiError(404, f"no event {event_id!r} is in the log (it may have expired)")
    return entry.to_dict()
