"""The schema registry and publish-time validation, against real Redis."""

from __future__ import annotations

import json

import pytest
from celery import Celery

from wowevent_kombu import (
    Event,
    EventBus,
    EventSchema,
    EventValidationError,
    IncompatibleSchemaError,
    InvalidEventError,
    InvalidSchemaError,
    SchemaConflictError,
    SchemaRegistry,
    UnknownSchemaError,
)
from wowevent_kombu.schemas.schema import CompiledSchema, SemVer

ORDER = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "format": "uuid"},
        "email": {"type": "string", "format": "email"},
        "amount": {"type": "number", "minimum": 0},
        "at": {"type": "string", "format": "date-time"},
    },
    "required": ["order_id", "amount"],
    "additionalProperties": False,
}
V11 = {**ORDER, "properties": {**ORDER["properties"], "note": {"type": "string"}}}
GOOD = {"order_id": "6f1b8a52-3c1e-4e4b-9a0e-7a1d2c3b4e5f", "email": "a@b.example", "amount": 3}


@pytest.fixture
def registry(redis_url, exchange):
    reg = SchemaRegistry.from_url(redis_url, namespace=exchange, refresh_interval=0)
    yield reg
    reg.close()


@pytest.fixture
def bus(redis_url, exchange, registry):
    app = Celery("t", broker=redis_url, set_as_current=False)
    bus = EventBus(app, exchange=exchange, schemas=registry)
    bus.transport.bind(f"{exchange}.billing", ["order.*"])
    yield bus
    bus.close()


# -- EventSchema: bad input is refused before anything is stored -------------------------------


@pytest.mark.parametrize(
    ("type_", "version", "document", "match"),
    [
        ("order..created", "1.0.0", ORDER, "not a valid event type"),
        ("order.*", "1.0.0", ORDER, "not a valid event type"),
        ("order.created", "1.0", ORDER, "not a semantic version"),
        ("order.created", "v1.0.0", ORDER, "not a semantic version"),
        ("order.created", "1.0.0", {"type": "thing"}, r"not a valid JSON Schema: at \$.type"),
        ("order.created", "1.0.0", {"minimum": "zero"}, "not a valid JSON Schema"),
        ("order.created", "1.0.0", ["not", "an", "object"], "must be a JSON object"),
        (
            "order.created",
            "1.0.0",
            {"$schema": "http://example.com/mine"},
            "not a JSON Schema draft",
        ),
        ("order.created", "1.0.0", {"const": float("nan")}, "not JSON"),
    ],
)
def test_bad_schemas_are_refused_on_construction(type_, version, document, match):
    with pytest.raises(InvalidSchemaError, match=match):
        EventSchema(type_, version, document)


def test_semver_precedence():
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-beta",
        "1.0.0-rc.1",
        "1.0.0",
        "1.2.0",
        "10.0.0",
    ]
    assert sorted(ordered, key=SemVer.parse) == ordered
    assert SemVer.parse("1.0.0+build.5") == SemVer.parse("1.0.0")


def test_declared_draft_is_honoured():
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#", "items": [{"type": "string"}]}
    compiled = CompiledSchema(EventSchema("list.made", "1.0.0", draft7))
    assert compiled.violations(["a", 1]) == []  # draft 7: array `items` checks positions only
    assert [v.path for v in compiled.violations([1])] == ["$[0]"]


@pytest.mark.parametrize("fast", [True, False])
@pytest.mark.parametrize(
    ("data", "valid"),
    [
        (GOOD, True),
        ({**GOOD, "amount": 1.0}, True),
        ({**GOOD, "amount": True}, False),  # a boolean is not a number in JSON Schema
        ({**GOOD, "order_id": "not-a-uuid"}, False),
        ({**GOOD, "email": "nobody"}, False),
        ({**GOOD, "at": "2026-11-27T09:00:00Z"}, True),
        ({**GOOD, "at": "2026-11-27 09:00"}, False),
        ({**GOOD, "extra": 1}, False),
        (None, False),
    ],
)
def test_fast_path_agrees_with_jsonschema(fast, data, valid):
    compiled = CompiledSchema(EventSchema("order.created", "1.0.0", ORDER), fast=fast)
    assert compiled.fast is fast
    assert compiled.is_valid(data) is valid
    assert (compiled.violations(data) == []) is valid


def test_schemas_fastjsonschema_cannot_run_use_jsonschema_alone():
    prefix = {"prefixItems": [{"type": "string"}], "items": False}
    compiled = CompiledSchema(EventSchema("list.made", "1.0.0", prefix))
    assert not compiled.fast
    assert compiled.is_valid(["a"])
    assert not compiled.is_valid(["a", "b"])


# -- the registry in Redis ------------------------------------------------------------------------


def test_register_is_idempotent_and_versions_never_change(registry):
    v1 = EventSchema("order.created", "1.0.0", ORDER)
    assert registry.register(v1) is True
    same = EventSchema("order.created", "1.0.0", json.loads(json.dumps(ORDER)))
    assert registry.register(same) is False
    assert registry.versions("order.created") == ["1.0.0"]
    with pytest.raises(SchemaConflictError, match="already registered with a different document"):
        registry.register(EventSchema("order.created", "1.0.0", V11))
    assert registry.get("order.created", "1.0.0") == v1


def test_register_returns_false_for_the_same_document(registry):
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    assert registry.register(EventSchema("order.created", "1.0.0", ORDER)) is False


def test_versions_only_grow(registry):
    registry.register(EventSchema("order.created", "1.1.0", ORDER))
    with pytest.raises(
        SchemaConflictError, match=r"older than the latest registered version 1\.1\.0"
    ):
        registry.register(EventSchema("order.created", "1.0.5", ORDER), compatibility="none")


def test_incompatible_version_is_refused_and_nothing_stored(registry):
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    required = {**ORDER, "required": ["order_id", "amount", "email"]}
    with pytest.raises(IncompatibleSchemaError) as info:
        registry.register(EventSchema("order.created", "2.0.0", required), compatibility="backward")
    assert [(c.kind, c.path) for c in info.value.changes] == [("required-added", "$.email")]
    assert "against 1.0.0 (backward): $.email: 2.0.0 requires property 'email'" in str(info.value)
    assert registry.versions("order.created") == ["1.0.0"]
    assert registry.check(EventSchema("order.created", "2.0.0", required), compatibility="none")
    assert registry.versions("order.created") == ["1.0.0"]  # check writes nothing


def test_load_dir_registers_in_version_order_and_is_idempotent(registry, tmp_path):
    for version, document in (("1.1.0", V11), ("1.0.0", ORDER)):
        folder = tmp_path / "order.created"
        folder.mkdir(exist_ok=True)
        (folder / f"{version}.json").write_text(json.dumps(document))
    added = registry.load_dir(tmp_path)
    assert [s.version for s in added] == ["1.0.0", "1.1.0"]
    assert registry.load_dir(tmp_path) == []
    assert registry.types() == ["order.created"]
    assert registry.get("order.created").version == "1.1.0"


def test_load_dir_reads_every_file_before_storing(registry, tmp_path):
    (tmp_path / "order.created").mkdir()
    (tmp_path / "order.created" / "1.0.0.json").write_text(json.dumps(ORDER))
    (tmp_path / "order.created" / "1.1.0.json").write_text("{not json")
    with pytest.raises(InvalidSchemaError, match=r"1\.1\.0\.json"):
        registry.load_dir(tmp_path)
    assert registry.types() == []


def test_other_process_sees_new_latest_version_after_refresh_interval(
    redis_url, exchange, registry
):
    now = [0.0]
    reader = SchemaRegistry.from_url(
        redis_url, namespace=exchange, refresh_interval=5, clock=lambda: now[0]
    )
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    assert reader.latest_version("order.created") == "1.0.0"
    registry.register(EventSchema("order.created", "1.1.0", V11))
    assert reader.latest_version("order.created") == "1.0.0"  # cached within the interval
    assert reader.get("order.created", "1.1.0").version == "1.1.0"  # an exact version: read now
    now[0] = 5.0
    assert reader.latest_version("order.created") == "1.1.0"
    reader.close()


def test_build_metadata_names_the_same_version(registry):
    registry.register(EventSchema("order.created", "1.0.0+build.7", ORDER))
    assert registry.get("order.created", "1.0.0").version == "1.0.0+build.7"
    with pytest.raises(SchemaConflictError, match="already registered with a different document"):
        registry.register(EventSchema("order.created", "1.0.0", V11))


def test_unknown_schema_lookups_say_what_exists(registry):
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    with pytest.raises(UnknownSchemaError, match=r"known versions: 1\.0\.0"):
        registry.get("order.created", "9.9.9")
    with pytest.raises(UnknownSchemaError, match="no schema is registered"):
        registry.get("order.paid")


# -- publish-time validation -----------------------------------------------------------------------


def test_valid_publish_carries_the_schema_version(bus, registry, redis_client, exchange):
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    event = bus.publish("order.created", GOOD)
    assert event.schema_version == "1.0.0"
    [(_, fields)] = redis_client.xrange(f"{exchange}:log")
    assert json.loads(fields[b"event"])["schemaversion"] == "1.0.0"
    registry.register(EventSchema("order.created", "1.1.0", V11))
    assert bus.publish("order.created", GOOD).schema_version == "1.1.0"
    old = bus.publish("order.created", GOOD, schema_version="1.0.0")
    assert old.schema_version == "1.0.0"
    assert redis_client.llen(f"{exchange}.billing") == 3


def test_invalid_publish_lists_every_violation_and_writes_nothing(
    bus, registry, redis_client, exchange
):
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    bad = {"order_id": "nope", "email": "nobody", "amount": -1, "surprise": True}
    with pytest.raises(EventValidationError) as info:
        bus.publish("order.created", bad)
    err = info.value
    assert isinstance(err, InvalidEventError)
    assert (err.event_type, err.schema_version) == ("order.created", "1.0.0")
    assert [(v.path, v.keyword) for v in err.violations] == [
        ("$", "additionalProperties"),
        ("$.amount", "minimum"),
        ("$.email", "format"),
        ("$.order_id", "format"),
    ]
    assert "schema version 1.0.0 (4 violations)" in str(err)
    assert "$.amount: -1 is less than the minimum of 0 [minimum]" in str(err)
    assert redis_client.xlen(f"{exchange}:log") == 0
    assert redis_client.llen(f"{exchange}.billing") == 0


def test_one_invalid_event_stops_the_whole_batch(bus, registry, redis_client, exchange):
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    batch = [Event(type="order.created", data=GOOD), Event(type="order.created", data={})]
    with pytest.raises(EventValidationError, match="'order_id' is a required property"):
        bus.publish_many(batch)
    assert redis_client.xlen(f"{exchange}:log") == 0


def test_unknown_version_at_publish_is_refused(bus, registry, redis_client, exchange):
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    with pytest.raises(EventValidationError, match=r"names schema version '2\.0\.0'"):
        bus.publish("order.created", GOOD, schema_version="2.0.0")
    assert redis_client.xlen(f"{exchange}:log") == 0


def test_types_without_schema_pass_unless_schemas_are_required(
    bus, redis_url, exchange, registry, redis_client
):
    assert bus.publish("order.noted", {"anything": 1}).schema_version is None
    app = Celery("t", broker=redis_url, set_as_current=False)
    strict = EventBus(app, exchange=exchange, schemas=registry, require_schemas=True)
    with pytest.raises(
        EventValidationError, match="has no registered schema and schemas are required"
    ):
        strict.publish("order.noted", {"anything": 1})
    assert redis_client.xlen(f"{exchange}:log") == 1
    strict.close()


def test_validation_errors_pickle_with_their_violations(registry):
    # Celery pickles a task's exception before failure hooks run; an error that did not
    # round-trip would reach them as a bare InvalidEventError without violations.
    import pickle

    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    with pytest.raises(EventValidationError) as info:
        registry.validate(Event(type="order.created", data={"amount": -1}))
    copy = pickle.loads(pickle.dumps(info.value))
    assert type(copy) is EventValidationError
    assert copy.violations == info.value.violations
    assert (copy.event_type, copy.schema_version, str(copy)) == (
        "order.created",
        "1.0.0",
        str(info.value),
    )


def test_unreachable_registry_is_a_publish_error(redis_url, exchange, redis_client):
    from wowevent_kombu import PublishError

    down = SchemaRegistry.from_url("redis://127.0.0.1:1/0", namespace=exchange, timeout=0.5)
    app = Celery("t", broker=redis_url, set_as_current=False)
    bus = EventBus(app, exchange=exchange, schemas=down)
    with pytest.raises(PublishError, match="reading the schema registry failed"):
        bus.publish("order.created", GOOD)
    with pytest.raises(PublishError, match="nothing was written"):
        bus.publish("order.created", GOOD, schema_version="1.0.0")
    assert redis_client.xlen(f"{exchange}:log") == 0
    bus.close()
    down.close()


def test_test_bus_validates_deliveries_and_never_retries_invalid_ones(registry):
    from wowevent_kombu import Middleware
    from wowevent_kombu.publisher import Publisher
    from wowevent_kombu.testing import TestBus

    retried = []

    class Retries(Middleware):
        def on_retry(self, task, event, exc, einfo):
            retried.append(event.id)

    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    bus = TestBus(Celery("t", set_as_current=False), schemas=registry, middleware=[Retries()])
    calls = []

    @bus.subscriber("order.*", name="fulfil", autoretry_for=(Exception,), max_retries=3)
    def fulfil(event):
        calls.append(event.schema_version)

    bus.publish("order.created", GOOD)
    # A foreign publisher's event naming a version that does not exist, sent unvalidated.
    foreign = Event(type="order.created", data=GOOD, schema_version="3.0.0")
    unvalidated = Publisher(source=lambda: "foreign", settings=lambda: bus.settings,
                            transport=lambda: bus.memory, metrics=lambda: None,
                            schemas=lambda: (None, False))  # fmt: skip
    unvalidated.publish_many([foreign], mandatory=False)
    done = bus.drain()
    assert [d.state for d in done] == ["SUCCESS", "FAILURE"]
    assert isinstance(done[1].result, EventValidationError)
    assert "names schema version '3.0.0', which is not registered" in str(done[1].result)
    assert calls == ["1.0.0"]
    assert retried == []


def test_concurrent_registration_is_checked_against_the_winner(redis_url, exchange, registry):
    # Another process registers 1.5.0 after this one read the versions but before it wrote:
    # WATCH makes the write fail, and the retry checks compatibility against 1.5.0 too.
    other = SchemaRegistry.from_url(redis_url, namespace=exchange)
    registry.register(EventSchema("order.created", "1.0.0", ORDER))
    narrowed = {**ORDER, "properties": {**ORDER["properties"], "amount": {"type": "integer"}}}
    original = registry._admissible
    calls = []

    def racing(schema, existing, compatibility):
        if not calls:
            other.register(EventSchema("order.created", "1.5.0", narrowed), compatibility="none")
        calls.append([r.schema.version for r in existing])
        return original(schema, existing, compatibility)

    registry._admissible = racing
    with pytest.raises(IncompatibleSchemaError, match=r"against 1\.5\.0 \(forward\)"):
        registry.register(EventSchema("order.created", "2.0.0", ORDER), compatibility="full")
    assert calls == [["1.0.0"], ["1.0.0", "1.5.0"]]
    assert registry.versions("order.created") == ["1.0.0", "1.5.0"]
    other.close()
