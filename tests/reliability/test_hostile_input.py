"""Hostile input at the edges: the API, the CLI and the HTTP service answer with clear errors."""

import contextlib
import json
import math
import re
import socket
import subprocess
import sys

import pytest
import redis
from celery import Celery
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT
from tests.integration.serving import serving
from wowevent_kombu import (
    Event,
    EventEncodingError,
    EventTooLargeError,
    InvalidEventError,
    InvalidEventTypeError,
    InvalidPatternError,
)
from wowevent_kombu.cli import EXIT_DATAERR, cli
from wowevent_kombu.core import names
from wowevent_kombu.core.matcher import validate_pattern
from wowevent_kombu.testing import TestBus

DEPTH = 100_000


def nested(depth):
    root = current = {}
    for _ in range(depth):
        current["a"] = current = {}
    return root


@pytest.fixture
def bus():
    test_bus = TestBus(Celery("hostile-input", set_as_current=False))

    @test_bus.subscriber("#", name="everything")
    def everything(event):
        return None

    return test_bus


@pytest.mark.parametrize(
    ("data", "error", "fragment"),
    [
        (nested(DEPTH), EventEncodingError, "nested too deeply"),
        ({"x": math.nan}, EventEncodingError, "not JSON-serialisable"),
        ({"x": -math.inf}, EventEncodingError, "not JSON-serialisable"),
        ({"x": "\ud800"}, EventEncodingError, "not valid Unicode"),
        ({"x": b"\xff"}, EventEncodingError, "bytes"),
        ({"x": "a" * 1_000_000}, EventTooLargeError, "the limit is 262144"),
    ],
    ids=["deep", "nan", "infinity", "surrogate", "bytes", "huge"],
)
def test_hostile_event_data_gets_a_clear_error(bus, data, error, fragment):
    with pytest.raises(error, match=fragment):
        bus.publish("order.created", data)
    assert bus.published == []  # nothing half-written


@pytest.mark.parametrize(
    ("event_type", "fragment"),
    [("order.*", "wildcards belong"), ("order.#", "wildcards belong"), ("order..x", "empty word"),
     ("", "empty"), (".order", "empty word"), ("order.", "empty word"), ("x" * 10_000, "limit"),
     ("order.\x00", "may hold only"), ("ordér.x", "may hold only")],
)  # fmt: skip
def test_hostile_event_types_are_refused(bus, event_type, fragment):
    with pytest.raises(InvalidEventTypeError, match=fragment):
        bus.publish(event_type, {})


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [("x." * 5_000, "limit"), ("a..b", "empty word"), ("a.#b", "whole word"), ("", "empty"),
     ("é.*", "must be"), ("a.\n", "must be")],
)  # fmt: skip
def test_hostile_patterns_are_refused(pattern, fragment):
    with pytest.raises(InvalidPatternError, match=fragment):
        validate_pattern(pattern)


def test_wildcard_only_patterns_are_valid_and_match(bus):
    # '#.#.#' is legal AMQP: zero or more words, three times over.
    assert validate_pattern("#.#.#") == "#.#.#"

    @bus.subscriber("#.#.#", name="hashes")
    def hashes(event):
        return None

    bus.publish("a", {})
    bus.publish("a.b.c.d.e.f", {})
    done = [d for d in bus.drain() if d.subscriber == "hashes"]
    assert [d.event.type for d in done] == ["a", "a.b.c.d.e.f"]
    assert all(d.succeeded for d in done)


@pytest.mark.parametrize(
    "text",
    ["[" * DEPTH + "]" * DEPTH, '{"specversion": "1.0", "data": ' + "[" * DEPTH + "]" * DEPTH + "}",
     b'{"specversion":"1.0","id":"1","source":"s","type":"a.b","data":"\xff"}',
     '{"specversion":"1.0","id":"1","source":"s","type":"a.b","data":NaN}',
     '{"specversion":"1.0","id":"1","source":"s","type":"a.*"}', "[]", "null", ""],
    ids=["deep", "deep-data", "bad-utf8", "nan", "wildcard-type", "list", "null", "empty"],
)  # fmt: skip
def test_hostile_cloudevent_json_is_refused(text):
    with pytest.raises(InvalidEventError):
        Event.from_json(text)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_any_text_parses_to_an_event_or_a_clear_error(text):
    with contextlib.suppress(InvalidEventError):
        Event.from_json(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_a_type_and_pattern_or_a_clear_error(text):
    with contextlib.suppress(InvalidEventTypeError):
        Event(type=text, data=None)
    with contextlib.suppress(InvalidPatternError):
        validate_pattern(text)


# -- the CLI ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "fragment"),
    [(["order.created", "[" * DEPTH + "]" * DEPTH], "nested too deeply"),
     (["order.created", '{"x": Infinity}'], "not valid JSON"),
     (["order.*", "{}"], "wildcards belong"),
     (["order.created", json.dumps({"x": "a" * 300_000})], "the limit is"),
     (["x" * 10_000, "{}"], "limit is 255")],
    ids=["deep", "infinity", "wildcard", "huge", "long-type"],
)  # fmt: skip
def test_cli_refuses_hostile_input_with_a_clear_error(private_redis, exchange, args, fragment):
    server = private_redis()
    result = CliRunner().invoke(cli, ["--broker", server.url, "--exchange", exchange,
                                      "publish", *args])  # fmt: skip
    assert result.exit_code == EXIT_DATAERR, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert redis.Redis.from_url(server.url).xlen(names.log_key(exchange)) == 0


def test_cli_process_survives_deep_json(private_redis, exchange):
    server = private_redis()
    depth = 60_000  # one argument may not exceed 128 KiB
    proc = subprocess.run(
        [sys.executable, "-c", "from wowevent_kombu.cli import main; main()", "--broker",
         server.url, "--exchange", exchange, "publish", "order.created", "[" * depth + "]" * depth],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == EXIT_DATAERR
    assert "nested too deeply" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


# -- the HTTP service -------------------------------------------------------------------------

TOKEN = "s3cret-admin-token"


def raw_request(base, data: bytes) -> tuple[int, bytes]:
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                break
    reply = b"".join(chunks)
    if reply.startswith(b"HTTP/"):
        return int(reply.split(b" ", 2)[1]), reply
    # An HTTP/0.9-looking request gets the error page without a status line.
    found = re.search(rb"Error code: (\d+)", reply)
    return (int(found.group(1)) if found else 0), reply


def _complete(reply: bytes) -> bool:
    head, _, body = reply.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return True


def request(base, method, path, headers=(), body=b""):
    lines = [f"{method} {path} HTTP/1.1", "Host: test", "Connection: close", *headers]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return raw_request(base, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)


def test_service_answers_hostile_requests_with_4xx_and_no_trace(private_redis, exchange,
                                                                 tmp_path):  # fmt: skip
    server = private_redis()
    client = redis.Redis.from_url(server.url)
    log = tmp_path / "serve.log"
    with serving(server.url, exchange, log, WOWEVENT_ADMIN_TOKEN=TOKEN) as (_, base):
        bearer = f"Authorization: Bearer {TOKEN}"
        publish_body = json.dumps({"type": "order.created", "data": {}}).encode()
        cases = {
            "unknown method": request(base, "BREW", "/health"),
            "delete": request(base, "DELETE", "/status"),
            "post to a GET route": request(base, "POST", "/status", body=b"{}"),
            "traversal": request(base, "GET", "/../../etc/passwd"),
            "encoded traversal": request(base, "GET", "/admin/%2e%2e/%2e%2e/etc/passwd"),
            "traversal into admin": request(base, "GET", "/health/../admin/bindings"),
            "admin id traversal": request(base, "GET", "/admin/bindings/..%2f..%2fx", [bearer]),
            "no token": request(base, "POST", "/admin/publish", body=publish_body),
            "wrong token": request(base, "POST", "/admin/publish", ["Authorization: Bearer no"],
                                   publish_body),
            "token in query": request(base, "POST", f"/admin/publish?token={TOKEN}",
                                      body=publish_body),
            "basic auth": request(base, "POST", "/admin/publish",
                                  [f"Authorization: Basic {TOKEN}"], publish_body),
            "huge header": request(base, "GET", "/health", ["X-Big: " + "a" * 70_000]),
            "many headers": request(base, "GET", "/health", [f"X-{i}: v" for i in range(200)]),
            "huge request line": request(base, "GET", "/" + "a" * 70_000),
            "bad content-length": raw_request(base, b"POST /admin/publish HTTP/1.1\r\n"
                                              b"Content-Length: nope\r\n\r\n"),
            "negative content-length": raw_request(base, b"POST /admin/publish HTTP/1.1\r\n"
                                                   b"Content-Length: -5\r\n\r\n"),
            "deep JSON body": request(base, "POST", "/admin/publish", [bearer],
                                      b"[" * DEPTH + b"]" * DEPTH),
            "invalid UTF-8 body": request(base, "POST", "/admin/publish", [bearer],
                                          b'{"t":"\xff"}'),
            "NaN body": request(base, "POST", "/admin/publish", [bearer],
                                b'{"type": "a.b", "data": NaN}'),
            "wildcard type": request(base, "POST", "/admin/publish", [bearer],
                                     b'{"type": "order.#", "data": {}}'),
            "bad query": request(base, "GET", "/status?window=1e309"),
            "garbage": raw_request(base, b"\x00\xff\xfe garbage\r\n\r\n"),
        }  # fmt: skip
        for name, (status, reply) in cases.items():
            assert 400 <= status < 500, (name, status, reply[:300])
            assert b"Traceback" not in reply, name
        assert client.xlen(names.log_key(exchange)) == 0  # no admin action got through
        status, reply = request(base, "POST", "/admin/publish", [bearer], publish_body)
        assert status == 415, reply  # a body must say it is JSON
        json_type = "Content-Type: application/json"
        status, reply = request(base, "POST", "/admin/publish", [bearer, json_type], publish_body)
        assert status == 201, reply  # the service still works, and the token does
        assert client.xlen(names.log_key(exchange)) == 1
    text = log.read_text()
    assert "Traceback" not in text
    assert TOKEN not in text


def test_service_without_a_token_has_no_admin_routes(private_redis, exchange, tmp_path):
    server = private_redis()
    with serving(server.url, exchange, tmp_path / "serve.log") as (_, base):
        for token in ("", "anything"):
            headers = [f"Authorization: Bearer {token}"] if token else []
            status, _ = request(base, "POST", "/admin/publish", headers, b'{"type": "a.b"}')
            assert status == 404
    assert redis.Redis.from_url(server.url).xlen(names.log_key(exchange)) == 0
