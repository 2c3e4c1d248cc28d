"""``/admin/dlq``: list, inspect, retry and purge dead letters (the CLI's ``wowevent dlq``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.concurrency import run_in_threadpool

from wowevent_kombu.deadletters.record import DeadLetter, DeadLetterFilter
from wowevent_kombu.web.api.access import AdminAccess, ReadAccess
from wowevent_kombu.web.context import context_of
from wowevent_kombu.web.errors import ApiError
from wowevent_kombu.web.models import (
    ERROR_RESPONSES,
    EVENT_TYPE,
    SUBSCRIBER,
    BulkResult,
    DeadLetterPage,
    DeadLetterRecord,
    DeadLetterSelection,
    Reason,
)

__all__ = ["router", "summary"]

router = APIRouter(prefix="/admin/dlq", tags=["dead letters"], responses=ERROR_RESPONSES)

Subscriber = Annotated[str | None, Query(min_length=1, max_length=200, pattern=SUBSCRIBER)]
EventType = Annotated[str | None, Query(min_length=1, max_length=255, pattern=EVENT_TYPE)]
Time = Annotated[
    datetime | float | None,
    Query(description="ISO 8601 time with a timezone, or epoch seconds"),
]


def summary(record: DeadLetter) -> dict[str, Any]:
    """A record as the listing shows it."""
    return {
        "id": record.id,
        "subscriber": record.subscriber,
        "event_id": record.event_id,
        "event_type": record.event_type,
        "reason": record.reason,
        "error": record.error,
        "attempts": len(record.attempts),
        "first_failure": record.first_failure,
        "last_failure": record.last_failure,
        "replayed": record.replayed,
    }


def _aware(value: datetime | float | None, name: str) -> datetime | float | None:
    if isinstance(value, datetime) and value.tzinfo is None:
        raise ApiError(400, f"{name} needs a timezone (e.g. 2026-12-03T10:00:00Z)")
    return value


@router.get("", response_model=DeadLetterPage, dependencies=[ReadAccess])
def list_dead_letters(
    request: Request,
    subscriber: Subscriber = None,
    type: EventType = None,
    reason: Reason | None = None,
    since: Time = None,
    until: Time = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
) -> dict[str, Any]:
    """Records matching every given filter, oldest last failure first, a page at a time."""
    page = context_of(request).bus.dead_letters.list(
        subscriber=subscriber, type=type, reason=reason, since=_aware(since, "since"),
        until=_aware(until, "until"), limit=limit, cursor=cursor,
    )  # fmt: skip
    return {"records": [summary(r) for r in page.records], "cursor": page.cursor}


@router.get("/stats", dependencies=[ReadAccess])
def dead_letter_stats(request: Request) -> dict[str, Any]:
    """Totals by subscriber and by reason; the oldest and newest failure times."""
    return context_of(request).bus.dead_letters.stats()


@router.get("/{record_id}", response_model=DeadLetterRecord, dependencies=[ReadAccess])
def get_dead_letter(request: Request, record_id: str) -> dict[str, Any]:
    """One record with the event as delivered and every attempt's traceback."""
    record = context_of(request).bus.dead_letters.get(record_id)
    return {
        **summary(record),
        "event": record.event,
        "attempt_details": [a.to_dict() for a in record.attempts],
    }


@router.post("/{record_id}/retry", response_model=BulkResult, dependencies=[AdminAccess])
def retry_dead_letter(request: Request, record_id: str) -> dict[str, Any]:
    """Re-drive one record to its own subscriber, as a fresh task with fresh retries."""
    ids = context_of(request).bus.dead_letters.retry(record_id)
    return {"ids": ids, "count": len(ids), "dry_run": False}


@router.delete("/{record_id}", response_model=BulkResult, dependencies=[AdminAccess])
def purge_dead_letter(request: Request, record_id: str) -> dict[str, Any]:
    """Delete one record."""
    ids = context_of(request).bus.dead_letters.purge(record_id)
    return {"ids": ids, "count": len(ids), "dry_run": False}


def selection_filter(body: DeadLetterSelection) -> DeadLetterFilter | None:
    """The filter of a bulk body; ``None`` when it names ids.

    Raises:
        ApiError: neither ids nor a filter nor ``all``, or ids together with a filter.
    """
    given = body.filter.model_dump(exclude_none=True) if body.filter is not None else {}
    if body.ids is not None:
        if given or body.all:
            raise ApiError(400, "give record ids or a filter (or all), not both")
        return None
    if not given and not body.all:
        raise ApiError(
            400,
            'name the records: "ids", a non-empty "filter", or "all": true to take every record',
        )
    return DeadLetterFilter(**given)


@router.post("/retry", response_model=BulkResult, dependencies=[AdminAccess])
async def retry_dead_letters(request: Request, body: DeadLetterSelection) -> dict[str, Any]:
    """Re-drive records by id or by filter, each to its own subscriber only."""
    store = context_of(request).bus.dead_letters
    flt = selection_filter(body)
    if flt is None:
        ids = await run_in_threadpool(store.retry, *(body.ids or ()), dry_run=body.dry_run)
    else:
        ids = await run_in_threadpool(store.retry_all, flt, dry_run=body.dry_run)
    return {"ids": ids, "count": len(ids), "dry_run": body.dry_run}


@router.post("/purge", response_model=BulkResult, dependencies=[AdminAccess])
async def purge_dead_letters(request: Request, body: DeadLetterSelection) -> dict[str, Any]:
    """Delete records by id or by filter."""
    store = context_of(request).bus.dead_letters
    flt = selection_filter(body)
    if flt is None:
        ids = await run_in_threadpool(store.purge, *(body.ids or ()), dry_run=body.dry_run)
    else:
        ids = await run_in_threadpool(store.purge, flt=flt, dry_run=body.dry_run)
    return {"ids": ids, "count": len(ids), "dry_run": body.dry_run}
