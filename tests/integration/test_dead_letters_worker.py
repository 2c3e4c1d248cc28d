"""Retries and dead letters with real ``celery worker`` processes on real Redis."""

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from tests.conftest import Worker, seen, wait_for
from wowevent_kombu import EventBus
from wowevent_kombu.core import names, wire
from wowevent_kombu.deadletters.record import DeadLetter

APP = "tests.apps.dlq"


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    """A publisher-side bus on the test exchange (no subscribers of its own)."""
    bus = EventBus(Celery("pub", broker=redis_url, set_as_current=False), exchange=exchange)
    yield bus
    bus.close()


def runs(client: redis.Redis, exchange: str, subscriber: str) -> list[dict[str, Any]]:
    return [e for e in seen(client, exchange) if e["subscriber"] == subscriber]


def unacked(client: redis.Redis, task_id: str) -> bool:
    """Whether Kombu still holds a delivery of ``task_id`` as unacknowledged."""
    return any(task_id.encode() in raw for _, raw in client.hscan_iter("unacked"))


def probes(client: redis.Redis, exchange: str, subscriber: str) -> list[dict[str, Any]]:
    """What the test app's probe saw right after each dead-letter write of ``subscriber``."""
    entries = [json.loads(raw) for raw in client.lrange(f"{exchange}:probe", 0, -1)]
    return [e for e in entries if e["subscriber"] == subscriber]


def only_record(bus: EventBus) -> DeadLetter:
    records = wait_for(lambda: bus.dead_letters.list().records, message="a dead-letter record")
    assert len(records) == 1, records
    return records[0]


def test_retries_back_off_exponentially_and_succeed_without_a_dead_letter(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    start_worker(APP)
    event = bus.publish("backoff.flaky", {"fail_times": 2})

    attempts = wait_for(
        lambda: (
            len(runs(redis_client, exchange, "backoff")) >= 3
            and runs(redis_client, exchange, "backoff")
        ),
        timeout=30,
        message="three runs of the backoff subscriber",
    )
    gaps = [round(b["at"] - a["at"], 3) for a, b in itertools.pairwise(attempts)]
    print(f"retry gaps: {gaps} s (policy: 1 s, 2 s)")
    assert [a["retries"] for a in attempts] == [0, 1, 2]
    assert {a["task_id"] for a in attempts} == {names.task_id(event.id, "backoff")}
    assert gaps[0] >= 1.0
    assert gaps[1] >= 2.0
    # The bystander shares the pattern: it ran once, untouched by the other's retries.
    wait_for(lambda: runs(redis_client, exchange, "bystander"), message="bystander run")
    assert len(runs(redis_client, exchange, "backoff")) == 3
    assert len(runs(redis_client, exchange, "bystander")) == 1
    assert bus.dead_letters.count() == 0
    # The success dropped the retry history (it would otherwise wait for its TTL).
    history = names.retry_history_key(exchange, attempts[0]["task_id"])
    wait_for(lambda: not redis_client.exists(history), message="the history to be dropped")


def test_exhausted_delivery_is_one_record_with_every_attempt_then_redriven_and_purged(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    start_worker(APP)
    event = bus.publish("doomed.order", {"n": 1})

    record = only_record(bus)
    assert record.id == names.task_id(event.id, "doomed")
    assert (record.subscriber, record.reason, record.event_id) == ("doomed", "exhausted", event.id)
    assert record.event["data"] == {"n": 1}
    assert [a.number for a in record.attempts] == [1, 2, 3]
    for number, attempt in enumerate(record.attempts, 1):
        assert attempt.exception_type == "RuntimeError"
        assert attempt.message == f"doomed run {number}"
        assert "raise RuntimeError" in attempt.traceback
        assert attempt.started_at is not None
        assert attempt.started_at <= attempt.failed_at
    assert record.first_failure < record.last_failure
    assert len(runs(redis_client, exchange, "doomed")) == 3
    wait_for(lambda: probes(redis_client, exchange, "doomed"), message="the probe")
    assert [p["unacked"] for p in probes(redis_client, exchange, "doomed")] == [True]
    wait_for(lambda: runs(redis_client, exchange, "bystander"), message="bystander run")

    # Re-drive: the same subscriber only, a fresh task id and a fresh retry budget.
    assert bus.dead_letters.retry(record.id) == [record.id]
    fresh_id = names.task_id(event.id, "doomed", names.redrive_tag(record.id))
    again = wait_for(
        lambda: [r for r in bus.dead_letters.list().records if r.id == fresh_id],
        message="the re-driven delivery to fail again",
    )[0]
    assert [a.number for a in again.attempts] == [1, 2, 3]
    assert bus.dead_letters.count() == 1  # the original record left with the re-drive
    redriven = runs(redis_client, exchange, "doomed")[3:]
    assert [r["retries"] for r in redriven] == [0, 1, 2]
    assert {r["task_id"] for r in redriven} == {fresh_id}
    assert len(runs(redis_client, exchange, "bystander")) == 1

    assert bus.dead_letters.purge(fresh_id) == [fresh_id]
    assert bus.dead_letters.count() == 0


def test_rejected_and_invalid_deliveries_skip_their_retries(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    start_worker(APP)
    bus.publish("refuse.order", {})
    # An envelope that is not a CloudEvent, as a foreign producer might push it.
    queue = names.queue_name(exchange, "strict")
    bogus = wire.prepare('{"specversion":"1.0","type":"strict.x"}', event_type="strict.x")
    redis_client.lpush(
        queue,
        wire.task_message(bogus, task="strict", task_id="bogus-1", queue=queue, sender="t"),
    )

    records = wait_for(
        lambda: len(bus.dead_letters.list().records) == 4 and bus.dead_letters.list().records,
        message="four dead-letter records",
    )
    by_subscriber = {r.subscriber: r for r in records}
    assert by_subscriber["rejecting"].reason == "rejected"
    assert (
        by_subscriber["rejecting"].attempts[0].exception_type == "wowevent_kombu.core.errors.Reject"
    )
    assert by_subscriber["picky"].reason == "rejected"
    assert by_subscriber["picky"].attempts[0].exception_type == "KeyError"
    invalid = by_subscriber["strict"]
    assert (invalid.reason, invalid.id, invalid.event_type) == ("invalid", "bogus-1", "strict.x")
    assert invalid.event == {"specversion": "1.0", "type": "strict.x"}
    # self.retry(exc=...) past max_retries=1: exhausted, with the handler's own exceptions.
    manual = by_subscriber.pop("manual")
    assert manual.reason == "exhausted"
    assert [(a.exception_type, a.message) for a in manual.attempts] == [
        ("ValueError", "manual run 1"),
        ("ValueError", "manual run 2"),
    ]
    assert all(len(r.attempts) == 1 for r in by_subscriber.values())
    assert len(runs(redis_client, exchange, "rejecting")) == 1
    assert len(runs(redis_client, exchange, "picky")) == 1
    assert runs(redis_client, exchange, "strict") == []
    assert bus.dead_letters.count() == 4


def test_pool_child_killed_past_max_retries_is_a_worker_lost_record(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    worker = start_worker(APP, pool="prefork", concurrency=1)
    event = bus.publish("crash.now", {})
    for attempt in (1, 2):  # the first run and its one retry
        entry = wait_for(
            lambda n=attempt: (
                len(runs(redis_client, exchange, "crasher")) >= n
                and runs(redis_client, exchange, "crasher")[n - 1]
            ),
            message=f"run {attempt} of the crasher",
        )
        os.kill(entry["pid"], signal.SIGKILL)

    record = only_record(bus)
    assert (record.reason, record.id) == ("worker_lost", names.task_id(event.id, "crasher"))
    assert [a.number for a in record.attempts] == [1, 2]
    assert all(a.exception_type.endswith("WorkerLostError") for a in record.attempts)
    # Written by the worker's main process, before it acked the delivery.
    [probe] = wait_for(lambda: probes(redis_client, exchange, "crasher"), message="the probe")
    assert probe["unacked"] is True
    assert probe["pid"] == worker.proc.pid
    # Acked after the record: nothing waits or stays unacknowledged.
    assert redis_client.llen(names.queue_name(exchange, "crasher")) == 0
    assert len(runs(redis_client, exchange, "crasher")) == 2


def test_hard_time_limit_is_recorded_once_under_the_delivery_task_id(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    worker = start_worker(APP, pool="prefork", concurrency=1)
    event = bus.publish("slow.job", {})
    record = only_record(bus)
    task_id = names.task_id(event.id, "overtime")
    assert (record.id, record.reason, record.event_id) == (task_id, "exhausted", event.id)
    assert record.attempts[0].exception_type.endswith("TimeLimitExceeded")
    wait_for(lambda: not unacked(redis_client, task_id), message="the ack")
    assert bus.dead_letters.count() == 1
    assert len(runs(redis_client, exchange, "overtime")) == 1
    # Recorded once, by the main process, before the ack.
    probe = wait_for(lambda: probes(redis_client, exchange, "overtime"), message="the probe")
    assert [(p["unacked"], p["pid"]) for p in probe] == [(True, worker.proc.pid)]
    assert "TimeLimitExceeded" in worker.text()


def test_a_refused_dead_letter_write_requeues_the_delivery_until_it_can_be_written(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    records_key = names.dead_letter_records_key(exchange)
    redis_client.set(records_key, "not a hash")  # every HSET now fails with WRONGTYPE
    worker = start_worker(APP, pool="prefork", concurrency=1)
    event = bus.publish("unlucky.day", {})
    task_id = names.task_id(event.id, "unlucky")
    wait_for(
        lambda: len(runs(redis_client, exchange, "unlucky")) >= 3,
        message="the unrecorded failure to be requeued and run again",
    )
    assert "could not be recorded" in worker.text()
    assert bus.dead_letters.count() == 0

    redis_client.delete(records_key)  # the store works again
    record = only_record(bus)
    assert record.id == task_id
    wait_for(lambda: not unacked(redis_client, task_id), message="the ack")
    assert redis_client.llen(names.queue_name(exchange, "unlucky")) == 0
    settled = len(runs(redis_client, exchange, "unlucky"))
    bus.publish("unlucky.again", {})  # the worker still consumes: no slot left taken
    wait_for(
        lambda: len(runs(redis_client, exchange, "unlucky")) == settled + 1,
        message="the next delivery",
    )


def test_worker_killed_between_dead_letter_write_and_ack_leaves_exactly_one_record(
    start_worker: Callable[..., Worker], bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    env = {"WOWEVENT_TEST_VISIBILITY": "5"}
    first = start_worker(APP, pool="prefork", concurrency=1, env=env)
    event = bus.publish("ackkill.now", {})
    wait_for(lambda: first.proc.poll() is not None, message="the worker to die before the ack")
    assert bus.dead_letters.count() == 1

    # A new worker gets the unacked delivery back after the visibility timeout; it fails again.
    start_worker(APP, pool="prefork", concurrency=1, env=env)
    wait_for(
        lambda: len(runs(redis_client, exchange, "ackkill")) == 2,
        timeout=30,
        message="the redelivered run",
    )
    task_id = names.task_id(event.id, "ackkill")
    wait_for(lambda: not unacked(redis_client, task_id), message="the ack")
    record = only_record(bus)
    assert record.id == task_id
    assert record.reason == "exhausted"
    assert [a.number for a in record.attempts] == [1]
    assert bus.dead_letters.count() == 1
    assert json.loads(bus.dead_letters.get(record.id).to_json())["id"] == record.id
