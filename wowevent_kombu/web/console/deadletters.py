"""Dead letters: filter and page through records, read one, retry and purge them.

Retrying re-drives each record to its own subscriber only (``bus.dead_letters.retry``), so
nothing else that received the event runs again. Purging, and anything applied to every
record matching a filter, first shows a confirmation page that says how many records it takes.
Each action ends on the listing with a message saying what was done.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from wowevent_kombu.core.errors import DeadLetterError, LogQueryError
from wowevent_kombu.deadletters.record import REASONS, DeadLetterFilter
from wowevent_kombu.web.api.deadletters import summary
from wowevent_kombu.web.console.fields import as_epoch, query, text
from wowevent_kombu.web.console.render import ConsoleRoute, flash_to, render
from wowevent_kombu.web.console.session import PREFIX, Changing, Posted, Refused, Viewer
from wowevent_kombu.web.context import context_of

__all__ = ["router"]

router = APIRouter(prefix=f"{PREFIX}/dlq", route_class=ConsoleRoute, include_in_schema=False)

PAGE_SIZE = 50
SHOWN_IDS = 10
"""Record ids a message or a confirmation names before it says "and N more"."""

Field = Annotated[str | None, Query(max_length=255)]


@dataclasses.dataclass(frozen=True)
class Filters:
    """The listing's filter as typed (kept as text to fill the form and the links again)."""

    subscriber: str | None = None
    type: str | None = None
    reason: str | None = None
    since: str | None = None
    until: str | None = None

    @classmethod
    def posted(cls, posted: Posted) -> Filters:
        """The filter a form carried in hidden fields."""
        return cls(*(text(posted.value(f.name)) for f in dataclasses.fields(cls)))

    def as_filter(self) -> DeadLetterFilter:
        """The store's filter.

        Raises:
            InvalidFilterError: an unknown reason, or since after until.
            LogQueryError: a time that is not a time.
        """
        return DeadLetterFilter(
            self.subscriber, self.type, self.reason, as_epoch(self.since), as_epoch(self.until)
        )

    def fields(self) -> dict[str, str | None]:
        """Name -> typed value."""
        return dataclasses.asdict(self)

    @property
    def empty(self) -> bool:
        """Whether no field is set (a bulk action would take every record)."""
        return not any(self.fields().values())


def _listing_url(filters: Filters) -> str:
    return f"{PREFIX}/dlq{query(**filters.fields())}"


def _named(ids: list[str]) -> str:
    shown = ", ".join(ids[:SHOWN_IDS])
    more = len(ids) - SHOWN_IDS
    return shown + (f" and {more} more" if more > 0 else "")


def _records(count: int) -> str:
    return f"{count} record" + ("" if count == 1 else "s")


@router.get("")
def listing(
    request: Request,
    session: Viewer,
    subscriber: Field = None,
    type: Field = None,
    reason: Field = None,
    since: Field = None,
    until: Field = None,
    cursor: Field = None,
) -> Response:
    """Records matching the filter, a page at a time, oldest last failure first."""
    ctx = context_of(request)
    filters = Filters(text(subscriber), text(type), text(reason), text(since), text(until))
    records: list[dict[str, Any]] = []
    next_cursor = None
    problem = None
    try:
        flt = filters.as_filter()
        page = ctx.bus.dead_letters.list(
            subscriber=flt.subscriber, type=flt.type, reason=flt.reason, since=flt.since,
            until=flt.until, limit=PAGE_SIZE, cursor=text(cursor),
        )  # fmt: skip
        records = [summary(r) for r in page.records]
        next_cursor = page.cursor
    except (DeadLetterError, LogQueryError) as exc:
        problem = str(exc)
    return render(
        request, "deadletters.html", 400 if problem else 200, section="dlq", filters=filters,
        records=records, problem=problem, reasons=REASONS, total=ctx.bus.dead_letters.count(),
        subscribers=sorted(ctx.reader.bindings()), here=_listing_url(filters),
        next_url=f"{PREFIX}/dlq{query(**filters.fields(), cursor=next_cursor)}"
        if next_cursor else None,
        first_url=_listing_url(filters) if cursor else None,
    )  # fmt: skip


@router.get("/{record_id}")
def record_page(request: Request, session: Viewer, record_id: str) -> Response:
    """One record: the event as delivered and every attempt's traceback."""
    record = context_of(request).bus.dead_letters.get(record_id[:255])
    return render(request, "record.html", section="dlq", record=record, info=summary(record))


def _back(posted: Posted) -> str:
    back = posted.value("back")
    if back and back.startswith(f"{PREFIX}/dlq") and "\\" not in back and "//" not in back:
        return back
    return f"{PREFIX}/dlq"


@router.post("/retry")
async def retry(request: Request, posted: Changing) -> Response:
    """Re-drive the chosen records (one or a selection) at once, each to its own subscriber."""
    ids = posted.values("id")
    if not ids:
        return flash_to(_back(posted), posted.session, "Choose at least one record to retry.")
    store = context_of(request).bus.dead_letters
    done = await run_in_threadpool(store.retry, *ids)
    message = f"Retried {_records(len(done))}: {_named(done)}."
    return flash_to(_back(posted), posted.session, message)


@router.post("/purge")
async def purge_confirm(request: Request, posted: Changing) -> Response:
    """Ask before deleting the chosen records."""
    ids = posted.values("id")
    if not ids:
        return flash_to(_back(posted), posted.session, "Choose at least one record to purge.")
    return render(
        request, "confirm.html", section="dlq", action="purge", ids=ids, filters=None,
        count=len(ids), named=_named(ids), back=_back(posted),
    )  # fmt: skip


@router.post("/matching")
async def matching_confirm(request: Request, posted: Changing) -> Response:
    """Ask before retrying or purging every record matching a filter; says how many."""
    action = _action(posted)
    filters = Filters.posted(posted)
    store = context_of(request).bus.dead_letters
    count = await run_in_threadpool(store.count, filters.as_filter())
    return render(
        request, "confirm.html", section="dlq", action=action, ids=[], filters=filters,
        count=count, named=None, back=_listing_url(filters),
    )  # fmt: skip


@router.post("/confirm")
async def confirmed(request: Request, posted: Changing) -> Response:
    """Do what the confirmation page showed; the message says how many records it took."""
    action = _action(posted)
    scope = posted.value("scope")
    store = context_of(request).bus.dead_letters
    if scope == "ids":
        ids = posted.values("id")
        if not ids:
            raise Refused(400, "The confirmation named no record; nothing was done.")
        run = store.retry if action == "retry" else store.purge
        done = await run_in_threadpool(run, *ids)
        back = _back(posted)
    elif scope == "matching":
        filters = Filters.posted(posted)
        flt = filters.as_filter()
        if action == "retry":
            done = await run_in_threadpool(store.retry_all, flt)
        else:
            done = await run_in_threadpool(lambda: store.purge(flt=flt))
        back = _listing_url(filters)
    else:
        raise Refused(400, "The confirmation says neither which records nor which filter.")
    verb = "Retried" if action == "retry" else "Purged"
    suffix = f": {_named(done)}." if done else "."
    return flash_to(back, posted.session, f"{verb} {_records(len(done))}{suffix}")


def _action(posted: Posted) -> str:
    action = posted.value("action")
    if action not in ("retry", "purge"):
        raise Refused(400, "Say what to do with the records: retry or purge.")
    return action
