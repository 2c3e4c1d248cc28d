"""A publisher and a real worker process share the schema registry in Redis."""

from __future__ import annotations

import json

import pytest
from celery import Celery

from tests.conftest import wait_for
from wowevent_kombu import EventBus, EventSchema, SchemaRegistry

pytestmark = pytest.mark.integration

V1 = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}},
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}
V11 = {**V1, "properties": {**V1["properties"], "note": {"type": "string"}}}


def entries(client, key):
    return [json.loads(raw) for raw in client.lrange(key, 0, -1)]


@pytest.fixture
def registry(redis_url, exchange):
    reg = SchemaRegistry.from_url(redis_url, namespace=exchange)
    yield reg
    reg.close()


@pytest.fixture
def buses(redis_url, exchange, registry):
    """A validating publisher, and a raw one that bypasses validation like a foreign client."""
    app = Celery("publisher", broker=redis_url, set_as_current=False)
    validating = EventBus(app, exchange=exchange, schemas=registry)
    raw = EventBus(app, exchange=exchange)
    yield validating, raw
    validating.close()
    raw.close()


def test_version_registered_after_worker_start_is_used_without_restart(
    start_worker, buses, registry, redis_client, exchange
):
    publisher, raw = buses
    registry.register(EventSchema("order.created", "1.0.0", V1))
    start_worker("tests.apps.schemashop")
    first = publisher.publish("order.created", {"order_id": "o-1", "amount": 1})
    wait_for(lambda: len(entries(redis_client, f"{exchange}:seen")) == 1, message="first event")

    # Registered while the worker runs; 'note' is refused by 1.0.0 and allowed by 1.1.0.
    registry.register(EventSchema("order.created", "1.1.0", V11), compatibility="backward")
    pinned = publisher.publish("order.created", {"order_id": "o-2", "amount": 2, "note": "x"})
    # A foreign publisher sends no schema version: the worker checks the latest it can see.
    bare = raw.publish("order.created", {"order_id": "o-3", "amount": 3, "note": "y"})
    wait_for(lambda: len(entries(redis_client, f"{exchange}:seen")) == 3, message="all events")

    seen = {e["id"]: e for e in entries(redis_client, f"{exchange}:seen")}
    assert seen[first.id]["schema_version"] == "1.0.0"
    assert seen[pinned.id]["schema_version"] == "1.1.0"
    assert seen[bare.id]["schema_version"] is None  # validated against 1.1.0 by the worker
    assert entries(redis_client, f"{exchange}:failed") == []


def test_invalid_event_at_consume_fails_once_with_violations(
    start_worker, buses, registry, redis_client, exchange
):
    _, raw = buses
    registry.register(EventSchema("order.created", "1.0.0", V1))
    worker = start_worker("tests.apps.schemashop")
    bad = raw.publish(
        "order.created", {"order_id": "o-1", "amount": -5, "extra": 1}, schema_version="1.0.0"
    )
    unknown = raw.publish("order.created", {"order_id": "o-2", "amount": 1}, schema_version="9.0.0")
    sentinel = raw.publish("order.created", {"order_id": "o-3", "amount": 1})
    # The sentinel is behind both in the same queue: once it ran, a retry would have been queued.
    wait_for(lambda: entries(redis_client, f"{exchange}:seen"), message="the sentinel")

    assert [e["id"] for e in entries(redis_client, f"{exchange}:seen")] == [sentinel.id]
    failed = {e["id"]: e for e in entries(redis_client, f"{exchange}:failed")}
    assert set(failed) == {bad.id, unknown.id}
    assert failed[bad.id]["error"] == "EventValidationError"
    assert [(v["path"], v["keyword"]) for v in failed[bad.id]["violations"]] == [
        ("$", "additionalProperties"),
        ("$.amount", "minimum"),
    ]
    assert failed[unknown.id]["violations"] == []
    assert entries(redis_client, f"{exchange}:retried") == []
    log = worker.text()
    assert f"refused event {bad.id} of type order.created (schema version 1.0.0)" in log
    assert "$.amount: -5 is less than the minimum of 0 [minimum]" in log
    assert "not registered" in log
