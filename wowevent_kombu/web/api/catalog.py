"""Subscribers, bindings, schemas and publishing: what the bus knows and how to add an event."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from wowevent_kombu.core.errors import IncompatibleSchemaError, SchemaError
from wowevent_kombu.schemas.compatibility import DEFAULT_MODE
from wowevent_kombu.schemas.registry import SchemaRegistry
from wowevent_kombu.schemas.schema import EventSchema
from wowevent_kombu.web.api.access import AdminAccess, ReadAccess
from wowevent_kombu.web.context import context_of
from wowevent_kombu.web.errors import ApiError
from wowevent_kombu.web.models import (
    ERROR_RESPONSES,
    EVENT_TYPE,
    PublishBody,
    SchemaCheckBody,
    SchemaCheckResult,
)

__all__ = ["router"]

PathEventType = Annotated[str, Path(min_length=1, max_length=255, pattern=EVENT_TYPE)]

router = APIRouter(prefix="/admin", tags=["bus"], responses=ERROR_RESPONSES)


@router.get("/bindings", dependencies=[ReadAccess])
def bindings(request: Request) -> dict[str, list[str]]:
    """Subscriber -> patterns as Redis holds them."""
    return context_of(request).reader.bindings()


@router.get("/subscribers", dependencies=[ReadAccess])
def subscribers(request: Request) -> list[dict[str, Any]]:
    """Every bound subscriber with its patterns, health, latency, backlog and DLQ size."""
    return [s.as_dict() for s in context_of(request).reader.snapshot().subscribers]


@router.post("/publish", status_code=201, dependencies=[AdminAccess])
def publish(request: Request, body: PublishBody) -> dict[str, Any]:
    """Publish one event; the CloudEvent as sent."""
    event = context_of(request).bus.publish(
        body.type, body.data, source=body.source, subject=body.subject, id=body.id,
        mandatory=body.mandatory,
    )  # fmt: skip
    return event.to_cloudevent()


def _registry(request: Request) -> SchemaRegistry:
    registry = context_of(request).schemas
    if registry is None:
        raise ApiError(404, "this service has no schema registry (the app's bus has none)")
    return registry


@router.get("/schemas", dependencies=[ReadAccess], tags=["schemas"])
def list_schemas(request: Request) -> dict[str, list[str]]:
    """Event type -> registered versions, oldest first."""
    registry = _registry(request)
    return {t: registry.versions(t) for t in registry.types()}


@router.get("/schemas/{event_type}", dependencies=[ReadAccess], tags=["schemas"])
def schema_history(request: Request, event_type: PathEventType) -> list[dict[str, Any]]:
    """Every registered version of one type, with its document and registration."""
    registry = _registry(request)
    history = registry.history(event_type)
    if not history:
        raise ApiError(404, f"no schema is registered for event type {event_type!r}")
    return [record.as_dict() for record in history]


@router.post(
    "/schemas/check", response_model=SchemaCheckResult, dependencies=[ReadAccess],
    tags=["schemas"],
)  # fmt: skip
def check_schema(request: Request, body: SchemaCheckBody) -> dict[str, Any]:
    """Whether a candidate version could be registered now; nothing is written."""
    registry = _registry(request)
    try:
        candidate = EventSchema(body.type, body.version, body.schema_)
        registry.check(candidate, compatibility=body.compatibility or DEFAULT_MODE)
    except IncompatibleSchemaError as exc:
        problems = [c.description for c in exc.changes] or [str(exc)]
        return {"type": body.type, "version": body.version, "compatible": False,
                "problems": problems}  # fmt: skip
    except SchemaError as exc:
        return {"type": body.type, "version": body.version, "compatible": False,
                "problems": [str(exc)]}  # fmt: skip
    return {"type": body.type, "version": body.version, "compatible": True, "problems": []}
