"""The admin API of ``wowevent serve`` over real HTTP: auth, dead letters, replays, log, schemas."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.web.live import ADMIN, READ, call, live_service, make_bus
from wowevent_kombu import Event, EventBus
from wowevent_kombu.core import names
from wowevent_kombu.deadletters.record import Attempt, DeadLetter
from wowevent_kombu.schemas.registry import SchemaRegistry
from wowevent_kombu.schemas.schema import EventSchema
from wowevent_kombu.web.auth import Tokens


@pytest.fixture
def served(redis_url: str, exchange: str) -> Iterator[tuple[EventBus, str]]:
    bus = make_bus(redis_url, exchange)
    bus.declare()
    schemas = SchemaRegistry.from_url(redis_url, namespace=exchange, refresh_interval=0)
    with live_service(bus, tokens=Tokens(admin=ADMIN, read=READ), schemas=schemas) as address:
        yield bus, address
    bus.close()


def dead_letter(bus: EventBus, subscriber: str, n: int, *, reason: str = "exhausted") -> str:
    document = Event(type="order.created", data={"n": n}, source="tests").to_cloudevent()
    record = DeadLetter(
        id=f"task-{subscriber}-{n}", subscriber=subscriber, event_id=str(document["id"]),
        event_type="order.created", event=document, reason=reason,
        attempts=(
            Attempt(1, "builtins.ValueError", f"boom {n}", "Traceback (most recent call last):\n"
                    f"  File \"h.py\", line 1\nValueError: boom {n}\n", time.time() - 10),
        ),
    )  # fmt: skip
    bus.dead_letters.write(record)
    return record.id


def queue_length(bus: EventBus, subscriber: str) -> int:
    client = redis.Redis.from_url(bus.settings.redis_url)
    return int(client.llen(names.queue_name(bus.exchange, subscriber)))


# -- tokens ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    [ADMIN[:-1], ADMIN + "x", ADMIN.upper(), " " + ADMIN[1:], ADMIN[:16], "", "Bearer", READ[:-1]],
)
def test_a_token_near_the_real_one_is_refused(served: tuple[EventBus, str], given: str) -> None:
    _, address = served
    status, _headers, body = call(address, "GET", "/admin/dlq", token=given)
    assert status in (401, 403), (given, status)
    assert "error" in body
    status, _, _ = call(address, "POST", "/admin/dlq/purge", {"all": True}, token=given)
    assert status in (401, 403)


def test_missing_token_is_401_with_a_challenge(served: tuple[EventBus, str]) -> None:
    _, address = served
    status, headers, _body = call(address, "GET", "/admin/dlq")
    assert status == 401 and headers["www-authenticate"].startswith("Bearer")
    status, _, _ = call(address, "GET", "/admin/dlq", headers={"Authorization": f"Basic {ADMIN}"})
    assert status == 401
    assert call(address, "GET", f"/admin/dlq?token={ADMIN}")[0] == 401


def test_the_read_token_reads_but_changes_nothing(served: tuple[EventBus, str]) -> None:
    bus, address = served
    record_id = dead_letter(bus, "billing", 1)
    assert call(address, "GET", "/admin/dlq", token=READ)[0] == 200
    assert call(address, "GET", f"/admin/dlq/{record_id}", token=READ)[0] == 200
    for method, path, body in [
        ("POST", f"/admin/dlq/{record_id}/retry", None),
        ("DELETE", f"/admin/dlq/{record_id}", None),
        ("POST", "/admin/dlq/purge", {"all": True}),
        ("POST", "/admin/dlq/retry", {"ids": [record_id]}),
        ("POST", "/admin/publish", {"type": "order.created"}),
        ("POST", "/admin/replays", {"subscribers": ["billing"]}),
    ]:
        status, _, reply = call(address, method, path, body, token=READ)
        assert status == 403, (method, path, status)
        assert "read-only" in reply["error"]
    assert bus.dead_letters.count() == 1
    assert queue_length(bus, "billing") == 0


def test_admin_routes_do_not_exist_without_a_token(redis_url: str, exchange: str) -> None:
    bus = make_bus(redis_url, exchange)
    with live_service(bus) as address:
        for method, path in [("GET", "/admin/dlq"), ("POST", "/admin/publish"),
                             ("GET", "/console/"), ("GET", "/admin/log")]:  # fmt: skip
            status, _, body = call(address, method, path, token="anything-at-all-long")
            assert status == 404, (method, path)
            assert body == {"error": "Not Found"}
        assert call(address, "GET", "/health")[0] == 200
        assert call(address, "GET", "/metrics")[0] == 200
    bus.close()


# -- dead letters ---------------------------------------------------------------------------------


def test_dead_letters_are_listed_filtered_paged_and_shown(served: tuple[EventBus, str]) -> None:
    bus, address = served
    ids = [dead_letter(bus, "billing", n) for n in range(5)]
    dead_letter(bus, "shipping", 9, reason="rejected")
    status, _, page = call(address, "GET", "/admin/dlq?subscriber=billing&limit=3", token=READ)
    assert status == 200 and len(page["records"]) == 3 and page["cursor"]
    status, _, rest = call(address, "GET",
                           f"/admin/dlq?subscriber=billing&limit=3&cursor={page['cursor']}",
                           token=READ)  # fmt: skip
    assert sorted(r["id"] for r in page["records"] + rest["records"]) == sorted(ids)
    assert rest["cursor"] is None
    _, _, rejected = call(address, "GET", "/admin/dlq?reason=rejected", token=READ)
    assert [r["subscriber"] for r in rejected["records"]] == ["shipping"]
    status, _, one = call(address, "GET", f"/admin/dlq/{ids[0]}", token=READ)
    assert status == 200 and one["event"]["data"] == {"n": 0}
    assert "ValueError: boom 0" in one["attempt_details"][0]["traceback"]
    assert call(address, "GET", "/admin/dlq/no-such-record", token=READ)[0] == 404
    assert call(address, "GET", "/admin/dlq?reason=bogus", token=READ)[0] == 400
    assert call(address, "GET", "/admin/dlq?since=2026-01-01T00:00:00", token=READ)[0] == 400
    assert call(address, "GET", "/admin/dlq?since=2026-01-01T00:00:00Z", token=READ)[0] == 200
    assert call(address, "GET", "/admin/dlq?limit=0", token=READ)[0] == 400
    _, _, stats = call(address, "GET", "/admin/dlq/stats", token=READ)
    assert stats["by_subscriber"] == {"billing": 5, "shipping": 1}


def test_retry_re_drives_to_that_subscriber_only(served: tuple[EventBus, str]) -> None:
    bus, address = served
    first = dead_letter(bus, "billing", 1)
    others = [dead_letter(bus, "billing", n) for n in (2, 3)]
    status, _, done = call(address, "POST", f"/admin/dlq/{first}/retry", token=ADMIN)
    assert (status, done) == (200, {"ids": [first], "count": 1, "dry_run": False})
    assert (queue_length(bus, "billing"), queue_length(bus, "shipping")) == (1, 0)
    body = {"filter": {"subscriber": "billing"}, "dry_run": True}
    status, _, dry = call(address, "POST", "/admin/dlq/retry", body, token=ADMIN)
    assert status == 200 and dry["count"] == 2 and dry["dry_run"]
    assert queue_length(bus, "billing") == 1
    status, _, done = call(address, "POST", "/admin/dlq/retry", {"ids": others}, token=ADMIN)
    assert status == 200 and sorted(done["ids"]) == sorted(others)
    assert (queue_length(bus, "billing"), queue_length(bus, "shipping")) == (3, 0)
    assert bus.dead_letters.count() == 0


def test_bulk_bodies_are_checked_before_anything_happens(served: tuple[EventBus, str]) -> None:
    bus, address = served
    record_id = dead_letter(bus, "billing", 1)
    for body in [
        {},  # names nothing: refuse rather than take everything
        {"filter": {}},
        {"ids": [record_id], "all": True},
        {"ids": [record_id], "filter": {"subscriber": "billing"}},
        {"ids": []},
        {"ids": [record_id], "dry_run": "false"},  # a string is not a boolean
        {"filter": {"reason": "bogus"}},
        {"filter": {"subscriber": "billing", "typo": 1}},
        [record_id],
    ]:
        status, _, reply = call(address, "POST", "/admin/dlq/purge", body, token=ADMIN)
        assert status == 400, (body, status, reply)
        assert reply["error"]
    assert call(address, "POST", "/admin/dlq/purge", b"{nope", token=ADMIN)[0] == 400
    status, _, reply = call(address, "POST", "/admin/dlq/purge", {"ids": [record_id, "nope"]},
                            token=ADMIN)  # fmt: skip
    assert status == 404 and "nope" in reply["error"]
    assert bus.dead_letters.count() == 1  # nothing half-done
    status, _, reply = call(address, "POST", "/admin/dlq/purge",
                            {"filter": {"subscriber": "billing"}}, token=ADMIN)  # fmt: skip
    assert (status, reply["ids"]) == (200, [record_id])
    assert bus.dead_letters.count() == 0
    dead_letter(bus, "billing", 2)
    status, _, reply = call(address, "DELETE", "/admin/dlq/task-billing-2", token=ADMIN)
    assert (status, reply["count"]) == (200, 1)
    assert call(address, "DELETE", "/admin/dlq/task-billing-2", token=ADMIN)[0] == 404


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# -- publishing -----------------------------------------------------------------------------------


def test_publish_validates_its_body(served: tuple[EventBus, str]) -> None:
    bus, address = served
    status, _, event = call(address, "POST", "/admin/publish",
                            {"type": "order.created", "data": {"a": 1}}, token=ADMIN)  # fmt: skip
    assert status == 201 and event["type"] == "order.created"
    assert (queue_length(bus, "billing"), queue_length(bus, "shipping")) == (1, 1)
    cases = {
        '"mandatory": "false"': ({"type": "order.created", "mandatory": "false"}, 400),
        "unknown field": ({"type": "order.created", "x": 1}, 400),
        "bad type": ({"type": "Bad Type!"}, 400),  # the documented pattern refuses it
        "wildcard type": ({"type": "order.#"}, 400),
        "control byte in a word": ({"type": "order.created\n"}, 400),
        "oversized type": ({"type": "a." * 200 + "b"}, 400),
        "too deep data": ({"type": "order.created", "data": _nested(150)}, 422),
        "array body": ([1], 400),
        "no type": ({"data": {}}, 400),
    }
    for name, (body, expected) in cases.items():
        status, _, reply = call(address, "POST", "/admin/publish", body, token=ADMIN)
        assert status == expected, (name, status, reply)
    status, _, reply = call(address, "POST", "/admin/publish",
                            {"type": "nobody.listens", "mandatory": True}, token=ADMIN)  # fmt: skip
    assert status == 409 and "nobody.listens" in reply["error"]


# -- log and replays ------------------------------------------------------------------------------


def test_the_log_is_read_with_filters_and_one_event_fetched(served: tuple[EventBus, str]) -> None:
    bus, address = served
    first = bus.publish("order.created", {"n": 1}, correlation_id="corr-1")
    bus.publish("order.paid", {"n": 2}, correlation_id="corr-2")
    bus.publish("user.created", {"n": 3})
    _, _, page = call(address, "GET", "/admin/log?types=order.*", token=READ)
    assert [e["event"]["type"] for e in page["entries"]] == ["order.created", "order.paid"]
    _, _, page = call(address, "GET", "/admin/log?types=user.%23&types=order.paid", token=READ)
    assert [e["event"]["type"] for e in page["entries"]] == ["order.paid", "user.created"]
    _, _, page = call(address, "GET", "/admin/log?correlation_id=corr-1", token=READ)
    assert [e["event"]["id"] for e in page["entries"]] == [first.id]
    _, _, page = call(address, "GET", "/admin/log?limit=2", token=READ)
    assert len(page["entries"]) == 2 and page["cursor"]
    _, _, rest = call(address, "GET", f"/admin/log?limit=2&cursor={page['cursor']}", token=READ)
    assert [e["event"]["type"] for e in rest["entries"]] == ["user.created"]
    status, _, one = call(address, "GET", f"/admin/log/events/{first.id}", token=READ)
    assert status == 200 and one["event"]["data"] == {"n": 1}
    assert call(address, "GET", "/admin/log/events/nope", token=READ)[0] == 404
    assert call(address, "GET", "/admin/log?types=order..x", token=READ)[0] == 400
    assert call(address, "GET", "/admin/log?since=yesterday", token=READ)[0] == 400


def wait_run(address: str, replay_id: str, wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        _, _, run = call(address, "GET", f"/admin/replays/{replay_id}", token=READ)
        if run["status"] in wanted or time.monotonic() > deadline:
            return dict(run)
        time.sleep(0.05)


def test_a_replay_reaches_only_the_chosen_subscriber(served: tuple[EventBus, str]) -> None:
    bus, address = served
    for n in range(30):
        bus.publish("order.created", {"n": n})
    bus.publish("user.created", {})
    client = redis.Redis.from_url(bus.settings.redis_url)
    for name in ("billing", "shipping"):
        client.delete(names.queue_name(bus.exchange, name))
    body = {"subscribers": ["billing"], "types": ["order.*"]}
    status, _, preview = call(address, "POST", "/admin/replays/preview", body, token=READ)
    assert status == 200
    assert (preview["total_delivered"], preview["types"]) == (30, {"order.created": 30})
    assert queue_length(bus, "billing") == 0  # a preview sends nothing
    status, headers, run = call(address, "POST", "/admin/replays", body, token=ADMIN)
    assert status == 202 and headers["location"] == f"/admin/replays/{run['replay_id']}"
    done = wait_run(address, run["replay_id"], {"done"})
    assert done["delivered"] == {"billing": 30} and done["selection"]["subscribers"] == ["billing"]
    assert (queue_length(bus, "billing"), queue_length(bus, "shipping")) == (30, 0)
    _, _, runs = call(address, "GET", "/admin/replays", token=READ)
    assert run["replay_id"] in [r["replay_id"] for r in runs]
    status, _, reply = call(address, "POST", "/admin/replays", {"subscribers": ["nobody"]},
                            token=ADMIN)  # fmt: skip
    assert status == 404 and "nobody" in reply["error"]
    status, _, reply = call(address, "POST", "/admin/replays",
                            {"subscribers": ["billing"], "speed": "fast"}, token=ADMIN)  # fmt: skip
    assert status == 400 and "speed" in reply["error"]
    assert call(address, "GET", "/admin/replays/nope", token=READ)[0] == 404


def test_a_replay_is_interrupted_and_resumed_over_http(served: tuple[EventBus, str]) -> None:
    bus, address = served
    bus.publish_many(Event(type="order.created", data={"n": n}, source="t") for n in range(3000))
    client = redis.Redis.from_url(bus.settings.redis_url)
    client.delete(names.queue_name(bus.exchange, "billing"))
    body = {"subscribers": ["billing"], "speed": "2000/s"}
    status, _, run = call(address, "POST", "/admin/replays", body, token=ADMIN)
    assert status == 202
    replay_id = run["replay_id"]
    status, _, _asked = call(address, "POST", f"/admin/replays/{replay_id}/interrupt", token=ADMIN)
    assert status == 200
    stopped = wait_run(address, replay_id, {"interrupted", "done"})
    assert stopped["status"] == "interrupted", stopped
    assert stopped["delivered"]["billing"] < 3000
    assert queue_length(bus, "billing") == stopped["delivered"]["billing"]
    status, _, _ = call(address, "POST", f"/admin/replays/{replay_id}/resume", token=ADMIN)
    assert status == 202
    done = wait_run(address, replay_id, {"done"})
    assert done["delivered"]["billing"] == 3000
    assert queue_length(bus, "billing") == 3000  # nothing sent twice, nothing skipped


# -- schemas --------------------------------------------------------------------------------------


def test_schemas_are_listed_shown_and_a_candidate_checked(
    served: tuple[EventBus, str], redis_url: str, exchange: str
) -> None:
    _, address = served
    registry = SchemaRegistry.from_url(redis_url, namespace=exchange, refresh_interval=0)
    v1 = {"type": "object", "properties": {"sku": {"type": "string"}}}
    registry.register(EventSchema("order.created", "1.0.0", v1))
    _, _, listed = call(address, "GET", "/admin/schemas", token=READ)
    assert listed == {"order.created": ["1.0.0"]}
    _, _, history = call(address, "GET", "/admin/schemas/order.created", token=READ)
    assert history[0]["schema"] == v1
    assert call(address, "GET", "/admin/schemas/order.nothing", token=READ)[0] == 404
    narrowed = {**v1, "required": ["sku"]}
    status, _, result = call(address, "POST", "/admin/schemas/check",
                             {"type": "order.created", "version": "2.0.0", "schema": narrowed},
                             token=READ)  # fmt: skip
    assert status == 200 and result["compatible"] is False and result["problems"]
    status, _, result = call(address, "POST", "/admin/schemas/check",
                             {"type": "order.created", "version": "1.1.0", "schema": v1},
                             token=READ)  # fmt: skip
    assert (status, result["compatible"]) == (200, True)
    assert registry.versions("order.created") == ["1.0.0"]  # a check writes nothing
