"""``/admin/replays``: preview, start, list, follow, interrupt and resume replays."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from wowevent_kombu.core.matcher import TopicMatcher
from wowevent_kombu.web.api.access import AdminAccess, ReadAccess
from wowevent_kombu.web.context import WebContext, context_of
from wowevent_kombu.web.errors import ApiError
from wowevent_kombu.web.models import ERROR_RESPONSES, ReplayBody, ReplayPreview, ReplayRun

__all__ = ["preview", "router"]

router = APIRouter(prefix="/admin/replays", tags=["replays"], responses=ERROR_RESPONSES)

PREVIEW_TYPES = 200
"""Distinct event types a preview counts before it stops naming new ones."""


def _arguments(body: ReplayBody) -> dict[str, Any]:
    return {
        "subscribers": body.subscribers, "since": body.since, "until": body.until,
        "types": body.types or None, "correlation_id": body.correlation_id,
        "source": body.source, "speed": body.speed, "force": body.force,
    }  # fmt: skip


def preview(ctx: WebContext, body: ReplayBody) -> dict[str, Any]:
    """A dry run of ``body``, with the selected events counted by type."""
    report = ctx.bus.replay(**_arguments(body), dry_run=True)
    chosen = ctx.bus.log.select(
        since=body.since, until=body.until, types=body.types or None,
        correlation_id=body.correlation_id, source=body.source,
    )  # fmt: skip
    bound = ctx.bus.bindings()
    matcher = TopicMatcher((p, name) for name in body.subscribers for p in bound.get(name, ()))
    types: dict[str, int] = {}
    truncated = False
    for raw in ctx.bus.log.scan(chosen):
        if not body.force and not matcher.match(raw.type):
            continue
        if raw.type in types or len(types) < PREVIEW_TYPES:
            types[raw.type] = types.get(raw.type, 0) + 1
        else:
            truncated = True
    return {
        "scanned": report.scanned, "skipped": report.skipped, "delivered": report.delivered,
        "total_delivered": report.total_delivered,
        "types": dict(sorted(types.items(), key=lambda kv: (-kv[1], kv[0]))),
        "types_truncated": truncated,
    }  # fmt: skip


@router.post(
    "/preview", response_model=ReplayPreview, dependencies=[ReadAccess],
    summary="Count what a replay would deliver (a dry run; nothing is sent or recorded)",
)  # fmt: skip
async def preview_replay(request: Request, body: ReplayBody) -> dict[str, Any]:
    """How many events the selection holds, by type, and how many each subscriber would get."""
    return await run_in_threadpool(preview, context_of(request), body)


@router.post("", response_model=ReplayRun, status_code=202, dependencies=[AdminAccess])
async def start_replay(request: Request, response: Response, body: ReplayBody) -> dict[str, Any]:
    """Start a replay in the background; its id and first progress (a dry run: its report).

    Follow it at ``/admin/replays/{replay_id}``.
    """
    ctx = context_of(request)
    if body.dry_run:
        report = await run_in_threadpool(lambda: ctx.bus.replay(**_arguments(body), dry_run=True))
        response.status_code = 200
        return report.to_dict()
    report = await run_in_threadpool(ctx.runner.start, **_arguments(body))
    response.headers["Location"] = f"/admin/replays/{report.replay_id}"
    return ctx.runs.get(report.replay_id).to_dict()


@router.get("", response_model=list[ReplayRun], dependencies=[ReadAccess])
def list_replays(
    request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    """Recorded replays, newest first (records expire with the log's retention)."""
    return [run.to_dict() for run in context_of(request).runs.list(limit=limit)]


@router.get("/{replay_id}", response_model=ReplayRun, dependencies=[ReadAccess])
def get_replay(request: Request, replay_id: str) -> dict[str, Any]:
    """One replay's selection, status and progress."""
    return context_of(request).runs.get(replay_id).to_dict()


@router.post("/{replay_id}/interrupt", response_model=ReplayRun, dependencies=[AdminAccess])
def interrupt_replay(request: Request, replay_id: str) -> dict[str, Any]:
    """Ask a running replay to stop after its current batch (wherever it runs).

    It then reads ``interrupted`` and resumes where it stopped.
    """
    return context_of(request).runs.request_stop(replay_id).to_dict()


@router.post(
    "/{replay_id}/resume", response_model=ReplayRun, status_code=202, dependencies=[AdminAccess]
)
async def resume_replay(request: Request, replay_id: str) -> dict[str, Any]:
    """Resume an interrupted or failed replay after its last committed batch."""
    ctx = context_of(request)
    run = ctx.runs.get(replay_id)  # 404 before a thread is started
    if run.report.status == "running" and not run.stop_requested:
        raise ApiError(409, f"replay {replay_id} is running; interrupt it before resuming it")
    await run_in_threadpool(ctx.runner.start, subscribers=None, resume=replay_id)
    return ctx.runs.get(replay_id).to_dict()
