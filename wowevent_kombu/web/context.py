"""What every route of the service works with: the bus, its stores, the tokens, the runner."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from fastapi import Request
from prometheus_client import CollectorRegistry

from wowevent_kombu.log.replayruns import ReplayRuns
from wowevent_kombu.web.auth import Tokens
from wowevent_kombu.web.runner import ReplayRunner
from wowevent_kombu.web.sessions import SessionSigner

if TYPE_CHECKING:
    from wowevent_kombu.bus import EventBus
    from wowevent_kombu.observability.status import ClusterReader
    from wowevent_kombu.schemas.registry import SchemaRegistry

__all__ = ["WebContext", "context_of"]


@dataclasses.dataclass
class WebContext:
    """One service's collaborators, made once and shared by every request.

    Attributes:
        bus: The bus served (its dead letters, log and replays).
        reader: The cluster view (health, backlog, throughput, workers).
        registry: What ``/metrics`` serves.
        tokens: The admin and read-only tokens.
        signer: Console session cookies.
        schemas: The schema registry, when the app has one.
        runs: Replay records in Redis.
        runner: Replays started by this process.
    """

    bus: EventBus
    reader: ClusterReader
    registry: CollectorRegistry
    tokens: Tokens
    signer: SessionSigner
    schemas: SchemaRegistry | None
    runs: ReplayRuns
    runner: ReplayRunner


def context_of(request: Request) -> WebContext:
    """The context of the app serving ``request``."""
    ctx = request.app.state.wowevent
    assert isinstance(ctx, WebContext)
    return ctx
