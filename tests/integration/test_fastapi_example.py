"""The FastAPI example, as a user runs it: uvicorn serving it, a Celery worker, real HTTP."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis

from tests.conftest import ROOT, Worker, wait_for
from tests.integration.serving import free_port


def test_orders_posted_over_http_are_published_and_fulfilled(
    start_worker: Callable[..., Worker],
    redis_url: str,
    redis_client: redis.Redis,
    exchange: str,
    tmp_path: Path,
) -> None:
    env = {"WOWEVENT_BROKER_URL": redis_url, "WOWEVENT_EXCHANGE": exchange}
    start_worker("examples.fastapi_service", pool="threads", concurrency=2, env=env)
    port = free_port()
    log = (tmp_path / "uvicorn.log").open("wb")
    service = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.fastapi_service:api", "--port", str(port),
         "--host", "127.0.0.1"],
        cwd=ROOT, env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def post(body: object, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/orders", json.dumps(body),
                     {"Content-Type": "application/json", **headers})  # fmt: skip
        reply = conn.getresponse()
        data = json.loads(reply.read())
        conn.close()
        return reply.status, data

    def up() -> bool | None:
        try:
            return post({"sku": "warmup", "quantity": 1}, {})[0] == 202 or None
        except OSError:
            return None

    try:
        wait_for(up, 30, 0.1, "the FastAPI service to answer")
        answers = [post({"sku": f"SKU-{n}", "quantity": n + 1}, {"X-Correlation-ID": "req-42"})
                   for n in range(5)]  # fmt: skip
        assert {status for status, _ in answers} == {202}
        assert post({"sku": "", "quantity": 0}, {})[0] == 422  # the service validates its input
    finally:
        service.terminate()
        stopped = service.wait(10)
        log.close()
    # uvicorn exits by the signal it got, once the lifespan has closed the bus's connections.
    assert stopped in (0, -15)
    assert "Application shutdown complete" in (tmp_path / "uvicorn.log").read_text()
    key = f"{exchange}:fulfilled"
    wait_for(lambda: redis_client.llen(key) >= 6 or None, 30, 0.05, "six fulfilled orders")
    notes = [json.loads(raw) for raw in redis_client.lrange(key, 0, -1)]
    ours = [n for n in notes if n["correlation_id"] == "req-42"]
    assert sorted(n["sku"] for n in ours) == [f"SKU-{n}" for n in range(5)]
    assert {n["event_id"] for n in ours} == {body["event_id"] for _, body in answers}
    assert "Traceback" not in (tmp_path / "uvicorn.log").read_text()
