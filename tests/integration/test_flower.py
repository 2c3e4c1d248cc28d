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
from wowevent_kombu.core import names as task_names

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
        # Flower sees only task events sent while it is connected, and a log line or an HTTP
        # answer does not say it is. A probe delivery that Flower lists whole (received, so
        # named, and succeeded) does: every task published after that one is seen from start.
        probes: set[str] = set()

        def receiving() -> bool:
            if flower.poll() is not None:
                raise AssertionError(f"flower exited:\n{log.read_text()}")
            listed = tasks(base)
            if any(
                listed.get(i, {}).get("name") == "ok" and listed[i].get("state") == "SUCCESS"
                for i in probes
            ):
                return True
            probe = bus.publish("obs.ok", {"probe": len(probes)})
            probes.add(task_names.task_id(probe.id, "ok"))
            return False

        wait_for(receiving, 60, 0.25, "Flower to receive the worker's task events")
        workload = {
            "ok": bus.publish("obs.ok", {}),
            "doomed": bus.publish("obs.doomed", {}),
            "flaky": bus.publish("obs.flaky", {"fail_times": 1}),
        }
        ids = {name: task_names.task_id(event.id, name) for name, event in workload.items()}
        wanted = {"ok": "SUCCESS", "doomed": "FAILURE", "flaky": "SUCCESS"}

        def shown() -> dict[str, dict[str, Any]] | None:
            listed = tasks(base)
            got = {name: listed.get(task_id, {}) for name, task_id in ids.items()}
            states = {name: task.get("state") for name, task in got.items()}
            return got if states == wanted else None

        try:
            listed = wait_for(shown, 30, 0.2, "Flower to list the subscriber deliveries")
        except AssertionError:
            raise AssertionError(f"Flower lists {tasks(base)} for {ids}") from None
        # Each delivery under its subscriber's task name, with its retry and its event.
        assert {name: task["name"] for name, task in listed.items()} == {n: n for n in ids}
        assert listed["flaky"]["retries"] == 1
        assert "obs.flaky" in listed["flaky"]["kwargs"]
    finally:
        bus.close()
        flower.terminate()
        try:
            flower.wait(15)
        except subprocess.TimeoutExpired:
            flower.kill()
            flower.wait()
        out.close()
