"""An async web service that publishes events, and the async subscriber that handles them.

The service (``uvicorn examples.fastapi_service:api``) takes orders over HTTP and publishes
``order.placed`` with ``await bus.apublish``, carrying the request's ``X-Correlation-ID`` (one is
made when the caller sends none) so every event of one request can be found together in the
log. The FastAPI lifespan closes the bus's async connections when the service stops.

The worker (``celery -A examples.fastapi_service worker``) runs ``fulfil``, an ``async def``
subscriber: the bus runs its coroutine on an event loop kept per pool process or thread.

Broker from ``WOWEVENT_BROKER_URL``, exchange from ``WOWEVENT_EXCHANGE``.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import redis.asyncio as aioredis
from celery import Celery
from fastapi import FastAPI, Header
from pydantic import BaseModel, Field

from wowevent_kombu import Event, EventBus

BROKER = os.environ.get("WOWEVENT_BROKER_URL", "redis://localhost:6379/0")

app = Celery("fastapi-shop", broker=BROKER, set_as_current=False)
app.conf.worker_prefetch_multiplier = 1
bus = EventBus(app, source="fastapi-shop")


class Order(BaseModel):
    """What a client posts."""

    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=1000)


@asynccontextmanager
async def lifespan(service: FastAPI) -> AsyncIterator[None]:
    """Close the bus's async connections when the service stops."""
    yield
    await bus.aclose()


api = FastAPI(title="fastapi-shop", lifespan=lifespan)


@api.post("/orders", status_code=202)
async def place_order(
    order: Order, x_correlation_id: Annotated[str | None, Header(max_length=128)] = None
) -> dict[str, str]:
    """Accept an order: publish ``order.placed``; the worker fulfils it."""
    correlation = x_correlation_id or uuid.uuid4().hex
    event = await bus.apublish(
        "order.placed", order.model_dump(), correlation_id=correlation, subject=order.sku
    )
    return {"event_id": event.id, "correlation_id": correlation}


_notes: dict[int, aioredis.Redis] = {}


@bus.subscriber("order.placed", name="fulfilment", time_limit=60, soft_time_limit=50)
async def fulfil(event: Event) -> None:
    """Fulfil an order (here: note it in Redis with an async client kept per event loop)."""
    loop = asyncio.get_running_loop()
    client = _notes.get(id(loop))
    if client is None:
        client = _notes[id(loop)] = aioredis.Redis.from_url(BROKER)
    note = {"event_id": event.id, "correlation_id": event.correlation_id, **event.data}
    await client.rpush(f"{bus.exchange}:fulfilled", json.dumps(note))
