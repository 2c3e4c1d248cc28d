"""Shared fixtures: a real Redis, unique names per test, real Celery worker processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from wowevent_kombu.redisserver import RedisServer, answers

ROOT = Path(__file__).resolve().parent.parent


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 20.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis that answers: WOWEVENT_TEST_REDIS_URL, the local one, or a private server."""
    wanted = os.environ.get("WOWEVENT_TEST_REDIS_URL")
    if wanted:
        yield wanted
        return
    if answers("redis://127.0.0.1:6379/0"):
        yield "redis://127.0.0.1:6379/0"
        return
    with RedisServer() as server:
        yield server.url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def exchange(redis_client: redis.Redis) -> Iterator[str]:
    """A unique exchange per test; every key and queue of the test's bus starts with it."""
    name = f"t{uuid.uuid4().hex[:10]}"
    yield name
    doomed = [*redis_client.scan_iter(match=f"{name}*", count=1000)]
    doomed += [f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}"]
    redis_client.delete(*doomed)


class Worker:
    """A real ``celery worker`` process running a test app."""

    def __init__(self, app: str, env: dict[str, str], log: Path, args: list[str]) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", app, "worker", "-l", "info",
             "--without-gossip", "--without-mingle", "--without-heartbeat", *args],
            cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> Worker:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.text()}")
            return " ready." in self.text()

        wait_for(ready, timeout, 0.05, "the worker to be ready")
        return self

    def stop(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # A hard stop after the grace period, for the pool children too.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._out.close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once (a machine losing power)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._out.close()

    def children(self) -> list[int]:
        """Pids of the pool's child processes."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]


@pytest.fixture
def start_worker(redis_url: str, exchange: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start ``celery worker`` processes for a test app; each is stopped at teardown."""
    workers: list[Worker] = []

    def start(
        app: str = "tests.apps.shop",
        *args: str,
        env: dict[str, str] | None = None,
        pool: str = "solo",
        concurrency: int = 1,
        ready: bool = True,
    ) -> Worker:
        environ = {
            **os.environ,
            "WOWEVENT_TEST_REDIS_URL": redis_url,
            "WOWEVENT_TEST_EXCHANGE": exchange,
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        }
        log = tmp_path / f"worker-{len(workers)}.log"
        worker = Worker(app, environ, log, ["-P", pool, "-c", str(concurrency), *args])
        workers.append(worker)
        return worker.wait_ready() if ready else worker

    yield start
    for worker in workers:
        worker.stop()


def seen(client: redis.Redis, exchange: str) -> list[dict[str, Any]]:
    """Executions recorded by the test apps' handlers, in order."""
    return [json.loads(raw) for raw in client.lrange(f"{exchange}:seen", 0, -1)]
