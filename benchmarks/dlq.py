"""Dead-letter re-drive rate (``retry_all``) beside the publish rate, measured in the same run.

Usage: ``python benchmarks/dlq.py [--records N] [--rounds R]`` with Redis at
``WOWEVENT_BROKER_URL`` (default ``redis://127.0.0.1:6379/0``). Uses a unique exchange and
deletes every key it made.

Both figures count deliveries to one subscriber queue: a publish of one event to one subscriber
against a re-drive of one record to its subscriber, alternating round by round so both see the
same load on a shared machine. The target is >= 10,000 re-drives/s.
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
from wowevent_kombu.deadletters.record import Attempt, DeadLetter

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


def one_round(
    bus: EventBus, client: redis.Redis, count: int, subscribers: list[str]
) -> tuple[float, float]:
    """Publish ``count`` deliveries, then re-drive ``count`` records: both rates."""
    events = [
        Event(type=f"order.{subscribers[n % len(subscribers)]}", data={"order": n}, source="bench")
        for n in range(count)
    ]
    start = time.perf_counter()
    for i in range(0, len(events), 100):
        bus.publish_many(events[i : i + 100])
    publish_rate = len(events) / (time.perf_counter() - start)

    fill(bus, count, subscribers)
    assert bus.dead_letters.count() == count
    start = time.perf_counter()
    moved = bus.dead_letters.retry_all()
    redrive_rate = len(moved) / (time.perf_counter() - start)
    assert len(moved) == count
    assert bus.dead_letters.count() == 0
    queues = [f"{bus.exchange}.{s}" for s in subscribers]
    assert sum(int(client.llen(q)) for q in queues) == 2 * count
    client.delete(*queues)
    return publish_rate, redrive_rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
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
        rounds = [one_round(bus, client, args.records, subscribers) for _ in range(args.rounds)]
        publish = sorted(p for p, _ in rounds)
        redrive = sorted(r for _, r in rounds)
        ratios = sorted(r / p for p, r in rounds)
        mid = len(rounds) // 2
        print(f"records:        {args.records} per round, {args.rounds} rounds (median, best)")
        print(f"publish_many:   {publish[mid]:>10,.0f}  {publish[-1]:>10,.0f} deliveries/s "
              "(100 events per transaction)")  # fmt: skip
        print(f"retry_all:      {redrive[mid]:>10,.0f}  {redrive[-1]:>10,.0f} records/s")
        print(f"ratio:          {ratios[mid]:>10.2f}  {ratios[-1]:>10.2f} x publish rate")
        verdict = "meets" if redrive[-1] >= TARGET else "MISSES"
        print(f"target:         {verdict} >= {TARGET:,} records/s (best round)")
        return 0 if redrive[-1] >= TARGET else 1
    finally:
        doomed = list(client.scan_iter(match=f"{exchange}*", count=1000))
        doomed += [f"_kombu.binding.{exchange}"]
        client.delete(*doomed)
        client.close()
        bus.close()


if __name__ == "__main__":
    sys.exit(main())
