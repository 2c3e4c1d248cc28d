"""Dead-letter re-drive rate (``retry_all``) beside the publish rate, measured in the same run.

Usage: ``python benchmarks/dlq.py [--records N]`` with Redis at ``WOWEVENT_BROKER_URL`` (default
``redis://127.0.0.1:6379/0``). Uses a unique exchange and deletes every key it made.

Both figures count deliveries to one subscriber queue: a publish of one event to one subscriber
against a re-drive of one record to its subscriber. The target is >= 10,000 re-drives/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid

import redis
from celery import Celery

from wowevent_kombu import Event, EventBus
from wowevent_kombu.deadletter import Attempt, DeadLetter

TARGET = 10_000


def ignore(event: Event) -> None:
    """A handler that is never run here."""


def fill(bus: EventBus, count: int, subscribers: list[str]) -> None:
    """Write ``count`` records straight into the store (setup, not measured)."""
    client: redis.Redis = bus.dead_letters.client
    records_key = f"{bus.exchange}:dlq:records"
    index_key = f"{bus.exchange}:dlq:index"
    now = time.time()
    trace = 'Traceback (most recent call last):\n  File "app.py", line 1\nRuntimeError: boom\n'
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        event = Event(type="order.created", data={"order": n, "sku": "A-1"}, source="bench")
        record = DeadLetter(
            id=str(uuid.uuid4()),
            subscriber=subscribers[n % len(subscribers)],
            event_id=event.id,
            event_type=event.type,
            event=event.to_cloudevent(),
            reason="exhausted",
            attempts=tuple(Attempt(i, "RuntimeError", "boom", trace, now + n) for i in (1, 2, 3)),
        )
        pipe.hset(records_key, record.id, record.to_json())
        pipe.zadd(index_key, {record.id: now + n})
        if len(pipe) >= 2000:
            pipe.execute()
    pipe.execute()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    url = os.environ.get("WOWEVENT_BROKER_URL", "redis://127.0.0.1:6379/0")
    exchange = f"benchdlq{uuid.uuid4().hex[:8]}"
    bus = EventBus(Celery("bench", broker=url, set_as_current=False), exchange=exchange)
    subscribers = [f"s{i}" for i in range(4)]
    for name in subscribers:
        bus.subscriber(f"order.{name}", name=name)(ignore)
    bus.declare()
    client = redis.Redis.from_url(url)
    try:
        # Baseline: publishing the same number of deliveries, 100 events per transaction.
        events = [
            Event(type=f"order.{subscribers[n % 4]}", data={"order": n}, source="bench")
            for n in range(args.records)
        ]
        start = time.perf_counter()
        for i in range(0, len(events), 100):
            bus.publish_many(events[i : i + 100])
        publish_rate = len(events) / (time.perf_counter() - start)

        fill(bus, args.records, subscribers)
        assert bus.dead_letters.count() == args.records
        start = time.perf_counter()
        moved = bus.dead_letters.retry_all()
        redrive_rate = len(moved) / (time.perf_counter() - start)
        assert len(moved) == args.records
        assert bus.dead_letters.count() == 0

        queued = sum(int(client.llen(f"{exchange}.{s}")) for s in subscribers)
        assert queued == 2 * args.records, queued
        print(f"records:        {args.records}")
        print(f"publish_many:   {publish_rate:>10,.0f} deliveries/s (100 events per transaction)")
        print(f"retry_all:      {redrive_rate:>10,.0f} records/s")
        print(f"ratio:          {redrive_rate / publish_rate:>10.2f} x publish rate")
        verdict = "meets" if redrive_rate >= TARGET else "MISSES"
        print(f"target:         {verdict} >= {TARGET:,} records/s")
        return 0 if redrive_rate >= TARGET else 1
    finally:
        doomed = list(client.scan_iter(match=f"{exchange}*", count=1000))
        doomed += [f"_kombu.binding.{exchange}"]
        client.delete(*doomed)
        client.close()
        bus.close()


if __name__ == "__main__":
    sys.exit(main())
