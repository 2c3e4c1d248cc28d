"""The HTTP service: endpoints, status codes, admin token, concurrency and SIGTERM."""

from __future__ import annotations

import http.client
import json
import logging
import signal
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from prometheus_client import CollectorRegistry

from tests.integration.serving import serving
from wowevent_kombu import EventBus, HealthRules, instrument
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.observability.collector import ClusterCollector
from wowevent_kombu.observability.service import StatusService, make_server
from wowevent_kombu.observability.status import ClusterReader

TOKEN = "t0ken"


def make_bus(redis_url: str, exchange: str) -> EventBus:
    bus = EventBus(Celery("svc", broker=redis_url, set_as_current=False), exchange=exchange)

    @bus.subscriber("order.*", name="billing")
    def billing(event: Any) -> None:
        return None

    return bus


@pytest.fixture
def service(redis_url: str, exchange: str) -> Iterator[tuple[EventBus, str]]:
    bus = make_bus(redis_url, exchange)
    registry = CollectorRegistry()
    instrument(bus, registry)
    reader = ClusterReader(make_client(bus.settings), exchange, HealthRules())
    registry.register(ClusterCollector(reader))
    server = make_server(StatusService(bus, reader, registry, admin_token=TOKEN), "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield bus, f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    bus.close()


def call(
    address: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(address, timeout=5)
    payload = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method, path, body=payload, headers=headers or {})
    reply = conn.getresponse()
    data = reply.read()
    conn.close()
    return reply.status, {k.lower(): v for k, v in reply.getheaders()}, data


def test_health_answers_and_ready_needs_the_bindings(service: tuple[EventBus, str]) -> None:
    bus, address = service
    assert call(address, "GET", "/health")[0] == 200
    status, _, body = call(address, "GET", "/ready")
    assert status == 503
    assert "billing" in json.loads(body)["reason"]
    bus.declare()
    status, _, body = call(address, "GET", "/ready")
    assert (status, json.loads(body)["ready"]) == (200, True)


def test_ready_says_redis_is_down(exchange: str) -> None:
    bus = make_bus("redis://127.0.0.1:1/0", exchange)
    reader = ClusterReader(make_client(bus.settings), exchange, HealthRules())
    registry = CollectorRegistry()
    registry.register(ClusterCollector(reader))
    svc = StatusService(bus, reader, registry)
    ready = svc.dispatch("GET", "/ready", {}, None)
    assert ready.status == 503
    assert "Redis does not answer" in ready.body["reason"]
    # /metrics still answers, with the failure as a metric; /status is 503, not a traceback.
    metrics = svc.dispatch("GET", "/metrics", {}, None)
    assert metrics.status == 200
    assert b'wowevent_redis_up{exchange="' + exchange.encode() + b'"} 0.0' in metrics.body
    status = svc.dispatch("GET", "/status", {}, None)
    assert status.status == 503
    assert "Traceback" not in json.dumps(status.body)


def test_bad_paths_methods_and_queries_get_4xx(service: tuple[EventBus, str]) -> None:
    _, address = service
    assert call(address, "GET", "/nope")[0] == 404
    status, headers, _ = call(address, "POST", "/status")
    assert (status, headers["allow"]) == (405, "GET")
    assert call(address, "DELETE", "/health")[0] == 405
    assert call(address, "BREW", "/health")[0] == 405
    status, _, body = call(address, "GET", "/status?window=abc")
    assert status == 400
    assert "window" in json.loads(body)["error"]
    assert call(address, "GET", "/status?window=0")[0] == 400
    assert call(address, "GET", "/status?window=5&window=6")[0] == 400
    status, _, body = call(address, "GET", "/metrics?format=x")
    assert status == 400
    assert "format" in json.loads(body)["error"]
    assert call(address, "GET", "/status?window=30")[0] == 200


def test_a_secret_in_a_request_query_is_never_logged(
    service: tuple[EventBus, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, address = service
    caplog.set_level(logging.INFO, logger="wowevent_kombu.observability.service")
    status, _, body = call(address, "GET", "/status?password=s3cret&Token=t0p-s3cret")
    assert status == 400 and b"s3cret" not in body
    lines = [record.getMessage() for record in caplog.records]
    assert any("/status?password=***&Token=*** HTTP/1.1" in line for line in lines), lines
    assert not [line for line in lines if "s3cret" in line]


def test_admin_routes_need_the_bearer_token(service: tuple[EventBus, str]) -> None:
    bus, address = service
    bus.declare()
    status, headers, _ = call(address, "GET", "/admin/bindings")
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    bad = {"Authorization": "Bearer wrong"}
    assert call(address, "GET", "/admin/bindings", headers=bad)[0] == 403
    good = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = call(address, "GET", "/admin/bindings", headers=good)
    assert (status, json.loads(body)) == (200, {"billing": ["order.*"]})
    status, _, body = call(address, "POST", "/admin/publish", {"type": "order.placed"}, good)
    assert status == 201
    assert json.loads(body)["type"] == "order.placed"
    assert call(address, "POST", "/admin/publish", {"type": "Bad Type!"}, good)[0] == 422
    assert call(address, "POST", "/admin/publish", b"{not json", good)[0] == 400
    assert call(address, "POST", "/admin/publish", {"type": "a.b", "x": 1}, good)[0] == 400
    assert call(address, "POST", "/admin/publish", [1], good)[0] == 400
    # An oversized body is refused from its Content-Length, before it is read.
    conn = http.client.HTTPConnection(address, timeout=5)
    conn.putrequest("POST", "/admin/publish")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.putheader("Content-Length", str(2 * 1024 * 1024))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    # The publishes were counted by the bus's metrics and served on /metrics.
    _, _, text = call(address, "GET", "/metrics")
    assert b'wowevent_events_published_total{exchange="' in text
    assert b'wowevent_validation_failures_total{exchange="' in text


def test_admin_routes_do_not_exist_without_a_token(redis_url: str, exchange: str) -> None:
    bus = make_bus(redis_url, exchange)
    reader = ClusterReader(make_client(bus.settings), exchange, HealthRules())
    svc = StatusService(bus, reader, CollectorRegistry())
    assert svc.dispatch("GET", "/admin/bindings", {}, None).status == 404
    auth = {"authorization": "Bearer anything"}
    assert svc.dispatch("POST", "/admin/publish", auth, b'{"type":"a.b"}').status == 404
    bus.close()


def test_concurrent_probes_are_all_answered(service: tuple[EventBus, str]) -> None:
    _, address = service
    paths = ["/health", "/ready", "/metrics", "/status"] * 10
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda p: call(address, "GET", p)[0], paths))
    assert set(codes) <= {200, 503}
    assert codes.count(200) >= 30


def test_serve_process_stops_gracefully_on_sigterm(
    redis_url: str, exchange: str, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with serving(redis_url, exchange, log) as (proc, base):
        address = base.removeprefix("http://")
        status, _, body = call(address, "GET", "/status")
        assert status == 200
        assert {s["subscriber"] for s in json.loads(body)["subscribers"]} == set()
        assert call(address, "GET", "/admin/bindings")[0] == 404
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    assert "stopped" in log.read_text()
    assert "Traceback" not in log.read_text()
