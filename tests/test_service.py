"""The HTTP service's probes over real HTTP: status codes, query checks, logging, SIGTERM."""

from __future__ import annotations

import json
import logging
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.serving import serving
from tests.web.live import ADMIN, call, live_service, make_bus
from wowevent_kombu import EventBus
from wowevent_kombu.web.auth import Tokens


@pytest.fixture
def service(redis_url: str, exchange: str) -> Iterator[tuple[EventBus, str]]:
    bus = make_bus(redis_url, exchange)
    with live_service(bus, tokens=Tokens(admin=ADMIN)) as address:
        yield bus, address
    bus.close()


def test_health_answers_and_ready_needs_the_bindings(service: tuple[EventBus, str]) -> None:
    bus, address = service
    assert call(address, "GET", "/health")[:3:2] == (200, {"status": "ok"})
    status, _, body = call(address, "GET", "/ready")
    assert status == 503 and "billing" in body["reason"] and "wowevent declare" in body["reason"]
    bus.declare()
    assert call(address, "GET", "/ready")[:3:2] == (200, {"ready": True, "bound_subscribers": 2})


def test_ready_says_redis_is_down(exchange: str) -> None:
    bus = make_bus("redis://127.0.0.1:1/0", exchange)
    with live_service(bus) as address:
        status, _, body = call(address, "GET", "/ready")
        assert status == 503 and "Redis does not answer" in body["reason"]
        status, headers, body = call(address, "GET", "/status")
        assert status == 503 and "Redis is unavailable" in body["error"]
        assert headers["retry-after"] == "5"
        assert call(address, "GET", "/health")[0] == 200
    bus.close()


def test_bad_paths_methods_and_queries_get_json_4xx(service: tuple[EventBus, str]) -> None:
    _, address = service
    status, headers, body = call(address, "GET", "/nope")
    assert (status, body) == (404, {"error": "Not Found"})
    status, headers, body = call(address, "POST", "/status")
    assert (status, headers["allow"]) == (405, "GET")
    assert body == {"error": "Method Not Allowed"}
    assert call(address, "DELETE", "/health")[0] == 405
    assert call(address, "BREW", "/health")[0] == 405
    status, _, body = call(address, "GET", "/status?window=abc")
    assert status == 400 and "window" in body["error"]
    assert call(address, "GET", "/status?window=0")[0] == 400
    assert call(address, "GET", "/status?window=901")[0] == 400
    assert call(address, "GET", "/status?window=nan")[0] == 400
    assert call(address, "GET", "/status?window=30")[0] == 200


def test_head_is_answered_on_every_get_route(service: tuple[EventBus, str]) -> None:
    _, address = service
    for path in ("/health", "/ready", "/metrics", "/status", "/openapi.json"):
        status, headers, body = call(address, "HEAD", path)
        assert status in (200, 503), path
        assert body == b"" and int(headers["content-length"]) > 0, path


def test_a_secret_in_a_request_query_is_never_logged(
    service: tuple[EventBus, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, address = service
    caplog.set_level(logging.INFO, logger="wowevent_kombu.web.access")
    status, _, body = call(address, "GET", "/status?password=s3cret&Token=t0p-s3cret")
    assert status == 200 and b"s3cret" not in json.dumps(body).encode()
    lines = [record.getMessage() for record in caplog.records]
    assert any("GET /status?password=***&Token=*** 200" in line for line in lines), lines
    assert not [line for line in lines if "s3cret" in line]


def test_every_answer_carries_the_security_headers(service: tuple[EventBus, str]) -> None:
    _, address = service
    for path in ("/health", "/nope", "/admin/dlq"):
        _, headers, _ = call(address, "GET", path)
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"
        assert headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "server" not in headers


def test_concurrent_probes_are_all_answered(service: tuple[EventBus, str]) -> None:
    _, address = service
    paths = ["/health", "/ready", "/metrics", "/status"] * 10
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda p: call(address, "GET", p)[0], paths))
    assert set(codes) <= {200, 503}
    assert codes.count(200) >= 30


def test_openapi_describes_every_json_route(service: tuple[EventBus, str]) -> None:
    _, address = service
    status, _, spec = call(address, "GET", "/openapi.json")
    assert status == 200 and spec["openapi"].startswith("3.")
    paths = spec["paths"]
    for path in ("/health", "/ready", "/metrics", "/status", "/admin/dlq", "/admin/dlq/{record_id}",
                 "/admin/dlq/retry", "/admin/dlq/purge", "/admin/replays",
                 "/admin/replays/{replay_id}", "/admin/replays/{replay_id}/interrupt",
                 "/admin/replays/{replay_id}/resume", "/admin/replays/preview", "/admin/log",
                 "/admin/log/events/{event_id}", "/admin/subscribers", "/admin/schemas",
                 "/admin/schemas/check", "/admin/publish", "/admin/bindings"):  # fmt: skip
        assert path in paths, path
    assert not [p for p in paths if p.startswith("/console")]
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


def test_serve_process_stops_gracefully_on_sigterm(
    redis_url: str, exchange: str, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with serving(redis_url, exchange, log) as (proc, base):
        address = base.removeprefix("http://")
        status, _, body = call(address, "GET", "/status")
        assert status == 200
        assert {s["subscriber"] for s in body["subscribers"]} == set()
        assert call(address, "GET", "/admin/bindings")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert "stopped" in log.read_text()
    assert "Traceback" not in log.read_text()


def test_serve_refuses_a_short_or_reused_token(
    redis_url: str, exchange: str, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from wowevent_kombu.cli import cli

    runner = CliRunner()
    args = ["--broker", redis_url, "--exchange", exchange, "serve", "--port", "0"]
    result = runner.invoke(cli, [*args, "--admin-token", "short"])
    assert result.exit_code != 0 and "at least 16 characters" in result.output
    result = runner.invoke(cli, [*args, "--admin-token", ADMIN, "--read-token", ADMIN])
    assert result.exit_code != 0 and "must differ" in result.output
    result = runner.invoke(cli, [*args, "--read-token", ADMIN])
    assert result.exit_code != 0 and "needs an admin token" in result.output
