"""Redis Sentinel: every part of the bus on ``sentinel://``; a failover under a stream of events.

Each test starts its own primary, replica and three sentinels on free loopback ports (stopped by
pid). Handlers record their runs in the shared test Redis, which no failover touches.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
from celery import Celery
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from tests.conftest import Worker, wait_for
from wowevent_kombu import EventBus, EventSchema, HealthRules, PublishError, SchemaRegistry
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.cli import cli
from wowevent_kombu.observability.status import ClusterReader
from wowevent_kombu.testing.sentinelcluster import SentinelCluster
from wowevent_kombu.web.app import create_app
from wowevent_kombu.web.server import serving_in_thread

APP = "tests.apps.sentinelapp"


@pytest.fixture
def cluster(tmp_path: Any) -> Iterator[SentinelCluster]:
    with SentinelCluster(directory=tmp_path / "sentinel") as deployment:
        yield deployment


def make_bus(cluster: SentinelCluster, exchange: str, **options: Any) -> EventBus:
    app = Celery("pub", broker=cluster.url, set_as_current=False)
    app.conf.broker_transport_options = {"master_name": cluster.master_name}
    return EventBus(app, exchange=exchange, publish_timeout=1.0, **options)


def start_sentinel_worker(
    start_worker: Callable[..., Worker], cluster: SentinelCluster, redis_url: str
) -> Worker:
    env = {
        "WOWEVENT_TEST_REDIS_URL": cluster.url,
        "WOWEVENT_TEST_STORE_URL": redis_url,
        "WOWEVENT_TEST_MASTER_NAME": cluster.master_name,
    }
    return start_worker(APP, env=env)


def handled(client: redis.Redis, exchange: str) -> list[tuple[str, int]]:
    """``(event id, worker pid)`` of every run of the ``counter`` subscriber."""
    out = []
    for raw in client.lrange(f"{exchange}:runs", 0, -1):
        event_id, pid = raw.decode().split()
        out.append((event_id, int(pid)))
    return out


def test_publish_worker_log_dlq_registry_and_service_all_work_on_sentinel(
    cluster: SentinelCluster,
    exchange: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_sentinel_worker(start_worker, cluster, redis_url)
    bus = make_bus(cluster, exchange)
    try:
        assert bus.settings.master_name == cluster.master_name
        wait_for(lambda: "counter" in bus.bindings(), message="the worker's bindings")
        event = bus.publish("stream.one", {"n": 1})
        wait_for(lambda: handled(redis_client, exchange), message="the handler run")
        assert handled(redis_client, exchange) == [(event.id, worker.proc.pid)]

        # The log and the dead-letter store use the bus's Sentinel client.
        entry = bus.log.get(event.id)
        assert entry is not None and entry.event.id == event.id
        doomed = bus.publish("fail.one", {})
        records = wait_for(lambda: bus.dead_letters.list().records, message="a dead letter")
        assert [r.event_id for r in records] == [doomed.id]

        # The schema registry, on the bus's client and on its own from the same URL.
        schema = EventSchema("stream.one", "1.0.0", {"type": "object"})
        shared = SchemaRegistry(bus.transport.client, namespace=exchange)  # type: ignore[attr-defined]
        assert shared.register(schema)
        own = SchemaRegistry.from_url(
            cluster.url, namespace=exchange, master_name=cluster.master_name
        )
        try:
            assert own.get("stream.one").version == "1.0.0"
        finally:
            own.close()

        # Workers read sentinel:// queues through the guarded transport: an entry that is not
        # a message is dead-lettered as malformed instead of stopping the worker.
        broker = bus.transport.client  # type: ignore[attr-defined]
        broker.lpush(f"{exchange}.counter", b"\xff not a message")
        after = bus.publish("stream.two", {"n": 2})
        wait_for(
            lambda: after.id in {e for e, _ in handled(redis_client, exchange)},
            message="the event after the malformed entry",
        )
        malformed = wait_for(
            lambda: [r for r in bus.dead_letters.list().records if r.reason == "malformed"],
            message="the malformed entry's dead letter",
        )
        assert [r.subscriber for r in malformed] == ["counter"]
        assert worker.proc.poll() is None and "Unrecoverable error" not in worker.text()

        # The CLI on --broker sentinel://..., with the service name from the environment.
        runner = CliRunner()
        base = ["--broker", cluster.url, "--exchange", exchange]
        env = {"WOWEVENT_MASTER_NAME": cluster.master_name}
        got = runner.invoke(cli, [*base, "log", "get", event.id], env=env)
        assert got.exit_code == 0 and event.id in got.output, got.output
        listed = runner.invoke(cli, [*base, "schemas", "list"], env=env)
        assert listed.exit_code == 0 and "stream.one" in listed.output, listed.output
        refused = runner.invoke(cli, [*base, "log", "get", event.id], env={})
        assert refused.exit_code != 0 and "master_name" in refused.output

        # The HTTP service's readiness reads Redis through the same settings.
        reader = ClusterReader(make_client(bus.settings), exchange, HealthRules())
        app = create_app(bus, reader, CollectorRegistry())
        with serving_in_thread(app) as address:
            conn = http.client.HTTPConnection(address, timeout=5)
            conn.request("GET", "/ready")
            reply = conn.getresponse()
            assert (reply.status, json.loads(reply.read())["ready"]) == (200, True)
            conn.close()
    finally:
        bus.close()


@dataclass
class Stream:
    """A publisher thread: one event at a time, recording what each publish did and when."""

    bus: EventBus
    acked: list[tuple[str, float]] = field(default_factory=list)
    errors: list[tuple[PublishError, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            try:
                event = self.bus.publish("stream.tick", {"i": i})
            except PublishError as exc:
                self.errors.append((exc, time.monotonic()))
                time.sleep(0.01)
            else:
                self.acked.append((event.id, time.monotonic()))
            i += 1


def failover_under_stream(cluster: SentinelCluster, bus: EventBus) -> tuple[Stream, float, int]:
    """Publish continuously, SIGKILL the primary, wait for the failover and 200 more publishes."""
    wait_for(lambda: "counter" in bus.bindings(), message="the worker's bindings")
    stream = Stream(bus)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: len(stream.acked) >= 300, message="300 publishes before the kill")
        old = cluster.primary()
        killed_at = time.monotonic()
        old.stop(kill=True)
        cluster.wait_failover(old.port)
        recovered = len(stream.acked)
        wait_for(
            lambda: len(stream.acked) >= recovered + 200,
            timeout=30,
            message="200 publishes after the failover",
        )
    finally:
        stream.stop.set()
        thread.join(10)
    return stream, killed_at, old.port


def check_stream(stream: Stream, killed_at: float) -> None:
    """Errors only from the kill until publishing resumed; none once it had."""
    assert stream.errors, "killing the primary should make some publishes fail"
    first_error = min(t for _, t in stream.errors)
    resumed_at = min(t for _, t in stream.acked if t > first_error)
    assert all(killed_at <= t <= resumed_at for _, t in stream.errors), [
        (str(e), t - killed_at) for e, t in stream.errors if t > resumed_at
    ]
    assert stream.acked[-1][1] > resumed_at


def survivors(bus: EventBus, stream: Stream) -> tuple[set[str], set[str]]:
    """Acknowledged event ids the new primary's log holds, and those it lost."""
    kept, lost = set(), set()
    for event_id, _ in stream.acked:
        (kept if bus.log.get(event_id) is not None else lost).add(event_id)
    return kept, lost


# Workers pop a delivery and record it as unacknowledged in one script, replicated as one unit:
# on the new primary each surviving delivery is queued or recorded, so none may go missing.
IN_FLIGHT = 0


def settle(
    client: redis.Redis, exchange: str, kept: set[str], worker: Worker, bus: EventBus
) -> set[str]:
    """Wait until nothing is queued or unacknowledged; the surviving events never handled."""
    broker = make_client(bus.settings)
    queue = f"{exchange}.counter"

    def missing() -> set[str]:
        return kept - {e for e, _ in handled(client, exchange)}

    def settled() -> bool:
        idle = not broker.llen(queue) and not broker.hlen("unacked")
        return idle and len(missing()) <= IN_FLIGHT

    try:
        wait_for(settled, timeout=60, message="every surviving event handled after the failover")
    except AssertionError:
        raise AssertionError(
            f"{len(missing())} of {len(kept)} not handled; queue depth {broker.llen(queue)}, "
            f"unacked {broker.hlen('unacked')}\n" + worker.text()[-3000:]
        ) from None
    finally:
        broker.close()
    return missing()


def report(label: str, stream: Stream, lost: set[str], undelivered: set[str]) -> None:
    print(
        f"\n{label}: {len(stream.acked)} acknowledged, {len(stream.errors)} PublishError, "
        f"{len(lost)} acknowledged but lost by the failover, "
        f"{len(undelivered)} logged but lost in delivery"
    )


def test_failover_publishers_resume_and_workers_reconnect(
    cluster: SentinelCluster,
    exchange: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_worker: Callable[..., Worker],
) -> None:
    worker = start_sentinel_worker(start_worker, cluster, redis_url)
    bus = make_bus(cluster, exchange)
    try:
        stream, killed_at, _ = failover_under_stream(cluster, bus)
        check_stream(stream, killed_at)
        # Asynchronous replication: the last acknowledged writes before the kill may be gone.
        kept, lost = survivors(bus, stream)
        # The same worker process, never restarted, handles the events that survived.
        undelivered = settle(redis_client, exchange, kept, worker, bus)
        report("failover", stream, lost, undelivered)
        runs = handled(redis_client, exchange)
        assert {pid for _, pid in runs} == {worker.proc.pid}
        assert worker.proc.poll() is None
        published_before_kill = {e for e, t in stream.acked if t < killed_at}
        assert undelivered <= published_before_kill
        attempted = kept | lost | {i for e, _ in stream.errors for i in e.event_ids}
        assert {e for e, _ in runs} <= attempted
        assert "Connection to broker lost" in worker.text()
    finally:
        bus.close()


def test_wait_replicas_loses_no_acknowledged_publish(
    tmp_path: Any,
    exchange: str,
    redis_url: str,
    redis_client: redis.Redis,
    start_worker: Callable[..., Worker],
) -> None:
    # Two replicas: after the failover one is still there to acknowledge WAIT. (With a single
    # replica publishing would stop until the old primary came back; restarting a primary that
    # has no persistence is how Redis loses data, so this test does not do it.)
    with SentinelCluster(replicas=2, directory=tmp_path / "sentinel2") as cluster:
        worker = start_sentinel_worker(start_worker, cluster, redis_url)
        bus = make_bus(cluster, exchange, wait_replicas=1, wait_timeout_ms=200)
        try:
            stream, killed_at, old_port = failover_under_stream(cluster, bus)
            check_stream(stream, killed_at)
            kept, lost = survivors(bus, stream)
            order = {e: i for i, (e, _) in enumerate(stream.acked)}
            assert not lost, (
                f"{len(lost)} acknowledged publishes lost despite WAIT, at positions "
                f"{sorted(order[e] for e in lost)[:10]}; primary now {cluster.primary_port()}, "
                f"was {old_port}"
            )
            undelivered = settle(redis_client, exchange, kept, worker, bus)
            report("failover with WAIT", stream, lost, undelivered)
            assert undelivered <= {e for e, t in stream.acked if t < killed_at}
        finally:
            bus.close()
            worker.stop()  # while its broker still runs: without one, a warm shutdown waits
