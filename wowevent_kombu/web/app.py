"""The ASGI application of ``wowevent serve``: probes, the admin API and the operator console.

FastAPI (on Starlette) carries it: the admin API's bodies and answers are typed models, so
requests are validated with errors that name the field and ``/openapi.json`` describes every
JSON route from the same definitions the code runs. The console is server-rendered Jinja2 on
the same app, with its assets in the package.

Routes that show event payloads or tracebacks, or change anything, exist only when an admin
token is configured; the probes and ``/metrics`` are always there.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from wowevent_kombu.log.replayruns import ReplayRuns
from wowevent_kombu.web import probes
from wowevent_kombu.web.api import breakers, catalog, deadletters, eventlog, replays
from wowevent_kombu.web.auth import Tokens
from wowevent_kombu.web.context import WebContext
from wowevent_kombu.web.errors import install_error_handlers
from wowevent_kombu.web.guard import Guard
from wowevent_kombu.web.runner import ReplayRunner
from wowevent_kombu.web.sessions import SessionSigner

if TYPE_CHECKING:
    from wowevent_kombu.bus import EventBus
    from wowevent_kombu.observability.status import ClusterReader
    from wowevent_kombu.schemas.registry import SchemaRegistry

__all__ = ["create_app"]

log = logging.getLogger(__name__)

VERSION = "1"


def create_app(
    bus: EventBus,
    reader: ClusterReader,
    registry: CollectorRegistry,
    *,
    tokens: Tokens | None = None,
    schemas: SchemaRegistry | None = None,
    session_secret: str | None = None,
) -> FastAPI:
    """The service of one bus.

    Args:
        bus: The bus served.
        reader: Its cluster view.
        registry: What ``/metrics`` serves.
        tokens: Admin and read-only tokens; without an admin token, the admin API and the
            console are off.
        schemas: The schema registry shown and checked by ``/admin/schemas``.
        session_secret: Signs console sessions; every replica needs the same one.
    """
    tokens = tokens or Tokens()
    client = reader.client
    ctx = WebContext(
        bus=bus, reader=reader, registry=registry, tokens=tokens,
        signer=SessionSigner(tokens, session_secret), schemas=schemas,
        runs=ReplayRuns(client, bus.exchange), runner=ReplayRunner(bus),
    )  # fmt: skip

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # Replays started here stop after their batch, recorded as interrupted (resumable).
        ctx.runner.stop_all(ctx.runs.request_stop)

    app = FastAPI(
        title="wowevent",
        version=VERSION,
        summary="Probes, metrics and the admin API of a wowevent_kombu event bus",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.wowevent = ctx
    install_error_handlers(app)
    app.include_router(probes.router)
    if tokens.enabled:
        for router in (deadletters.router, replays.router, eventlog.router, catalog.router):
            app.include_router(router)
        app.include_router(breakers.router)
        from wowevent_kombu.web.console.pages import mount_console

        mount_console(app)
    app.add_middleware(Guard)
    return app
