"""``/admin/breakers``: the subscribers' circuit breakers; force one open or close it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel

from wowevent_kombu.web.api.access import AdminAccess, ReadAccess
from wowevent_kombu.web.context import context_of
from wowevent_kombu.web.models import ERROR_RESPONSES, SUBSCRIBER

__all__ = ["Breaker", "router"]

router = APIRouter(prefix="/admin/breakers", tags=["circuit breakers"], responses=ERROR_RESPONSES)

Subscriber = Annotated[str, Path(min_length=1, max_length=200, pattern=SUBSCRIBER)]


class Breaker(BaseModel):
    """One subscriber's circuit breaker (times in epoch seconds)."""

    subscriber: str
    state: str
    changed_at: float | None
    opened_at: float | None
    until: float | None
    reopens: int
    forced: bool
    reason: str
    transitions: dict[str, int]


@router.get("", response_model=list[Breaker], dependencies=[ReadAccess])
def list_breakers(request: Request) -> list[dict[str, Any]]:
    """Every breaker: configured on the bus's subscribers, or with state in Redis."""
    return [s.as_dict() for s in context_of(request).bus.breakers.states()]


@router.post("/{subscriber}/open", response_model=Breaker, dependencies=[AdminAccess])
def open_breaker(request: Request, subscriber: Subscriber) -> dict[str, Any]:
    """Force the breaker open: every worker stops consuming the queue until it is closed."""
    return context_of(request).bus.breakers.force(subscriber, "open").as_dict()


@router.post("/{subscriber}/close", response_model=Breaker, dependencies=[AdminAccess])
def close_breaker(request: Request, subscriber: Subscriber) -> dict[str, Any]:
    """Close the breaker: every worker consumes the queue again."""
    return context_of(request).bus.breakers.force(subscriber, "close").as_dict()
