"""The core behaviour of the bus on both brokers: Redis and RabbitMQ (``amqp://``).

Every test here runs twice through the ``broker`` fixture, with a real ``celery worker`` of
``tests.apps.shop`` consuming from that broker; the log, the dead letters and the binding copy
live in Redis either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from tests.conftest import Broker, Worker, seen, wait_for
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import UnroutableEventError

pytestmark = pytest.mark.integration


def by_subscriber(entries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        out.setdefault(entry["subscriber"], []).append(entry)
    return out


def runs_of(client: redis.Redis, exchange: str, subscriber: str) -> list[dict[str, Any]]:
    return by_subscriber(seen(client, exchange)).get(subscriber, [])


def test_topic_routing_reaches_each_matching_subscriber_once_under_its_own_task(
    broker: Broker, start_worker: Callable[..., Worker], redis_client: redis.Redis, exchange: str
) -> None:
    start_worker(env=broker.worker_env)
    bus = broker.bus()
    order = bus.publish("order.created", {"order_id": "1"})
    deep = bus.publish("order.created.eu", {"order_id": "2"})  # order.# only, not order.*
    payment = bus.publish("payment.settled", {"order_id": "1"})
    bus.publish("agent.started")  # nobody in this app listens
    bus.publish("xorder.created")  # a prefix is not a word
    wait_for(lambda: len(seen(redis_client, exchange)) >= 4, message="4 executions")
    time.sleep(0.3)  # room for a wrong extra delivery to show up
    runs = by_subscriber(seen(redis_client, exchange))
    assert sorted(runs) == ["audit", "billing"]
    assert [r["id"] for r in runs["billing"]] == [order.id]
    assert sorted(r["id"] for r in runs["audit"]) == sorted([order.id, deep.id, payment.id])
    for name, entries in runs.items():
        for entry in entries:
            assert entry["task_name"] == name
            assert entry["task_id"] == names.task_id(entry["id"], name)


def test_events_published_while_no_worker_runs_arrive_later_in_order(
    broker: Broker, start_worker: Callable[..., Worker], redis_client: redis.Redis, exchange: str
) -> None:
    start_worker(env=broker.worker_env).stop()  # declares the queues, then goes away
    bus = broker.bus()
    sent = [bus.publish("order.paid", {"n": i}).id for i in range(20)]
    wait_for(lambda: bus.queue_depths()["billing"] == 20, message="20 waiting deliveries")
    start_worker(env=broker.worker_env)
    wait_for(lambda: len(seen(redis_client, exchange)) >= 40, message="40 executions")
    runs = by_subscriber(seen(redis_client, exchange))
    assert [r["id"] for r in runs["billing"]] == sent
    assert [r["id"] for r in runs["audit"]] == sent
    assert wait_for(lambda: bus.queue_depths()["billing"] == 0 or None, message="drained")


@pytest.mark.parametrize("subscriber", ["flaky", "manual"])
def test_retries_stay_with_the_retrying_subscriber(
    broker: Broker,
    start_worker: Callable[..., Worker],
    redis_client: redis.Redis,
    exchange: str,
    subscriber: str,
) -> None:
    """autoretry_for (flaky) and self.retry with a countdown (manual) on the own queue only."""
    worker = start_worker(env=broker.worker_env)
    event = broker.bus().publish(f"{subscriber}.job", {"fail_times": 1})
    # On RabbitMQ each countdown goes through Celery's delayed-delivery queues (1 s at least).
    try:
        wait_for(lambda: len(runs_of(redis_client, exchange, subscriber)) >= 2, timeout=60,
                 message="two attempts")  # fmt: skip
    except AssertionError as exc:
        raise AssertionError(f"{exc}; worker log:\n{worker.text()[-4000:]}") from None
    time.sleep(0.5)
    runs = by_subscriber(seen(redis_client, exchange))
    assert [a["retries"] for a in runs[subscriber]] == [0, 1]
    assert {a["task_id"] for a in runs[subscriber]} == {names.task_id(event.id, subscriber)}
    others = {name: len(entries) for name, entries in runs.items() if name != subscriber}
    assert others == ({"steady": 1} if subscriber == "flaky" else {})


def test_exhausted_retries_dead_letter_and_a_redrive_delivers_again(
    broker: Broker, start_worker: Callable[..., Worker], redis_client: redis.Redis, exchange: str
) -> None:
    start_worker(env=broker.worker_env)
    bus = broker.bus()
    event = bus.publish("fragile.job")  # max_retries=1: 2 attempts, then the dead letter
    record = wait_for(lambda: bus.dead_letters.list().records, timeout=60,
                      message="a dead letter")[0]  # fmt: skip
    assert (record.subscriber, record.event_id) == ("fragile", event.id)
    assert [a["retries"] for a in runs_of(redis_client, exchange, "fragile")] == [0, 1]

    assert bus.dead_letters.retry(record.id) == [record.id]
    wait_for(lambda: len(runs_of(redis_client, exchange, "fragile")) >= 3, message="a re-drive")
    redriven = runs_of(redis_client, exchange, "fragile")[2]
    assert redriven["id"] == event.id
    assert redriven["task_id"] == names.task_id(event.id, "fragile", names.redrive_tag(record.id))
    assert set(by_subscriber(seen(redis_client, exchange))) == {"fragile"}


def test_replay_goes_to_the_chosen_subscriber_only(
    broker: Broker, start_worker: Callable[..., Worker], redis_client: redis.Redis, exchange: str
) -> None:
    start_worker(env=broker.worker_env)
    bus = broker.bus()
    sent = [bus.publish("order.created", {"n": i}).id for i in range(5)]
    wait_for(lambda: len(seen(redis_client, exchange)) >= 10, message="10 executions")

    report = bus.replay(["billing"], types="order.*")
    assert report.delivered == {"billing": 5}
    wait_for(lambda: len(runs_of(redis_client, exchange, "billing")) >= 10, message="replayed")
    time.sleep(0.3)
    replayed = [r for r in runs_of(redis_client, exchange, "billing") if r["replayed"]]
    assert [r["id"] for r in replayed] == sent
    assert len(runs_of(redis_client, exchange, "audit")) == 5


def test_mandatory_refuses_an_unroutable_event_and_logs_nothing(
    broker: Broker, start_worker: Callable[..., Worker]
) -> None:
    start_worker(env=broker.worker_env)
    bus = broker.bus()
    with pytest.raises(UnroutableEventError, match=r"nobody\.home"):
        bus.publish("nobody.home", mandatory=True)
    assert bus.log.stats()["length"] == 0
    bus.publish("order.created", mandatory=True)
    assert bus.log.stats()["length"] == 1


def test_unsubscribe_stops_new_deliveries(
    broker: Broker, start_worker: Callable[..., Worker], redis_client: redis.Redis, exchange: str
) -> None:
    worker = start_worker(env=broker.worker_env)
    worker.stop()  # so the worker does not bind the subscriber again on its next connect
    bus = broker.bus()
    assert bus.unsubscribe("billing") == ["order.*"]
    assert "billing" not in bus.bindings()
    bus.publish("order.created")
    assert bus.queue_depths()["audit"] == 1
    assert "billing" not in bus.queue_depths()
    billing = names.queue_name(exchange, "billing")
    assert bus.transport.queue_depths([billing]) == {billing: 0}
    bus.transport.delete_queue(billing)  # no longer bound, so the broker fixture cannot see it
