"""``wowevent tail`` leaves nothing behind: not on any stop signal, and not when killed outright."""

import os
import signal
import subprocess
import sys

import pytest
import redis
from celery import Celery

from tests.conftest import ROOT, wait_for
from wowevent_kombu import EventBus
from wowevent_kombu.brokers.temporary import reap
from wowevent_kombu.core import names


def start_tail(redis_url: str, exchange: str, *args: str, prefix: tuple[str, ...] = ()):
    env = {**os.environ, "WOWEVENT_BROKER_URL": redis_url, "WOWEVENT_EXCHANGE": exchange}
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "wowevent_kombu.cli", "tail", "order.#", *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def tail_queue(client: redis.Redis, exchange: str) -> str:
    """The queue of the one tail bound on ``exchange``, once it is bound."""

    def bound() -> str | None:
        for member in client.smembers(names.binding_table_key(exchange)):
            split = names.split_binding_member(member.decode())
            if split:
                return split[1]
        return None

    return str(wait_for(bound, message="the tail's binding"))


def leftovers(client: redis.Redis, exchange: str, queue: str) -> list[str]:
    keys = [k.decode() for k in client.scan_iter(match=f"{queue}*", count=1000)]
    keys += [f"binding {m!r}" for m in client.smembers(names.binding_table_key(exchange))]
    keys += [f"temporary {m!r}" for m in client.smembers(names.temporary_queues_key(exchange))]
    return keys


@pytest.fixture
def bus(redis_url, exchange):
    bus = EventBus(Celery("p", broker=redis_url, set_as_current=False), exchange=exchange)
    yield bus
    bus.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_every_stop_signal_removes_binding_queue_and_bell(
    signum, redis_url, redis_client, exchange, bus
):
    proc = start_tail(redis_url, exchange)
    queue = tail_queue(redis_client, exchange)
    bus.publish("order.created", {"n": 1})
    assert "order.created" in proc.stdout.readline()  # consumed: the queue and bell exist
    assert redis_client.exists(names.bell_key(queue))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert leftovers(redis_client, exchange, queue) == []


def test_under_timeout_tail_leaves_nothing(redis_url, redis_client, exchange, bus):
    proc = start_tail(redis_url, exchange, prefix=("timeout", "3"))
    queue = tail_queue(redis_client, exchange)
    bus.publish("order.created", {"n": 1})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 124, err  # timeout's own code: it had to send SIGTERM
    assert "order.created" in out
    assert leftovers(redis_client, exchange, queue) == []


def test_a_killed_tails_queue_expires_and_its_binding_is_reaped(
    redis_url, redis_client, exchange, bus
):
    proc = start_tail(redis_url, exchange, "--ttl", "1")
    queue = tail_queue(redis_client, exchange)
    bus.publish("order.created", {"n": 1})
    # The bell, made by that push, gets the lease's time to live at the next refresh.
    wait_for(lambda: redis_client.pttl(names.bell_key(queue)) > 0, message="the bell's TTL")
    proc.kill()
    proc.communicate(timeout=30)
    # Nothing runs on its behalf any more: the lease, the queue and the bell expire alone.
    wait_for(lambda: not redis_client.exists(names.lease_key(queue), names.bell_key(queue)),
             timeout=10, message="the lease and bell to expire")  # fmt: skip
    # Its binding is removed by the next reaper (a worker, or any new tail starting).
    bus.publish("order.created", {"n": 2})
    assert redis_client.llen(queue) == 1
    assert reap(bus.transport, redis_client, exchange) == [queue]
    assert leftovers(redis_client, exchange, queue) == []
    assert bus.publish_reaching("order.created", {"n": 3})[1] == []


def test_unbinding_a_leftover_tail_deletes_its_queue_and_bell(
    redis_url, redis_client, exchange, bus
):
    proc = start_tail(redis_url, exchange)
    queue = tail_queue(redis_client, exchange)
    proc.kill()
    proc.communicate(timeout=30)
    bus.publish("order.created", {"n": 1})
    assert redis_client.exists(queue, names.bell_key(queue)) == 2
    name = names.subscriber_from_queue(exchange, queue)
    assert bus.unsubscribe(name) == ["order.#"]
    assert redis_client.exists(queue, names.bell_key(queue)) == 0
