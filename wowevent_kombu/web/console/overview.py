"""The overview: every subscriber's health, rate, latency, backlog and dead letters; live workers.

The page holds a region that ``console.js`` refreshes from :func:`overview_table` every few
seconds, so an on-call person can leave it open.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from wowevent_kombu.web.console.render import ConsoleRoute, render
from wowevent_kombu.web.console.session import PREFIX, Viewer
from wowevent_kombu.web.context import context_of

__all__ = ["REFRESH_SECONDS", "router"]

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

REFRESH_SECONDS = 5


def _snapshot(request: Request) -> dict[str, Any]:
    status = context_of(request).reader.snapshot()
    dead = sum(s.dlq_size or 0 for s in status.subscribers)
    return {"status": status, "dead_total": dead}


@router.get("/")
def overview(request: Request, session: Viewer) -> Response:
    """The overview page."""
    return render(
        request, "overview.html", section="overview", refresh=REFRESH_SECONDS,
        **_snapshot(request),
    )  # fmt: skip


@router.get("/overview/table")
def overview_table(request: Request, session: Viewer) -> Response:
    """The refreshed part of the overview (an HTML fragment)."""
    return render(request, "_overview_table.html", **_snapshot(request))
