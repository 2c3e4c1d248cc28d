"""compose/Dockerfile built and run for real: worker, ``wowevent serve`` and Flower as containers.

Each container runs on the host's network against the test Redis with a unique exchange, with
the commands of compose/docker-compose.yml; only ports and addresses come from the environment.
Figures (start-up times, delivery counts) are printed, never asserted against a clock.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import redis
from celery import Celery

from tests.container.engine import Engine, wait_until
from tests.deployfiles import compose
from tests.integration.serving import free_port
from wowevent_kombu import EventBus

pytestmark = pytest.mark.docker

UID = "10001"


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class Stack:
    """The three containers of one test module and what they were given."""

    def __init__(self, engine: Engine, image: str, redis_url: str) -> None:
        self.engine = engine
        self.image = image
        self.redis_url = redis_url
        self.exchange = f"t{uuid.uuid4().hex[:10]}"
        self.serve_port = free_port()
        self.flower_port = free_port()
        self.metrics_port = free_port()
        self.started: dict[str, float] = {}

    def common(self) -> list[str]:
        return ["-e", f"WOWEVENT_BROKER_URL={self.redis_url}",
                "-e", f"WOWEVENT_EXCHANGE={self.exchange}"]  # fmt: skip

    def run(self, name: str, *args: str, command: list[str] | None = None) -> None:
        self.started[name] = time.monotonic()
        self.engine.run("run", "-d", "--name", name, "--network", "host", *self.common(), *args,
                        self.image, *(command or []))  # fmt: skip

    def worker(self, name: str) -> None:
        spec = compose()["services"]["worker"]
        self.run(
            name, "-e", "PROMETHEUS_MULTIPROC_DIR=/run/wowevent/metrics",
            "-e", f"WOWEVENT_METRICS_PORT={self.metrics_port}",
            "-e", "WOWEVENT_METRICS_ADDR=127.0.0.1",
            "--stop-timeout", spec["stop_grace_period"].rstrip("s"),
            command=spec["command"],
        )  # fmt: skip

    def ready_seconds(self, name: str, line: str) -> float:
        wait_until(lambda: line in self.engine.logs(name), 120, f"{name} to log {line!r}")
        return time.monotonic() - self.started[name]


@pytest.fixture(scope="module")
def stack(engine: Engine, image: str, redis_url: str) -> Iterator[Stack]:
    stack = Stack(engine, image, redis_url)
    # The image's own default command and HEALTHCHECK: `wowevent serve`.
    stack.run("serve", "-e", "WOWEVENT_SERVE_HOST=127.0.0.1",
              "-e", f"WOWEVENT_SERVE_PORT={stack.serve_port}")  # fmt: skip
    stack.worker("worker")
    flower = compose()["services"]["flower"]
    stack.run("flower", "-e", f"FLOWER_PORT={stack.flower_port}", "-e", "FLOWER_ADDRESS=127.0.0.1",
              "-e", "FLOWER_UNAUTHENTICATED_API=true", command=flower["command"])  # fmt: skip
    client = redis.Redis.from_url(redis_url)
    try:
        yield stack
    finally:
        for name in ("serve", "worker", "worker-2", "flower"):
            # Shown by pytest when a test failed.
            print(f"---- {name} ----\n{engine.logs(name)[-3000:]}")
            engine.run("rm", "-f", name, check=False)
        doomed = [*client.scan_iter(match=f"{stack.exchange}*", count=1000)]
        doomed += [f"_kombu.binding.{stack.exchange}"]
        client.delete(*doomed)
        client.close()


def test_serve_answers_and_docker_reports_it_healthy(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.serve_port}"
    wait_until(lambda: stack.engine.health("serve") and status(f"{base}/health") == 200, 120,
               "/health to answer")  # fmt: skip
    seconds = time.monotonic() - stack.started["serve"]
    print(f"\nwowevent serve: /health answered {seconds:.1f} s after docker run")
    # Docker runs the image's HEALTHCHECK itself (first after its 30 s interval).
    wait_until(lambda: stack.engine.health("serve") == "healthy", 150, "serve to be healthy")
    seconds = time.monotonic() - stack.started["serve"]
    print(f"wowevent serve: Docker health 'healthy' {seconds:.1f} s after docker run")
    wait_until(lambda: status(f"{base}/ready") == 200, 120, "/ready once the worker bound")


def test_every_process_runs_as_the_unprivileged_user(stack: Stack) -> None:
    stack.ready_seconds("worker", " ready.")
    for name in ("serve", "worker", "flower"):
        wait_until(lambda name=name: stack.engine.inspect(name)["State"]["Running"], 60, name)
        assert stack.engine.inspect(name)["Config"]["User"] == "wowevent:wowevent"
        top = stack.engine.run("top", name, "-eo", "uid,pid,args").stdout.splitlines()[1:]
        uids = {line.split()[0] for line in top}
        assert uids == {UID}, f"{name}: {top}"
        if name == "worker":  # the pool's children too: prefork -c 2 under the main process
            assert len(top) >= 3, top
    exec_id = stack.engine.run("exec", "serve", "id", "-u").stdout.strip()
    assert exec_id == UID


def test_flower_answers_and_sees_the_workers_tasks(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.flower_port}"
    wait_until(lambda: status(f"{base}/healthcheck") == 200, 120, "Flower's /healthcheck")
    print(f"\nflower: /healthcheck answered {time.monotonic() - stack.started['flower']:.1f} s "
          "after docker run")  # fmt: skip
    stack.ready_seconds("worker", " ready.")
    bus = EventBus(Celery("publisher", broker=stack.redis_url, set_as_current=False),
                   exchange=stack.exchange)  # fmt: skip
    try:
        event = bus.publish("payment.captured", {"order_id": "f-1"}, source="container-test")
    finally:
        bus.close()

    def seen() -> bool:
        with urllib.request.urlopen(f"{base}/api/tasks", timeout=5) as reply:
            tasks = json.loads(reply.read())
        return any(event.id in json.dumps(task) for task in tasks.values())

    wait_until(seen, 60, "Flower to list the delivery's task", 0.5)


def test_docker_stop_of_the_worker_is_warm_and_loses_nothing(stack: Stack) -> None:
    seconds = stack.ready_seconds("worker", " ready.")
    print(f"\nworker: ' ready.' logged {seconds:.1f} s after docker run")
    client = redis.Redis.from_url(stack.redis_url)
    notes_key = f"{stack.exchange}:demo:notes"
    client.delete(notes_key)
    bus = EventBus(Celery("publisher", broker=stack.redis_url, set_as_current=False),
                   exchange=stack.exchange)  # fmt: skip
    published = 3000
    try:
        ids = [bus.publish("order.created", {"order_id": f"s-{n}"}).id for n in range(published)]
    finally:
        bus.close()
    expected = {(subscriber, event_id) for event_id in ids for subscriber in ("billing", "audit")}

    def handled() -> list[tuple[str, str]]:
        notes = [json.loads(raw) for raw in client.lrange(notes_key, 0, -1)]
        return [(n["subscriber"], n["event_id"]) for n in notes if n["event_id"] in set(ids)]

    # Stop mid-stream, with deliveries running and prefetched.
    wait_until(lambda: client.llen(notes_key) >= 200, 120, "the worker to be busy")
    grace = int(compose()["services"]["worker"]["stop_grace_period"].rstrip("s"))
    started = time.monotonic()
    stack.engine.run("stop", "-t", str(grace), "worker", timeout=grace + 60)
    took = time.monotonic() - started
    state = stack.engine.inspect("worker")["State"]
    logs = stack.engine.logs("worker")
    before = handled()
    # A set: SCAN may return a key twice.
    queues = set(client.scan_iter(match=f"{stack.exchange}.*", count=1000))
    waiting = sum(client.llen(key) for key in queues if client.type(key) == b"list")
    print(
        f"worker: docker stop took {took:.1f} s (grace {grace} s), exit {state['ExitCode']}; "
        f"{len(expected)} deliveries: {len(before)} handled, {waiting} waiting in Redis"
    )
    assert state["ExitCode"] == 0, logs[-3000:]  # not 137: no SIGKILL at the grace period's end
    assert "warm shutdown" in logs.lower(), logs[-3000:]
    assert len(before) < len(expected), "the worker finished before the stop: publish more"
    assert len(before) + waiting == len(expected), "deliveries vanished or doubled at the stop"

    # A new worker takes the rest: every delivery handled exactly once.
    stack.worker("worker-2")
    wait_until(lambda: len(handled()) >= len(expected), 300, "the second worker to drain", 0.5)
    after = handled()
    print(
        f"worker-2: handled the other {len(after) - len(before)}; "
        f"{len(after)} notes for {len(expected)} deliveries, {len(set(after))} distinct"
    )
    assert set(after) == expected, "a delivery was lost"
    assert len(after) == len(expected), f"{len(after) - len(set(after))} deliveries ran twice"
    client.close()
