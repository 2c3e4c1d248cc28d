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

from wowevent_kombu.testing.redisserver import RedisServer, answers

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
        # A node name of its own: on RabbitMQ a node's control queue is exclusive, so two
        # workers called celery@<host> (another test run's, say) cannot both start.
        node = [] if "-n" in args else ["-n", f"{exchange}-{len(workers)}@%h"]
        worker = Worker(app, environ, log, ["-P", pool, "-c", str(concurrency), *node, *args])
        workers.append(worker)
        return worker.wait_ready() if ready else worker

    yield start
    for worker in workers:
        # Teardown only: a worker whose warm shutdown hangs in billiard is hard-stopped sooner.
        worker.stop(timeout=10)


def seen(client: redis.Redis, exchange: str) -> list[dict[str, Any]]:
    """Executions recorded by the test apps' handlers, in order."""
    return [json.loads(raw) for raw in client.lrange(f"{exchange}:seen", 0, -1)]


DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"


def amqp_answers(url: str) -> bool:
    """Whether a RabbitMQ answers at ``url`` (a real AMQP handshake, not a port probe)."""
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
        return True
    except Exception:  # any failure means "not usable"
        return False


@pytest.fixture(scope="session")
def amqp_url() -> str:
    """A RabbitMQ that answers: WOWEVENT_TEST_AMQP_URL or the local one (guest/guest).

    Skipped with the reason when none answers, except under CI (``CI`` set), where a missing
    RabbitMQ fails the run: ``make test`` starts the local one when it can.
    """
    url = os.environ.get("WOWEVENT_TEST_AMQP_URL") or DEFAULT_AMQP_URL
    if amqp_answers(url):
        return url
    reason = (
        f"no RabbitMQ answers at {url}: start one (rabbitmq-server -detached) or set "
        "WOWEVENT_TEST_AMQP_URL"
    )
    if os.environ.get("CI"):
        pytest.fail(reason + " (CI is set, so RabbitMQ tests may not be skipped)")
    pytest.skip(reason)


class Broker:
    """One broker under test: its URL, the worker environment and a publisher bus factory."""

    def __init__(self, kind: str, url: str, redis_url: str, exchange: str) -> None:
        self.kind = kind
        self.url = url
        self.redis_url = redis_url
        self.exchange = exchange
        self._buses: list[Any] = []

    @property
    def worker_env(self) -> dict[str, str]:
        return {"WOWEVENT_TEST_BROKER_URL": self.url} if self.kind == "amqp" else {}

    def bus(self, **options: Any) -> Any:
        """A publisher's bus on this broker (closed at teardown)."""
        from celery import Celery

        from wowevent_kombu import EventBus

        app = Celery("publisher", broker=self.url, set_as_current=False)
        if self.kind == "amqp":
            app.conf.wowevent_store_url = self.redis_url
        made = EventBus(app, exchange=self.exchange, **options)
        self._buses.append(made)
        return made

    def cleanup(self) -> None:
        """Delete the test's RabbitMQ queues and exchanges (Redis keys go with ``exchange``)."""
        if self.kind == "amqp":
            from kombu import Connection

            from wowevent_kombu.core import names

            queues = set()
            for bus in self._buses:
                with contextlib.suppress(Exception):
                    queues |= {names.queue_name(self.exchange, n) for n in bus.bindings()}
                    queues |= {s.queue for s in bus.subscribers.values()}
            with Connection(self.url) as conn:
                channel = conn.channel()
                for queue in sorted(queues):
                    channel.queue_delete(queue)
                for exchange in (self.exchange, names.pinned_exchange(self.exchange)):
                    channel.exchange_delete(exchange)
        for bus in self._buses:
            bus.close()


@pytest.fixture(params=["redis", "amqp"])
def broker(request: pytest.FixtureRequest, redis_url: str, exchange: str) -> Iterator[Broker]:
    """Each core behaviour test runs on Redis and on RabbitMQ (``amqp://``)."""
    url = request.getfixturevalue("amqp_url") if request.param == "amqp" else redis_url
    made = Broker(request.param, url, redis_url, exchange)
    yield made
    made.cleanup()
