"""Publish with schema validation vs without, in the same run, against real Redis.

Three buses publish the same events to one bound subscriber queue: no registry, a registry
validating with ``jsonschema`` alone, and a registry using the ``fastjsonschema`` pre-check
(the default). Rounds are interleaved, in rotating order, so machine noise hits all three
alike; each round's time is divided by the unvalidated bus's time in the same round and the
median of those ratios is reported, for wall-clock time and for this process's CPU time
(less disturbed by other load on a shared machine). Target: the validated publish costs at
most 1.3x the unvalidated one.

    scripts/with-redis.sh .venv/bin/python benchmarks/schemas.py [--events 100] [--rounds 30]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
import uuid

import redis
from celery import Celery

from wowevent_kombu import EventBus, EventSchema, SchemaRegistry

SCHEMA = {
    "type": "object",
    "required": ["order_id", "customer_email", "amount", "currency", "created_at"],
    "additionalProperties": False,
    "properties": {
        "order_id": {"type": "string", "format": "uuid"},
        "customer_email": {"type": "string", "format": "email"},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
        "created_at": {"type": "string", "format": "date-time"},
        "items": {"type": "integer", "minimum": 1, "maximum": 1000},
        "coupon": {"type": ["string", "null"], "maxLength": 32},
        "gift": {"type": "boolean"},
        "note": {"type": "string", "maxLength": 500},
        "channel": {"type": "string", "enum": ["web", "app", "store"]},
    },
}
DATA = {
    "order_id": "6f1b8a52-3c1e-4e4b-9a0e-7a1d2c3b4e5f",
    "customer_email": "ada@example.com",
    "amount": 12.5,
    "currency": "EUR",
    "created_at": "2026-11-27T09:00:00.123456Z",
    "items": 3,
    "coupon": None,
    "gift": False,
    "note": "leave at the door",
    "channel": "web",
}


def per_publish_us(bus: EventBus, count: int) -> tuple[float, float]:
    """Wall-clock and this process's CPU microseconds per publish."""
    gc.collect()  # garbage left by the previous bus is not charged to this one
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        bus.publish("order.created", DATA)
    wall = (time.perf_counter() - start) / count * 1e6
    return wall, (time.process_time() - cpu) / count * 1e6


def validate_us(registry: SchemaRegistry, count: int) -> float:
    compiled = registry.compiled("order.created", "1.0.0")
    start = time.perf_counter()
    for _ in range(count):
        compiled.is_valid(DATA)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100, help="publishes per bus per round")
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    url = os.environ.get("WOWEVENT_BROKER_URL", "redis://127.0.0.1:6379/0")
    exchange = f"bench{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(url)
    app = Celery("bench", broker=url, set_as_current=False)
    fast = SchemaRegistry.from_url(url, namespace=exchange)
    slow = SchemaRegistry.from_url(url, namespace=exchange, fast=False)
    fast.register(EventSchema("order.created", "1.0.0", SCHEMA))
    buses = {
        "unvalidated": EventBus(app, exchange=exchange),
        "jsonschema": EventBus(app, exchange=exchange, schemas=slow),
        "fastjsonschema": EventBus(app, exchange=exchange, schemas=fast),
    }
    buses["unvalidated"].transport.bind(f"{exchange}.sink", ["order.*"])
    try:
        for bus in buses.values():
            per_publish_us(bus, 50)  # warm: connections, caches, compiled validators
        rounds: dict[str, list[tuple[float, float]]] = {name: [] for name in buses}
        order = list(buses)
        for number in range(args.rounds):
            # Rotate who goes first, so a bus is not always measured right after another.
            for name in order[number % 3 :] + order[: number % 3]:
                rounds[name].append(per_publish_us(buses[name], args.events))
            client.delete(f"{exchange}.sink", f"{exchange}:log")
        base = rounds["unvalidated"]
        print(f"publish of one event to 1 subscriber, {args.rounds} rounds x {args.events} "
              f"events per bus (Redis {url}); ratios are medians of per-round ratios")  # fmt: skip
        for name, values in rounds.items():
            wall = statistics.median(w for w, _ in values)
            cpu = statistics.median(c for _, c in values)
            ratio = statistics.median(v[0] / b[0] for v, b in zip(values, base, strict=True))
            ratio_cpu = statistics.median(v[1] / b[1] for v, b in zip(values, base, strict=True))
            print(f"  {name:<15} {wall:7.1f} us/publish {1e6 / wall:7.0f}/s  "
                  f"ratio {ratio:4.2f}x   | publisher CPU {cpu:6.1f} us  "
                  f"ratio {ratio_cpu:4.2f}x")  # fmt: skip
        print("validation alone (same schema, same data):")
        print(f"  jsonschema      {validate_us(slow, 5000):8.1f} us")
        print(f"  fastjsonschema  {validate_us(fast, 5000):8.1f} us  (fast path in use: "
              f"{fast.compiled('order.created', '1.0.0').fast})")  # fmt: skip
    finally:
        for bus in buses.values():
            bus.close()
        fast.close()
        slow.close()
        doomed = [*client.scan_iter(match=f"{exchange}*", count=1000)]
        client.delete(*doomed, f"_kombu.binding.{exchange}")
        client.close()


if __name__ == "__main__":
    main()
