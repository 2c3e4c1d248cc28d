"""The bus with real ``celery worker`` processes: delivery, pinned retries, crashes."""

import json
import time

import pytest
from celery import Celery

from tests.conftest import seen, wait_for
from wowevent_kombu import EventBus
from wowevent_kombu.core import names

pytestmark = pytest.mark.integration


@pytest.fixture
def publisher(redis_url, exchange):
    """A publisher process's bus: it knows no subscriber code, only the binding table."""
    bus = EventBus(Celery("publisher", broker=redis_url, set_as_current=False), exchange=exchange)
    yield bus
    bus.close()


def by_subscriber(entries):
    out = {}
    for entry in entries:
        out.setdefault(entry["subscriber"], []).append(entry)
    return out


def test_each_matching_subscriber_runs_once_under_its_own_task(
    start_worker, publisher, redis_client, exchange
):
    start_worker()
    order = publisher.publish("order.created", {"order_id": "1"})
    payment = publisher.publish("payment.settled", {"order_id": "1"})
    publisher.publish("agent.started")  # nobody in this app listens
    wait_for(lambda: len(seen(redis_client, exchange)) >= 3, message="3 executions")
    time.sleep(0.3)  # room for a wrong extra delivery to show up
    runs = by_subscriber(seen(redis_client, exchange))
    assert sorted(runs) == ["audit", "billing"]
    assert [r["id"] for r in runs["billing"]] == [order.id]
    assert sorted(r["id"] for r in runs["audit"]) == sorted([order.id, payment.id])
    for name, entries in runs.items():
        for entry in entries:
            assert entry["task_name"] == name
            assert entry["task_id"] == names.task_id(entry["id"], name)


def test_events_published_while_worker_is_down_arrive_later(
    start_worker, publisher, redis_client, exchange
):
    worker = start_worker()
    worker.stop()
    sent = [publisher.publish("order.paid", {"n": i}).id for i in range(20)]
    start_worker()
    wait_for(lambda: len(seen(redis_client, exchange)) >= 40, message="40 executions")
    runs = by_subscriber(seen(redis_client, exchange))
    assert [r["id"] for r in runs["billing"]] == sent  # in publish order
    assert [r["id"] for r in runs["audit"]] == sent


@pytest.mark.parametrize("subscriber", ["flaky", "manual"])
def test_retry_goes_to_the_retrying_subscriber_only(
    start_worker, publisher, redis_client, exchange, subscriber
):
    """autoretry_for (flaky) and self.retry (manual) both stay on the subscriber's own queue."""
    start_worker()
    prefix = "flaky" if subscriber == "flaky" else "manual"
    event = publisher.publish(f"{prefix}.job", {"fail_times": 2})
    wait_for(lambda: len(by_subscriber(seen(redis_client, exchange)).get(subscriber, [])) >= 3,
             message="three attempts")  # fmt: skip
    time.sleep(0.5)
    runs = by_subscriber(seen(redis_client, exchange))
    attempts = runs[subscriber]
    assert [a["retries"] for a in attempts] == [0, 1, 2]
    assert {a["task_id"] for a in attempts} == {names.task_id(event.id, subscriber)}
    others = {name: len(entries) for name, entries in runs.items() if name != subscriber}
    assert others == ({"steady": 1} if subscriber == "flaky" else {})


def test_killed_worker_redelivers_to_the_crashed_subscriber_only(
    start_worker, publisher, redis_client, exchange
):
    env = {"WOWEVENT_TEST_VISIBILITY": "3"}
    worker = start_worker(pool="prefork", concurrency=2, env=env)
    event = publisher.publish("slow.job", {"sleep": 1.5})

    def started():
        runs = by_subscriber(seen(redis_client, exchange))
        return runs.get("watcher") and any(
            r.get("phase") == "start" for r in runs.get("sleeper", [])
        )

    wait_for(started, message="the slow handler to start")
    # The watcher's run is recorded before its late ack: kill only once the ack is done, or
    # the kill may land between the two (and the watcher is rightly delivered again).
    watcher_queue = names.queue_name(exchange, "watcher").encode()
    wait_for(lambda: not any(watcher_queue in v for v in redis_client.hvals("unacked")),
             message="the watcher's delivery to be acked")  # fmt: skip
    worker.kill()
    start_worker(pool="prefork", concurrency=2, env=env)
    wait_for(lambda: any(r.get("phase") == "done"
                         for r in by_subscriber(seen(redis_client, exchange)).get("sleeper", [])),
             timeout=30, message="the redelivered handler to finish")  # fmt: skip
    time.sleep(0.5)
    runs = by_subscriber(seen(redis_client, exchange))
    starts = [r for r in runs["sleeper"] if r["phase"] == "start"]
    assert len(starts) == 2 and {r["id"] for r in starts} == {event.id}
    assert len(runs["watcher"]) == 1  # the subscriber that finished is not run again


def test_dedicated_worker_consumes_only_its_queue(start_worker, publisher, redis_client, exchange):
    start_worker("tests.apps.shop", "-Q", names.queue_name(exchange, "billing"))
    publisher.publish("order.created")
    wait_for(lambda: seen(redis_client, exchange), message="billing to run")
    time.sleep(0.3)
    assert [r["subscriber"] for r in seen(redis_client, exchange)] == ["billing"]
    assert redis_client.llen(names.queue_name(exchange, "audit")) == 1  # waits for its worker


@pytest.mark.parametrize(
    ("env", "fragment"),
    [({"WOWEVENT_TEST_ACCEPT": "json,pickle", "C_FORCE_ROOT": "1"}, "JSON only"),
     ({"WOWEVENT_TEST_VISIBILITY": "1"}, "visibility_timeout")],
)  # fmt: skip
def test_worker_refuses_unsafe_configuration(start_worker, env, fragment):
    worker = start_worker(env=env, ready=False)
    code = worker.proc.wait(30)
    assert code != 0
    assert fragment in worker.text()


def test_bindings_are_declared_by_worker_start(start_worker, publisher):
    start_worker()
    bound = publisher.bindings()
    assert bound["billing"] == ["order.*"]
    assert bound["audit"] == ["order.#", "payment.*"]
    assert json.dumps(bound)  # plain data
