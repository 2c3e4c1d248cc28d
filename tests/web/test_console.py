"""The console's routes without a browser: sign-in, refusals, error pages, what pages may hold.

The app is the real one on a real Redis, driven by Starlette's test client; dead letters are
written to the store directly (no worker), so these run in seconds. The flows a person follows
are in ``test_console_browser.py``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from tests.conftest import wait_for
from wowevent_kombu import EventBus, HealthRules
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.core import names
from wowevent_kombu.deadletters.record import Attempt, DeadLetter
from wowevent_kombu.observability.status import ClusterReader
from wowevent_kombu.web.app import create_app
from wowevent_kombu.web.auth import Tokens
from wowevent_kombu.web.console import deadletters as console_deadletters
from wowevent_kombu.web.console import replay as console_replay
from wowevent_kombu.web.context import WebContext
from wowevent_kombu.web.sessions import COOKIE

ADMIN = "admin-token-" + "a" * 20
READ = "read-token-" + "r" * 20
ORIGIN = {"Origin": "http://testserver"}


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    bus = EventBus(Celery("console", broker=redis_url, set_as_current=False), exchange=exchange)

    @bus.subscriber("order.*", name="billing")
    def billing(event: Any) -> None:
        return None

    bus.declare()
    yield bus
    bus.close()


def make_app(bus: EventBus, tokens: Tokens | None = None) -> FastAPI:
    reader = ClusterReader(make_client(bus.settings), bus.exchange, HealthRules())
    tokens = Tokens(admin=ADMIN, read=READ) if tokens is None else tokens
    return create_app(bus, reader, CollectorRegistry(), tokens=tokens, session_secret="s" * 32)


@pytest.fixture
def app(bus: EventBus) -> FastAPI:
    return make_app(bus)


def client_of(app: FastAPI, token: str | None = None, https: bool = False) -> TestClient:
    client = TestClient(
        app, base_url="https://testserver" if https else "http://testserver",
        follow_redirects=False,
    )  # fmt: skip
    if token is not None:
        answer = client.post("/console/login", data={"token": token}, headers=ORIGIN)
        assert answer.status_code == 303, answer.text
    return client


def csrf_of(app: FastAPI, client: TestClient) -> str:
    """The CSRF token of the client's session (pages show it only in forms it may post)."""
    ctx: WebContext = app.state.wowevent
    session = ctx.signer.read(client.cookies.get(COOKIE))
    assert session is not None
    return session.csrf


def dead_letter(bus: EventBus, order: str = "A-1") -> str:
    """A record as a worker would write it, with a traceback holding the order."""
    event_id = str(uuid.uuid4())
    event = {"specversion": "1.0", "id": event_id, "source": "test", "type": "order.placed",
             "data": {"order": order}}  # fmt: skip
    trace = f'Traceback (most recent call last):\n  File "x.py"\nValueError: refused {order}'
    attempt = Attempt(1, "ValueError", f"refused {order}", trace, time.time())
    record_id = str(uuid.uuid4())
    record = DeadLetter(record_id, "billing", event_id, "order.placed", event, "exhausted",
                        (attempt,))  # fmt: skip
    bus.dead_letters.write(record)
    return record_id


def changing_routes() -> list[str]:
    """Every console POST route that changes something (all but sign-in and sign-out)."""
    found = []
    for module in (console_deadletters, console_replay):
        for route in module.router.routes:
            if "POST" in getattr(route, "methods", ()):
                found.append(getattr(route, "path", "").replace("{replay_id}", "r1"))
    assert len(found) >= 7, found
    return found


def test_the_console_is_off_without_an_admin_token(bus: EventBus) -> None:
    client = client_of(make_app(bus, Tokens()))
    assert client.get("/console/").status_code == 404
    assert client.get("/console/login").status_code == 404


def test_pages_need_a_session_and_show_nothing_without_one(app: FastAPI, bus: EventBus) -> None:
    record_id = dead_letter(bus, "SECRET-9")
    client = client_of(app)
    for path in ["/console/", "/console/dlq", f"/console/dlq/{record_id}", "/console/log",
                 "/console/replay", "/console/replays", "/console/overview/table",
                 "/console/nowhere"]:  # fmt: skip
        answer = client.get(path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith("/console/login?next=%2Fconsole%2F"), path
        assert "SECRET-9" not in answer.text
    assert client.get("/console/static/console.js").status_code == 200
    forged = client.cookies
    forged.set(COOKIE, "e30.forged.signature", path="/console")
    assert client.get("/console/dlq").status_code == 303
    assert "/console/" not in client.get("/openapi.json").text


def test_sign_in_sets_a_strict_cookie_and_goes_only_to_console_pages(app: FastAPI) -> None:
    client = client_of(app)
    answer = client.post(
        "/console/login", data={"token": ADMIN, "next": "/console/dlq?type=x"}, headers=ORIGIN
    )
    assert answer.headers["location"] == "/console/dlq?type=x"
    cookie = answer.headers["set-cookie"].lower()
    assert {"httponly", "path=/console", "samesite=strict"} <= set(re.split(r";\s*", cookie))
    assert "secure" not in cookie
    assert ADMIN not in cookie
    for target in ["//evil.example/console/", "https://evil.example/", "/console\\@evil", "/x"]:
        answer = client.post(
            "/console/login", data={"token": ADMIN, "next": target}, headers=ORIGIN
        )
        assert answer.headers["location"] == "/console/", target
    secure = client_of(app, https=True).post(
        "/console/login", data={"token": READ}, headers={"Origin": "https://testserver"}
    )
    assert "secure" in secure.headers["set-cookie"].lower()


def test_a_wrong_token_is_a_401_page_that_does_not_echo_it(app: FastAPI) -> None:
    client = client_of(app)
    for wrong in [ADMIN[:-1], ADMIN + "x", ADMIN.upper(), READ + " ", "", "x" * 5000]:
        answer = client.post("/console/login", data={"token": wrong}, headers=ORIGIN)
        assert answer.status_code == 401, wrong
        assert "That token is not valid" in answer.text
        assert COOKIE not in answer.headers.get("set-cookie", "")
        if wrong:
            assert wrong not in answer.text


def test_posts_from_another_origin_are_refused(app: FastAPI, bus: EventBus) -> None:
    record_id = dead_letter(bus)
    client = client_of(app, ADMIN)
    csrf = csrf_of(app, client)
    for origin in ["http://evil.example", "null", "http://testserver.evil.example"]:
        answer = client.post(
            "/console/dlq/retry", data={"id": record_id, "csrf": csrf}, headers={"Origin": origin}
        )
        assert answer.status_code == 403, origin
        login = client.post("/console/login", data={"token": ADMIN}, headers={"Origin": origin})
        assert login.status_code == 403, origin
    assert bus.dead_letters.get(record_id).id == record_id


def test_every_change_needs_an_admin_session_and_the_csrf_token(
    app: FastAPI, bus: EventBus, redis_client: Any
) -> None:
    record_id = dead_letter(bus)
    reader, admin = client_of(app, READ), client_of(app, ADMIN)
    everything = {"id": record_id, "action": "purge", "scope": "matching", "subscribers": "billing"}
    for path in changing_routes():
        read_only = reader.post(path, data={**everything, "csrf": csrf_of(app, reader)})
        assert read_only.status_code == 403, path
        assert "read-only" in read_only.text
        assert admin.post(path, data=everything).status_code == 403, path
        wrong = admin.post(path, data={**everything, "csrf": csrf_of(app, admin)[:-1] + "!"})
        assert wrong.status_code == 403, path
        assert "security token" in wrong.text
    assert bus.dead_letters.get(record_id).id == record_id
    assert redis_client.llen(names.queue_name(bus.exchange, "billing")) == 0


def test_a_retry_redrives_the_record_and_says_so_once(
    app: FastAPI, bus: EventBus, redis_client: Any
) -> None:
    record_id = dead_letter(bus)
    client = client_of(app, ADMIN)
    answer = client.post(
        "/console/dlq/retry",
        data={"id": record_id, "csrf": csrf_of(app, client), "back": "/console/dlq?type=x"},
        headers=ORIGIN,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/dlq?type=x")
    assert redis_client.llen(names.queue_name(bus.exchange, "billing")) == 1
    page = client.get("/console/dlq")
    assert f"Retried 1 record: {record_id}." in page.text
    assert "Retried" not in client.get("/console/dlq").text  # shown once
    client.cookies.set("wowevent_flash", "forged-message", path="/console")
    assert "forged-message" not in client.get("/console/dlq").text


def test_purging_matching_records_is_confirmed_with_the_count(app: FastAPI, bus: EventBus) -> None:
    for order in ("P-1", "P-2"):
        dead_letter(bus, order)
    client = client_of(app, ADMIN)
    form = {"csrf": csrf_of(app, client), "action": "purge", "subscriber": "billing"}
    confirm = client.post("/console/dlq/matching", data=form, headers=ORIGIN)
    assert confirm.status_code == 200
    assert "Purge 2 records?" in confirm.text
    assert bus.dead_letters.count() == 2  # asking deletes nothing
    done = client.post("/console/dlq/confirm", data={**form, "scope": "matching"}, headers=ORIGIN)
    assert done.headers["location"] == "/console/dlq?subscriber=billing"
    assert "Purged 2 records: " in client.get(done.headers["location"]).text
    assert bus.dead_letters.count() == 0


def test_library_errors_and_unknown_ids_are_pages_with_the_message(app: FastAPI) -> None:
    client = client_of(app, READ)
    cases = [
        ("/console/dlq?since=yesterday-ish", 400, "is not a time"),
        ("/console/dlq?reason=bored", 400, "unknown reason"),
        ("/console/dlq?cursor=garbage", 400, "malformed cursor"),
        ("/console/dlq/no-such-record", 404, "no dead-letter record"),
        ("/console/log?types=order..x", 400, "type filter"),
        ("/console/log/no-such-event", 404, "No event"),
        ("/console/replays/no-such-run", 404, "no replay"),
        ("/console/replay?subscribers=nobody&action=preview", 400, "no subscriber 'nobody'"),
        ("/console/replay?subscribers=billing&speed=fast&action=preview", 400, "not a speed"),
        ("/console/nowhere", 404, "no console page"),
    ]
    for path, status, message in cases:
        answer = client.get(path)
        assert answer.status_code == status, (path, answer.text)
        assert answer.headers["content-type"].startswith("text/html"), path
        assert message.lower() in answer.text.replace("&#39;", "'").lower(), (path, answer.text)
        assert "Traceback" not in answer.text


def test_pages_hold_no_inline_script_or_style_and_no_token(app: FastAPI, bus: EventBus) -> None:
    record_id = dead_letter(bus, "<script>alert(1)</script>")
    bus.publish("order.placed", {"order": "L-1"}, correlation_id="c-1")
    admin = client_of(app, ADMIN)
    pages = ["/console/", "/console/overview/table", "/console/dlq", f"/console/dlq/{record_id}",
             "/console/replay?subscribers=billing&action=preview", "/console/replays",
             "/console/log?correlation_id=c-1", "/console/login"]  # fmt: skip
    for path in pages:
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text)
        html = answer.text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), path
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", html, re.IGNORECASE), path
        assert ADMIN not in html and READ not in html, path
        assert "<script>alert(1)</script>" not in html, path
        assert answer.headers["referrer-policy"] == "same-origin"
        assert "script-src 'self'" in answer.headers["content-security-policy"]


def test_a_replay_is_started_interrupted_and_resumed_from_its_page(
    app: FastAPI, bus: EventBus
) -> None:
    for n in range(30):
        bus.publish("order.placed", {"order": n})
    client = client_of(app, ADMIN)
    csrf = csrf_of(app, client)
    form = {"csrf": csrf, "subscribers": "billing", "speed": "4/s", "types": "order.*"}
    started = client.post("/console/replay/start", data=form, headers=ORIGIN)
    assert started.status_code == 303, started.text
    page = started.headers["location"]
    replay_id = page.rsplit("/", 1)[1]
    runs = app.state.wowevent.runs

    def interrupt() -> None:
        answer = client.post(f"{page}/interrupt", data={"csrf": csrf}, headers=ORIGIN)
        assert answer.status_code == 303
        assert "will stop after its current batch" in client.get(page).text
        wait_for(lambda: runs.get(replay_id).report.status == "interrupted", 10, 0.05,
                 "the replay to stop")  # fmt: skip

    interrupt()
    stopped = client.get(page).text
    assert "Resume" in stopped and "Interrupt" not in stopped
    assert runs.get(replay_id).report.delivered["billing"] < 30
    resumed = client.post(f"{page}/resume", data={"csrf": csrf}, headers=ORIGIN)
    assert resumed.status_code == 303
    assert f"Replay {replay_id} resumed." in client.get(page).text
    interrupt()  # leave no replay running after the test
