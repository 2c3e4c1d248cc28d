"""Circuit breakers with real workers: an outage pauses one subscriber, nothing is lost.

``tests/apps/breaker.py``'s ``downstream`` fails while ``<exchange>:down`` is set. Each test
publishes 200 events to it and to ``bystander``, waits for the breaker to open, keeps the outage
through one failed trial round, ends it, and checks that every event was handled exactly once
by both subscribers with no dead letter. The counts are printed (``-s``) for the record.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from celery import Celery

from tests.conftest import Worker, wait_for
from wowevent_kombu import Event, EventBus
from wowevent_kombu.core import names
from wowevent_kombu.core.breaker import CLOSED, HALF_OPEN, OPEN
from wowevent_kombu.worker.breakerstore import BreakerStore

pytestmark = pytest.mark.integration

APP = "tests.apps.breaker"
EVENTS = 200


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    made = EventBus(Celery("pub", broker=redis_url, set_as_current=False), exchange=exchange)
    yield made
    made.close()


def runs(client: redis.Redis, exchange: str) -> list[tuple[str, str, str, int, int]]:
    """``(subscriber, event id, outcome, retries, pid)`` of every handler run so far."""
    out = []
    for raw in client.lrange(f"{exchange}:runs", 0, -1):
        subscriber, event_id, outcome, retries, pid = raw.decode().split()
        out.append((subscriber, event_id, outcome, int(retries), int(pid)))
    return out


def handled(client: redis.Redis, exchange: str, subscriber: str) -> Counter[str]:
    return Counter(e for s, e, o, _, _ in runs(client, exchange) if s == subscriber and o == "ok")


def outage(
    workers: list[Worker], bus: EventBus, client: redis.Redis, exchange: str
) -> dict[str, object]:
    """Run the outage against ``workers``; assert the guarantees; return the counts."""
    breakers = BreakerStore(client, exchange)
    queue = names.queue_name(exchange, "downstream")
    client.set(f"{exchange}:down", 1)
    events = [Event(type="outage.happened", data={"i": i}) for i in range(EVENTS)]
    ids = {e.id for e in events}
    started = time.monotonic()
    bus.publish_many(events)

    # It opens within the window (3 s) of the first failures...
    wait_for(lambda: breakers.read("downstream").state == OPEN, timeout=3, message="open")
    opened_after = time.monotonic() - started
    # ...and every worker stops consuming the queue within 2 s.
    wait_for(
        lambda: all(f"stopped consuming {queue}" in w.text() for w in workers),
        timeout=2, message="every worker to stop consuming the subscriber's queue",
    )  # fmt: skip
    failed_before_open = sum(1 for r in runs(client, exchange) if r[2] == "failed")
    # The bystander is not paused: it handles all 200 while the breaker is open.
    wait_for(lambda: set(handled(client, exchange, "bystander")) == ids, timeout=60,
             message="the bystander to handle every event")  # fmt: skip
    # One trial round fails while the outage lasts: open again, with a longer open time.
    wait_for(lambda: breakers.read("downstream").transitions.get(OPEN, 0) >= 2, timeout=10,
             message="a failed trial round")  # fmt: skip
    reopened = breakers.read("downstream")
    waiting_while_open = client.llen(queue)
    failed_during_outage = sum(1 for r in runs(client, exchange) if r[2] == "failed")
    dead_during_outage = bus.dead_letters.count()
    assert reopened.reopens == 1
    assert dead_during_outage == 0

    client.delete(f"{exchange}:down")
    wait_for(lambda: breakers.read("downstream").state == CLOSED, timeout=15, message="closed")
    closed_after = time.monotonic() - started
    wait_for(lambda: set(handled(client, exchange, "downstream")) == ids, timeout=60,
             message="downstream to handle every event")  # fmt: skip
    wait_for(lambda: client.llen(queue) == 0, message="the queue to drain")

    downstream, bystander = (handled(client, exchange, s) for s in ("downstream", "bystander"))
    assert set(downstream) == ids and set(downstream.values()) == {1}  # exactly once
    assert set(bystander) == ids and set(bystander.values()) == {1}
    assert bus.dead_letters.count() == 0
    retried = [r for r in runs(client, exchange) if r[0] == "downstream" and r[3] > 0]
    for worker in workers:
        assert f"stopped consuming {names.queue_name(exchange, 'bystander')}" not in worker.text()
    final = breakers.read("downstream")
    assert final.transitions == {OPEN: 2, HALF_OPEN: 2, CLOSED: 1}
    counts: dict[str, object] = {
        "workers": len(workers),
        "published": EVENTS,
        "opened_after_s": round(opened_after, 2),
        "failed_runs_before_open": failed_before_open,
        "failed_runs_whole_outage": failed_during_outage,
        "runs_with_retries_gt_0": len(retried),
        "waiting_in_queue_while_open": waiting_while_open,
        "dead_letters": bus.dead_letters.count(),
        "downstream_handled_once": sum(1 for n in downstream.values() if n == 1),
        "bystander_handled_once": sum(1 for n in bystander.values() if n == 1),
        "closed_after_s": round(closed_after, 2),
        "transitions": final.transitions,
    }
    print("breaker outage counts:", json.dumps(counts, sort_keys=True))
    return counts


def test_an_outage_pauses_the_subscriber_and_loses_nothing(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    worker = start_worker(APP, pool="prefork", concurrency=2)
    outage([worker], bus, redis_client, exchange)


def test_two_competing_workers_pause_together_and_lose_nothing(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    workers = [start_worker(APP) for _ in range(2)]
    outage(workers, bus, redis_client, exchange)
    pids = {pid for s, _, o, _, pid in runs(redis_client, exchange) if s == "downstream"}
    assert pids == {w.proc.pid for w in workers}  # both took part


def test_a_forced_open_pauses_every_worker_within_two_seconds_as_celery_sees_it(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis,
    redis_url: str, exchange: str,
) -> None:  # fmt: skip
    workers = [start_worker(APP) for _ in range(2)]
    queue, other = (names.queue_name(exchange, s) for s in ("downstream", "bystander"))
    inspect = Celery("ops", broker=redis_url, set_as_current=False).control.inspect(timeout=1)

    def consumed() -> dict[str, set[str]]:
        replies = inspect.active_queues() or {}
        return {node: {q["name"] for q in queues} for node, queues in replies.items()}

    assert all(queue in qs and other in qs for qs in consumed().values())
    BreakerStore(redis_client, exchange).force("downstream", "open")
    wait_for(
        lambda: all(f"stopped consuming {queue}" in w.text() for w in workers),
        timeout=2, message="both workers to stop consuming within 2 s",
    )  # fmt: skip
    paused = consumed()
    assert len(paused) == 2
    assert all(queue not in qs and other in qs for qs in paused.values()), paused
    event = bus.publish("outage.happened", {"n": 1})
    wait_for(lambda: handled(redis_client, exchange, "bystander"), message="the bystander")
    assert redis_client.llen(queue) == 1  # waits, untouched

    BreakerStore(redis_client, exchange).force("downstream", "close")
    wait_for(lambda: handled(redis_client, exchange, "downstream") == Counter([event.id]),
             timeout=5, message="the waiting event to be handled")  # fmt: skip
    assert all(queue in qs for qs in consumed().values())

    # A subscriber without a breaker can be paused by hand too.
    BreakerStore(redis_client, exchange).force("bystander", "open")
    wait_for(
        lambda: all(f"stopped consuming {other}" in w.text() for w in workers),
        timeout=2, message="both workers to pause the bystander",
    )  # fmt: skip
    BreakerStore(redis_client, exchange).force("bystander", "close")
    wait_for(lambda: all(other in qs for qs in consumed().values()), timeout=5,
             message="the bystander consumed again")  # fmt: skip
