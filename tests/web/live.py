"""A real uvicorn server of the service's app in a thread of the test process (real HTTP)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from prometheus_client import CollectorRegistry

from wowevent_kombu import EventBus, HealthRules, instrument
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.observability.collector import ClusterCollector
from wowevent_kombu.observability.status import ClusterReader
from wowevent_kombu.schemas.registry import SchemaRegistry
from wowevent_kombu.web.app import create_app
from wowevent_kombu.web.auth import Tokens
from wowevent_kombu.web.server import serving_in_thread

ADMIN = "admin-token-0123456789abcdef"
READ = "read-token-0123456789abcdef"


def make_bus(redis_url: str, exchange: str) -> EventBus:
    """A bus with two subscribers on order events."""
    bus = EventBus(Celery("svc", broker=redis_url, set_as_current=False), exchange=exchange)

    @bus.subscriber("order.*", name="billing")
    def billing(event: Any) -> None:
        return None

    @bus.subscriber("order.#", name="shipping")
    def shipping(event: Any) -> None:
        return None

    return bus


@contextmanager
def live_service(
    bus: EventBus, *, tokens: Tokens | None = None, schemas: SchemaRegistry | None = None
) -> Iterator[str]:
    """Serve ``bus`` on a free loopback port; yield ``host:port``."""
    registry = CollectorRegistry()
    if bus.metrics is None:
        instrument(bus, registry)
    reader = ClusterReader(make_client(bus.settings), bus.exchange, HealthRules())
    registry.register(ClusterCollector(reader))
    app = create_app(bus, reader, registry, tokens=tokens, schemas=schemas)
    with serving_in_thread(app) as address:
        yield address


def call(
    address: str,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request on a fresh connection; the status, headers and body (parsed when JSON)."""
    conn = http.client.HTTPConnection(address, timeout=10)
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    if payload is not None:
        sent.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=payload, headers=sent)
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    found = {k.lower(): v for k, v in reply.getheaders()}
    if found.get("content-type", "").startswith("application/json") and data:
        return reply.status, found, json.loads(data)
    return reply.status, found, data
