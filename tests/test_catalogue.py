"""The AsyncAPI 3.0 catalogue, validated against the official AsyncAPI 3.0.0 JSON Schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from click.testing import CliRunner
from jsonschema import Draft7Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from wowevent_kombu import EventBus, EventSchema, SchemaRegistry
from wowevent_kombu.cli import cli
from wowevent_kombu.schemas.catalogue import asyncapi_document

SPEC = Path(__file__).parent / "data" / "asyncapi-3.0.0.json"

V1 = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}},
    "required": ["order_id"],
    "additionalProperties": False,
}
V2 = {**V1, "properties": {**V1["properties"], "amount": {"type": "number"}}}


def spec_errors(document: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks the official AsyncAPI 3.0.0 schema (none: valid)."""
    spec = json.loads(SPEC.read_text())
    # The bundle holds each definition under its own $id: resolve $refs within the file.
    resources = [(spec["$id"], Resource.from_contents(spec, default_specification=DRAFT7))]
    resources += [
        (d["$id"], Resource.from_contents(d, default_specification=DRAFT7))
        for d in spec["definitions"].values()
        if "$id" in d
    ]
    validator = Draft7Validator(spec, registry=Registry().with_resources(resources))
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    registry = SchemaRegistry.from_url(redis_url, namespace=exchange, refresh_interval=0)
    registry.register(EventSchema("order.created", "1.0.0", V1))
    registry.register(EventSchema("order.created", "1.1.0", V2))
    registry.register(EventSchema("payment.failed", "1.0.0", {"type": "object"}))
    bus = EventBus(Celery("cat", broker=redis_url, set_as_current=False), exchange=exchange,
                   schemas=registry)  # fmt: skip
    bus.subscriber("order.*", name="billing")(lambda event: None)
    bus.subscriber(["#"], name="audit")(lambda event: None)
    bus.subscriber("refund.*", name="refunds")(lambda event: None)
    yield bus
    bus.close()
    registry.close()


def test_the_catalogue_validates_and_describes_types_versions_and_subscribers(
    bus: EventBus, exchange: str
) -> None:
    doc = asyncapi_document(bus)
    assert spec_errors(doc) == []
    assert doc["asyncapi"] == "3.0.0"
    order = doc["channels"]["order.created"]
    assert order["address"] == "order.created"
    assert order["bindings"]["amqp"]["exchange"] == {
        "name": exchange, "type": "topic", "durable": True, "autoDelete": False,
    }  # fmt: skip
    assert sorted(order["messages"]) == ["order.created.v1.0.0", "order.created.v1.1.0"]
    message = doc["components"]["messages"]["order.created.v1.1.0"]
    assert message["payload"] == V2
    headers = message["headers"]["properties"]
    assert headers["type"]["const"] == "order.created"
    assert headers["schemaversion"]["const"] == "1.1.0"
    assert {"specversion", "id", "source", "traceparent"} <= set(headers)
    ops = doc["operations"]
    receivers = {
        (op["x-wowevent-subscriber"], op["channel"]["$ref"])
        for op in ops.values() if op["action"] == "receive"
    }  # fmt: skip
    assert receivers == {
        ("billing", "#/channels/order.created"),
        ("audit", "#/channels/order.created"),
        ("audit", "#/channels/payment.failed"),
        ("refunds", "#/channels/pattern.refund._"),
    }
    assert doc["channels"]["pattern.refund._"]["address"] == "refund.*"
    assert ops["billing.receive.order.created"]["x-wowevent-patterns"] == ["order.*"]
    assert ops["billing.receive.order.created"]["x-wowevent-queue"] == f"{exchange}.billing"
    assert ops["publish.order.created"]["action"] == "send"
    assert len(ops["publish.order.created"]["messages"]) == 2


def test_a_broken_document_is_caught_by_the_validator(bus: EventBus) -> None:
    doc = asyncapi_document(bus)
    doc["operations"]["publish.order.created"]["action"] = "publish"  # AsyncAPI 2 wording
    assert spec_errors(doc)


def test_schemas_asyncapi_command_writes_the_document(
    bus: EventBus, redis_url: str, exchange: str, tmp_path: Path
) -> None:
    bus.declare()  # the CLI without -A sees the subscribers bound in Redis
    out = tmp_path / "asyncapi.json"
    args = ["--broker", redis_url, "--exchange", exchange, "schemas", "asyncapi", "-o", str(out)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "3 channel(s), 3 message(s)" in result.output
    doc = json.loads(out.read_text())
    assert spec_errors(doc) == []
    assert "billing.receive.order.created" in doc["operations"]


def test_the_service_publishes_the_catalogue_at_asyncapi_json(bus: EventBus) -> None:
    from tests.web.live import call, live_service

    bus.declare()
    with live_service(bus, schemas=bus.schemas) as address:
        status, headers, document = call(address, "GET", "/asyncapi.json")
        assert call(address, "HEAD", "/asyncapi.json")[0] == 200
    assert status == 200 and headers["content-type"] == "application/json"
    assert spec_errors(document) == []
    assert document["asyncapi"].startswith("3.")
    assert len(document["operations"]) >= 3  # every bound subscriber, no token needed
