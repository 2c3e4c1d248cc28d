"""Replays: choose subscribers and a selection, preview it as a dry run, start it, follow it.

The preview is the admin API's (``web.api.replays.preview``): how many events the selection
holds, by type, and how many deliveries each chosen subscriber would get. A replay started here
runs in the service's :class:`~wowevent_kombu.web.runner.ReplayRunner`; its page follows the
run's Redis record, so it shows runs started by any replica or by the CLI too.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from wowevent_kombu.core.errors import WowEventError
from wowevent_kombu.web.api.replays import preview
from wowevent_kombu.web.console.fields import as_position, patterns, text
from wowevent_kombu.web.console.render import ConsoleRoute, flash_to, render
from wowevent_kombu.web.console.session import PREFIX, Changing, Posted, Viewer
from wowevent_kombu.web.context import context_of
from wowevent_kombu.web.models import ReplayBody

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

RUNS_SHOWN = 100
PROGRESS_SECONDS = 1
Field = Annotated[str | None, Query(max_length=255)]


@dataclasses.dataclass(frozen=True)
class Choice:
    """A replay's subscribers and selection as typed into the form."""

    subscribers: tuple[str, ...] = ()
    since: str | None = None
    until: str | None = None
    types: str | None = None
    correlation_id: str | None = None
    speed: str | None = None
    force: bool = False

    @classmethod
    def posted(cls, posted: Posted) -> Choice:
        """The choice a start form carried."""
        return cls(
            tuple(posted.values("subscribers"))[:200], text(posted.value("since")),
            text(posted.value("until")), text(posted.value("types")),
            text(posted.value("correlation_id")), text(posted.value("speed")),
            posted.value("force") == "on",
        )  # fmt: skip

    def body(self) -> ReplayBody:
        """The admin API's replay body.

        Raises:
            WowEventError: no subscriber chosen, or a time that is not a time.
            pydantic.ValidationError: a value out of the API's bounds.
        """
        if not self.subscribers:
            raise WowEventError("Choose at least one subscriber to replay to.")
        return ReplayBody(
            subscribers=list(self.subscribers), since=as_position(self.since),
            until=as_position(self.until), types=patterns(self.types) or None,
            correlation_id=self.correlation_id, speed=self.speed or "instant", force=self.force,
        )  # fmt: skip


def _problem(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        return f"{where}: {first.get('msg', 'invalid')}"
    return str(exc)


@router.get("/replay")
def replay_form(
    request: Request,
    session: Viewer,
    subscribers: Annotated[list[str] | None, Query(max_length=200)] = None,
    since: Field = None,
    until: Field = None,
    types: Field = None,
    correlation_id: Field = None,
    speed: Field = None,
    force: Field = None,
    action: Field = None,
) -> Response:
    """The form; with ``action=preview``, also what the replay would do (a dry run)."""
    ctx = context_of(request)
    choice = Choice(
        tuple(s for s in subscribers or () if s), text(since), text(until), text(types),
        text(correlation_id), text(speed), force == "on",
    )  # fmt: skip
    result: dict[str, Any] | None = None
    problem = None
    if action == "preview":
        try:
            result = preview(ctx, choice.body())
        except (WowEventError, pydantic.ValidationError) as exc:
            problem = _problem(exc)
    return render(
        request, "replay.html", 400 if problem else 200, section="replay", choice=choice,
        bound=ctx.bus.bindings(), result=result, problem=problem,
    )  # fmt: skip


@router.post("/replay/start")
async def start(request: Request, posted: Changing) -> Response:
    """Start the replay in the background and follow it on its page."""
    ctx = context_of(request)
    choice = Choice.posted(posted)
    try:
        body = choice.body()
        arguments = {
            "subscribers": body.subscribers, "since": body.since, "until": body.until,
            "types": body.types, "correlation_id": body.correlation_id, "speed": body.speed,
            "force": body.force,
        }  # fmt: skip
        report = await run_in_threadpool(ctx.runner.start, **arguments)
    except (WowEventError, pydantic.ValidationError) as exc:
        return render(
            request, "replay.html", 400, section="replay", choice=choice,
            bound=ctx.bus.bindings(), result=None, problem=_problem(exc),
        )  # fmt: skip
    message = f"Replay {report.replay_id} started."
    return flash_to(f"{PREFIX}/replays/{report.replay_id}", posted.session, message)


@router.get("/replays")
def runs(request: Request, session: Viewer) -> Response:
    """Recorded replays, newest first."""
    found = context_of(request).runs.list(limit=RUNS_SHOWN)
    return render(request, "replays.html", section="replays", runs=found)


@router.get("/replays/{replay_id}")
def run_page(request: Request, session: Viewer, replay_id: str) -> Response:
    """One replay: its selection, and its progress refreshed while it runs."""
    run = context_of(request).runs.get(replay_id)
    return render(
        request, "run.html", section="replays", run=run, refresh=PROGRESS_SECONDS
    )  # fmt: skip


@router.get("/replays/{replay_id}/progress")
def run_progress(request: Request, session: Viewer, replay_id: str) -> Response:
    """The refreshed part of a replay's page (an HTML fragment)."""
    run = context_of(request).runs.get(replay_id)
    return render(request, "_run_progress.html", run=run)


@router.post("/replays/{replay_id}/interrupt")
def interrupt(request: Request, posted: Changing, replay_id: str) -> Response:
    """Ask the replay to stop after its current batch (resumable later)."""
    run = context_of(request).runs.request_stop(replay_id)
    message = (
        f"Replay {replay_id} will stop after its current batch."
        if run.stop_requested
        else f"Replay {replay_id} is not running ({run.report.status}); nothing to interrupt."
    )
    return flash_to(f"{PREFIX}/replays/{replay_id}", posted.session, message)


@router.post("/replays/{replay_id}/resume")
async def resume(request: Request, posted: Changing, replay_id: str) -> Response:
    """Resume an interrupted or failed replay after its last committed batch."""
    ctx = context_of(request)
    run = await run_in_threadpool(ctx.runs.get, replay_id)
    if run.report.status == "running" and not run.stop_requested:
        message = f"Replay {replay_id} is running; interrupt it before resuming it."
    else:
        await run_in_threadpool(ctx.runner.start, subscribers=None, resume=replay_id)
        message = f"Replay {replay_id} resumed."
    return flash_to(f"{PREFIX}/replays/{replay_id}", posted.session, message)
