"""The compose file's commands, run as local processes against a local Redis.

No Docker engine runs here, so each service's ``command`` and ``healthcheck`` are taken from
``compose/docker-compose.yml`` verbatim and run with the repository standing in for the image's
``/app`` and this virtualenv for its ``/opt/wowevent``. Only addresses, ports and the exchange are
overridden through the environment, as a deployment would set them.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.conftest import ROOT, wait_for
from tests.deployfiles import (
    RABBITMQ_OVERLAY,
    compose,
    dockerfile_stages,
    exec_form,
    healthcheck,
    local_command,
    service_env,
)
from tests.integration.serving import free_port
from wowevent_kombu import EventBus
from wowevent_kombu.testing.redisserver import RedisServer, redis_server_binary

pytestmark = pytest.mark.integration


class Process:
    """One service's command running locally, its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._out = log.open("wb")
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def text(self) -> str:
        if self.proc.poll() is not None and self.proc.returncode != 0:
            raise AssertionError(f"exited with {self.proc.returncode}:\n{self.log.read_text()}")
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM, as `docker compose stop` sends
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


@pytest.fixture
def compose_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server started with the compose file's Redis arguments."""
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    command = compose()["services"]["redis"]["command"]
    assert command[0] == "redis-server"
    server = RedisServer(directory=tmp_path / "redis-data", extra=list(command[1:]))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def run_check(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


# The least-privileged Redis user the runbook recommends (docs/runbooks/operations.md).
BUS_ACL = ["on", ">bus-s3cret", "~*", "&*", "+@all", "-@dangerous"]


def test_the_compose_commands_run_the_bus(compose_redis: RedisServer, tmp_path: Path) -> None:
    admin = redis.Redis.from_url(compose_redis.url)
    admin.execute_command("ACL", "SETUSER", "bus", *BUS_ACL)
    admin.close()
    url = f"redis://bus:bus-s3cret@127.0.0.1:{compose_redis.port}/0"
    exchange = f"t{tmp_path.name[-8:].replace('_', '')}c"
    services = compose()["services"]
    client = redis.Redis.from_url(url)

    # Redis: the compose arguments give durability and a loud failure when memory is full.
    admin = redis.Redis.from_url(compose_redis.url)
    config = admin.config_get("*")
    admin.close()
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["maxmemory-policy"] == "noeviction"
    redis_check = healthcheck("redis")
    assert redis_check[0] == "redis-cli"
    ping = run_check([redis_check[0], "-p", str(compose_redis.port), *redis_check[1:]], {})
    assert ping.stdout.strip() == "PONG", ping

    common = {"WOWEVENT_BROKER_URL": url, "WOWEVENT_EXCHANGE": exchange}
    serve_port = free_port()
    service_environ = service_env(
        "service",
        {**common, "WOWEVENT_SERVE_HOST": "127.0.0.1", "WOWEVENT_SERVE_PORT": str(serve_port)},
    )
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    worker_environ = service_env(
        "worker",
        {**common, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
         "WOWEVENT_METRICS_PORT": "0", "WOWEVENT_METRICS_ADDR": "127.0.0.1",
         "HOSTNAME": socket.gethostname()},
    )  # fmt: skip
    base = f"http://127.0.0.1:{serve_port}"
    started: list[Process] = []
    try:
        # The service first: not ready while no worker has bound the app's subscribers.
        service = Process(local_command(services["service"]["command"]), service_environ,
                          tmp_path / "service.log")  # fmt: skip
        started.append(service)
        wait_for(lambda: "serving on" in service.text(), 30, 0.05, "wowevent serve to listen")
        status, body = get(f"{base}/ready")
        assert status == 503, body
        assert get(f"{base}/health") == (200, {"status": "ok"})

        worker = Process(local_command(services["worker"]["command"]), worker_environ,
                         tmp_path / "worker.log")  # fmt: skip
        started.append(worker)
        wait_for(lambda: " ready." in worker.text(), 60, 0.1, "the worker to be ready")
        assert "prefork" in worker.text()
        # The command's --time-limit is the handlers' limit the start-up check compares with
        # the visibility timeout: no subscriber is reported as unlimited.
        assert "has no time_limit" not in worker.text()

        # The worker handles an event published by a process that knows no subscriber code.
        bus = EventBus(Celery("publisher", broker=url, set_as_current=False), exchange=exchange)
        try:
            event = bus.publish("order.created", {"order_id": "c-1"}, source="compose-test")
        finally:
            bus.close()

        def handled() -> set[str]:
            notes = [json.loads(raw) for raw in client.lrange(f"{exchange}:demo:notes", 0, -1)]
            return {n["subscriber"] for n in notes if n["event_id"] == event.id}

        assert wait_for(lambda: handled() >= {"billing", "audit"}, 30, 0.05, "the deliveries")
        assert handled() == {"billing", "audit"}

        # Instrumented as docs/observability.md says: the prefork children's counts, summed
        # from PROMETHEUS_MULTIPROC_DIR, on the worker's own metrics port.
        found = re.search(r"wowevent metrics on (http://\S+)", worker.text())
        assert found, worker.text()

        def counted() -> bool:
            with urllib.request.urlopen(found.group(1), timeout=5) as reply:
                text = reply.read().decode()
            return 'subscriber="billing"' in text and "wowevent_deliveries_total" in text

        wait_for(counted, 20, 0.1, "the worker's metrics to count the delivery")
        assert list(metrics_dir.glob("*.db")), "prefork children write to the multiprocess dir"

        # The service is ready now, and both healthchecks (compose's and the image's) agree.
        wait_for(lambda: get(f"{base}/ready")[0] == 200, 30, 0.1, "/ready to answer 200")
        check = run_check(healthcheck("service"), service_environ)
        assert check.returncode == 0, check
        image_check = [args for name, args in dockerfile_stages()[-1][1] if name == "HEALTHCHECK"]
        image_argv = exec_form(image_check[0].split(" CMD ", 1)[1])
        check = run_check(image_argv, service_environ)
        assert check.returncode == 0, check

        # The worker's healthcheck reaches its consumer loop through the broker.
        check = run_check(healthcheck("worker"), worker_environ)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "pong" in check.stdout

        # SIGTERM is a warm shutdown: the worker exits cleanly and says so.
        assert worker.stop() == 0
        assert "warm shutdown" in worker.log.read_text().lower()
        status, body = get(f"{base}/ready")
        assert status == 200, body  # bindings outlive the worker: events keep queueing
    finally:
        for process in reversed(started):
            process.stop()
        client.close()
    assert service.proc.returncode == 0, service.log.read_text()


def test_the_compose_flower_command_answers_its_healthcheck(
    compose_redis: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    env = service_env(
        "flower",
        {"WOWEVENT_BROKER_URL": compose_redis.url, "FLOWER_PORT": str(port),
         "FLOWER_ADDRESS": "127.0.0.1"},
    )  # fmt: skip
    flower = Process(local_command(compose()["services"]["flower"]["command"]), env,
                     tmp_path / "flower.log")  # fmt: skip
    try:

        def healthy() -> bool:
            flower.text()
            return run_check(healthcheck("flower"), env).returncode == 0

        wait_for(healthy, 30, 0.2, "Flower's /healthcheck")
    finally:
        flower.stop()


def test_the_rabbitmq_overlay_commands_run_the_bus(
    amqp_url: str, redis_url: str, tmp_path: Path
) -> None:
    """docker-compose.rabbitmq.yml's worker and service, locally, on RabbitMQ and Redis."""
    doc = compose(RABBITMQ_OVERLAY)
    services = doc["services"]
    exchange = f"t{tmp_path.name[-8:].replace('_', '')}r"
    common = {"WOWEVENT_BROKER_URL": amqp_url, "WOWEVENT_STORE_URL": redis_url,
              "WOWEVENT_EXCHANGE": exchange}  # fmt: skip
    serve_port = free_port()
    service_environ = service_env(
        "service",
        {**common, "WOWEVENT_SERVE_HOST": "127.0.0.1", "WOWEVENT_SERVE_PORT": str(serve_port)},
        doc,
    )
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    worker_environ = service_env(
        "worker",
        {**common, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "WOWEVENT_METRICS_PORT": "0",
         "WOWEVENT_METRICS_ADDR": "127.0.0.1", "HOSTNAME": socket.gethostname()},
        doc,
    )  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    app = Celery("publisher", broker=amqp_url, set_as_current=False)
    app.conf.wowevent_store_url = redis_url
    bus = EventBus(app, exchange=exchange)
    started: list[Process] = []
    base = f"http://127.0.0.1:{serve_port}"
    try:
        worker = Process(local_command(services["worker"]["command"]), worker_environ,
                         tmp_path / "worker.log")  # fmt: skip
        started.append(worker)
        wait_for(lambda: " ready." in worker.text(), 60, 0.1, "the worker to be ready")
        service = Process(local_command(services["service"]["command"]), service_environ,
                          tmp_path / "service.log")  # fmt: skip
        started.append(service)
        wait_for(lambda: "serving on" in service.text(), 30, 0.05, "wowevent serve to listen")
        wait_for(lambda: get(f"{base}/ready")[0] == 200, 30, 0.1, "/ready to answer 200")

        event = bus.publish("order.created", {"order_id": "r-1"}, source="compose-test")

        def handled() -> set[str]:
            notes = [json.loads(raw) for raw in client.lrange(f"{exchange}:demo:notes", 0, -1)]
            return {n["subscriber"] for n in notes if n["event_id"] == event.id}

        assert wait_for(lambda: handled() >= {"billing", "audit"}, 30, 0.05, "the deliveries")
        assert handled() == {"billing", "audit"}
        assert bus.log.get(event.id) is not None  # the log stays in Redis
        check = run_check(healthcheck("worker"), worker_environ)
        assert check.returncode == 0, check.stdout + check.stderr
        assert worker.stop() == 0
    finally:
        for process in reversed(started):
            process.stop()
        from kombu import Connection

        with Connection(amqp_url) as conn:
            channel = conn.channel()
            for name in bus.bindings():
                channel.queue_delete(f"{exchange}.{name}")
            for name in (exchange, f"{exchange}.pinned"):
                channel.exchange_delete(name)
        for key in client.scan_iter(match=f"{exchange}*", count=1000):
            client.delete(key)
        bus.close()
        client.close()
