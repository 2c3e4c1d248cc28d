"""Flower, run as a real process, lists subscriber deliveries under their names and states."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Worker, wait_for
from tests.integration.serving import app_env, free_port
from tests.integration.test_observability import publisher

pytestmark = pytest.mark.integration


def tasks(base: str) -> dict[str, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{base}/api/tasks", timeout=5) as reply:
            return dict(json.loads(reply.read()))
    except OSError:
        return {}


def test_flower_lists_subscriber_tasks_with_their_states(
    start_worker: Callable[..., Worker], redis_url: str, exchange: str, tmp_path: Path
) -> None:
    start_worker("tests.apps.observed", "-E")
    port = free_port()
    log = tmp_path / "flower.log"
    out = log.open("wb")
    # Flower 2 serves its API only with authentication or this explicit opt-out.
    env = app_env(redis_url, exchange, FLOWER_UNAUTHENTICATED_API="true")
    flower = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.apps.observed", "flower",
         f"--port={port}", "--address=127.0.0.1"],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    bus = publisher(redis_url, exchange)
    try:

        def listening() -> bool:
            if flower.poll() is not None:
                raise AssertionError(f"flower exited:\n{log.read_text()}")
            return "Visit me at" in log.read_text() or bool(tasks(base) or _answers(base))

        wait_for(listening, 30, 0.1, "Flower to listen")
        # Flower sees only events sent while it is connected: publish until it has seen both.
        events = {"ok": "obs.ok", "doomed": "obs.doomed", "flaky": "obs.flaky"}
        data = {"ok": {}, "doomed": {}, "flaky": {"fail_times": 1}}
        wanted = {"ok": "SUCCESS", "doomed": "FAILURE", "flaky": "SUCCESS"}

        def shown() -> dict[str, Any] | None:
            listed = tasks(base)
            states = {(t.get("name"), t.get("state")) for t in listed.values()}
            missing = [n for n, s in wanted.items() if (n, s) not in states]
            for name in missing:
                bus.publish(events[name], data[name])
            return None if missing else listed

        listed = wait_for(shown, 30, 0.5, "Flower to list the subscriber tasks")
        flaky = [t for t in listed.values() if t["name"] == "flaky" and t["state"] == "SUCCESS"]
        assert flaky[0]["retries"] == 1
        assert "obs.flaky" in flaky[0]["kwargs"]
        names = {t["name"] for t in listed.values()}
        assert names <= {"ok", "doomed", "flaky", "toggle", "slow"}
    finally:
        bus.close()
        flower.terminate()
        try:
            flower.wait(15)
        except subprocess.TimeoutExpired:
            flower.kill()
            flower.wait()
        out.close()


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthcheck", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False
