"""Faults on purpose, counting events in against events handled (docs/reliability.md)."""

import os
import signal
import threading
import time

import pytest
import redis

from tests.conftest import wait_for
from tests.reliability import counting
from tests.reliability.conftest import runs
from tests.reliability.counting import publisher
from wowevent_kombu import PublishError

SUBSCRIBERS = ("alpha", "beta")


def publish_all(bus, n):
    return counting.publish_all(bus, n, "load.item", batch=100)


def settle(client, exchange, ids):
    """Await every delivery, crash redeliveries included; fail naming any that never came.

    Workers pop a delivery and record it as unacknowledged in one step
    (wowevent_kombu.brokers.redis.bell), so a worker killed, or a Redis stopped, at any moment
    leaves each delivery in its queue or in Kombu's unacked hash, from where the visibility timeout
    brings it back: nothing needs a replay from the log.
    """
    try:
        wait_for(lambda: not missing(client, exchange, ids), timeout=60,
                 message="every delivery, without a replay")  # fmt: skip
    except AssertionError:
        lost = missing(client, exchange, ids)
        raise AssertionError(f"{len(lost)} deliveries lost, e.g. {lost[:3]}") from None


def missing(client, exchange, ids):
    return counting.missing(client, exchange, ids, SUBSCRIBERS)


def all_handled(client, exchange, ids):
    return not missing(client, exchange, ids)


@pytest.fixture
def env_for(exchange):
    def make(server, **extra):
        return {"WOWEVENT_TEST_REDIS_URL": server.url, "WOWEVENT_TEST_EXCHANGE": exchange,
                **{k: str(v) for k, v in extra.items()}}  # fmt: skip

    return make


POOL_PROCESSES = 2
"""Concurrency of the prefork workers these tests start."""


class Loaded:
    """A private Redis, a prefork worker on the load app, and 1,000 events under way."""

    def __init__(self, private_redis, start_worker, env_for, exchange, started, **env):
        self.server = private_redis()
        self.env = env_for(self.server, **env)
        self.client = redis.Redis.from_url(self.server.url)
        self.worker = start_load_worker(
            start_worker, self.env, pool="prefork", concurrency=POOL_PROCESSES
        )
        self.bus = publisher(self.server.url, exchange)
        self.ids = publish_all(self.bus, 1000)
        wait_for(lambda: len(runs(self.client, exchange)) > started, message="events handled")


def start_load_worker(start_worker, env, **kw):
    # The worker fixture's own Redis URL is overridden by the private server's.
    return start_worker("tests.apps.load", env=env, **kw)


def test_worker_killed_mid_stream_loses_nothing(private_redis, start_worker, env_for, exchange):
    load = Loaded(private_redis, start_worker, env_for, exchange, 300,
                  WOWEVENT_TEST_VISIBILITY=3, WOWEVENT_TEST_WORK=0.002)  # fmt: skip
    env, client, worker, bus, ids = load.env, load.client, load.worker, load.bus, load.ids
    worker.kill()  # SIGKILL to the main process and its pool children
    handled_before = runs(client, exchange)
    start_load_worker(start_worker, env, pool="prefork", concurrency=2)
    settle(client, exchange, ids)
    counts = runs(client, exchange)
    duplicates = {key: n for key, n in counts.items() if n > 1}
    assert client.llen(f"{exchange}.alpha") == client.llen(f"{exchange}.beta") == 0
    # Only deliveries in flight at the kill (prefetch 2 x 2 children) may run twice.
    assert len(duplicates) <= 8, duplicates
    assert all(handled_before[key] >= 1 for key in duplicates)
    bus.close()


def test_pool_child_killed_is_retried_not_lost(private_redis, start_worker, env_for, exchange):
    load = Loaded(private_redis, start_worker, env_for, exchange, 200, WOWEVENT_TEST_WORK=0.01)
    client, worker, bus, ids = load.client, load.worker, load.bus, load.ids
    os.kill(worker.children()[0], signal.SIGKILL)
    # The delivery the child was running is retried (retry_on_worker_lost). A delivery already
    # handed to the dying child but not started can instead reach its hard time limit: Celery
    # fails it without retry, and it waits in the dead-letter store. Re-drive it from there.
    wait_for(lambda: len(missing(client, exchange, ids)) <= 1, timeout=60, message="handled")
    wait_for(lambda: bus.dead_letters.count() >= len(missing(client, exchange, ids)), timeout=10,
             message="a stuck delivery in the dead-letter store")  # fmt: skip
    stuck = missing(client, exchange, ids)
    assert bus.dead_letters.count() == len(stuck), stuck
    bus.dead_letters.retry_all()
    wait_for(lambda: all_handled(client, exchange, ids), timeout=30, message="re-driven")
    counts = runs(client, exchange)
    assert missing(client, exchange, ids) == []
    assert sum(n - 1 for n in counts.values()) <= 2  # at most the child's in-flight delivery
    assert worker.proc.poll() is None  # the worker replaced its child and kept going
    bus.close()


def test_warm_shutdown_returns_prefetched_at_once(private_redis, start_worker, env_for, exchange):
    load = Loaded(private_redis, start_worker, env_for, exchange, 200,
                  WOWEVENT_TEST_WORK=0.005, WOWEVENT_TEST_VISIBILITY=3)  # fmt: skip
    env, client, worker, bus, ids = load.env, load.client, load.worker, load.bus, load.ids
    code = worker.stop(timeout=8)  # SIGTERM: warm shutdown; SIGKILL after an 8 s grace period
    held = client.zcard("unacked_index")
    if code == 0:
        # The prefetched deliveries went back at once ("Restoring N unacknowledged message(s)").
        assert held == 0
    else:
        # Billiard sometimes leaves a pool child hanging in its exit path during the warm
        # shutdown; the grace period's hard stop ends it, and what the worker still held comes
        # back after the visibility timeout (docs/reliability.md).
        assert "warm shutdown" in worker.text().lower(), worker.text()[-2000:]
    start_load_worker(start_worker, env, pool="prefork", concurrency=2)
    wait_for(lambda: all_handled(client, exchange, ids), timeout=120, message="all events handled")
    counts = runs(client, exchange)
    assert len(counts) == 2000  # nothing lost
    duplicated = [key for key, n in counts.items() if n > 1]
    # Nothing duplicated, except deliveries the stopped worker still held after a hard stop,
    # and at most one per pool process whose handler finished as the shutdown began: its
    # result reached the main process after the consumer stopped, so the ack was never sent
    # and the warm shutdown restored it (seen once in about 15 runs, on Python 3.13).
    assert len(duplicated) <= held + POOL_PROCESSES, duplicated
    bus.close()


@pytest.mark.parametrize(("fsync", "kill"), [("everysec", False), ("always", True)])
def test_redis_restart_or_kill_during_publishing(private_redis, start_worker, env_for, exchange,
                                                 fsync, kill):  # fmt: skip
    """Every publish that returned is logged and delivered; failures raise PublishError."""
    server = private_redis(appendonly=True, appendfsync=fsync)
    # A delivery in flight when Redis dies cannot be acked; it returns after the visibility
    # timeout, kept short here.
    env = env_for(server, WOWEVENT_TEST_VISIBILITY=3)
    worker = start_load_worker(start_worker, env, pool="solo")
    bus = publisher(server.url, exchange, timeout=0.5)
    acknowledged, failed = [], 0
    stop = threading.Event()

    def publish_loop():
        nonlocal failed
        i = 0
        while not stop.is_set():
            try:
                acknowledged.append(bus.publish("load.item", {"n": i}).id)
            except PublishError:
                failed += 1
                time.sleep(0.01)
            i += 1

    thread = threading.Thread(target=publish_loop)
    thread.start()
    wait_for(lambda: len(acknowledged) > 300, message="publishing under way")
    if kill:
        server.stop(kill=True)
    else:
        redis.Redis.from_url(server.url).shutdown(nosave=False)
        wait_for(lambda: not server.pidfile.exists(), message="redis to shut down")
    time.sleep(0.5)  # a window of failed publishes
    server.start()
    count = len(acknowledged)
    wait_for(lambda: len(acknowledged) > count + 300, timeout=30, message="publishing resumed")
    stop.set()
    thread.join(10)
    client = redis.Redis.from_url(server.url)
    # Every acknowledged publish is in the log; the worker reconnects and handles them all.
    settle(client, exchange, acknowledged)
    logged = {f[b"event"].decode() for _, f in client.xrange(f"{exchange}:log")}
    assert all(any(i in text for text in logged) for i in acknowledged[-50:])
    assert client.xlen(f"{exchange}:log") >= len(acknowledged)
    assert failed > 0
    assert worker.proc.poll() is None  # reconnected by itself
    bus.close()


def test_worker_started_before_redis_recovers(private_redis, start_worker, env_for, exchange,
                                              tmp_path):  # fmt: skip
    from wowevent_kombu.testing.redisserver import RedisServer, free_port

    port = free_port()
    server = RedisServer(port=port, directory=tmp_path / "late")
    env = env_for(server)
    worker = start_load_worker(start_worker, env, pool="solo", ready=False)
    wait_for(lambda: "Cannot connect" in worker.text(), timeout=30,
             message="the worker to report it is retrying its connection")  # fmt: skip
    assert worker.proc.poll() is None
    server.start()
    try:
        worker.wait_ready(60)
        bus = publisher(server.url, exchange)
        ids = publish_all(bus, 50)
        client = redis.Redis.from_url(server.url)
        wait_for(lambda: all_handled(client, exchange, ids), timeout=60, message="handled")
        bus.close()
    finally:
        worker.stop()
        server.stop()
