"""``/health``, ``/ready``, ``/metrics`` and ``/status``: open to every caller, no payloads."""

from __future__ import annotations

from typing import Annotated, Any

import redis
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from wowevent_kombu.core.errors import PublishError
from wowevent_kombu.schemas.catalogue import asyncapi_document
from wowevent_kombu.web.context import context_of
from wowevent_kombu.web.models import ERROR_RESPONSES

__all__ = ["router"]

router = APIRouter(tags=["probes"])


class NotReady(BaseModel):
    """Why the service is not ready."""

    ready: bool
    reason: str


@router.get("/health")
def health() -> dict[str, str]:
    """The process answers (no dependency is checked: a liveness probe)."""
    return {"status": "ok"}


@router.get(
    "/ready",
    responses={503: {"model": NotReady, "description": "Not ready; the reason is given"}},
)
def ready(request: Request) -> Any:
    """Redis (and RabbitMQ, when it is the broker) answers and every subscriber is bound."""
    ctx = context_of(request)
    try:
        ctx.reader.client.ping()
    except redis.RedisError as exc:
        return JSONResponse({"ready": False, "reason": f"Redis does not answer: {exc}"}, 503)
    ping = getattr(ctx.bus.transport, "ping", None)
    if ping is not None:
        try:
            ping()
        except PublishError as exc:
            return JSONResponse({"ready": False, "reason": str(exc)}, 503)
    bound = ctx.reader.bindings()
    missing = []
    for sub in ctx.bus.subscribers.values():
        lacking = set(sub.patterns) - set(bound.get(sub.name, ()))
        if lacking:
            missing.append(f"{sub.name} ({', '.join(sorted(lacking))})")
    if missing:
        reason = f"not bound: {'; '.join(missing)}; run 'wowevent declare' or start a worker"
        return JSONResponse({"ready": False, "reason": reason}, 503)
    return {"ready": True, "bound_subscribers": len(bound)}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(request: Request) -> Response:
    """Prometheus text exposition: this process's metrics and the cluster gauges."""
    body = generate_latest(context_of(request).registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


@router.get("/status", responses={k: ERROR_RESPONSES[k] for k in (400, 503)})
def status(
    request: Request,
    window: Annotated[float | None, Query(ge=1, le=900, description="Seconds of history")] = None,
) -> dict[str, Any]:
    """The cluster snapshot: per-subscriber health, throughput, latency, backlog, DLQ size."""
    return context_of(request).reader.snapshot(window_seconds=window).as_dict()


@router.get("/asyncapi.json", tags=["catalogue"])
def asyncapi(request: Request) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the bus: its event types with every registered schema
    version, and the bound subscribers with their patterns (``wowevent schemas asyncapi``)."""
    ctx = context_of(request)
    return asyncapi_document(ctx.bus, registry=ctx.schemas, subscribers=ctx.reader.bindings())
