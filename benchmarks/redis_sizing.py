"""Redis sizing: bytes per queued delivery and per logged event, measured on a real redis-server.

Run with ``make bench-sizing`` (or ``.venv/bin/python benchmarks/redis_sizing.py``). A private
``redis-server`` (stopped at the end) holds a bus with four bound subscribers; nothing consumes,
so every delivery stays queued. For each payload size it publishes ``--events`` events and reads
``MEMORY USAGE`` of every key the publishes created, split into the subscriber queues (one
Celery task message per delivery) and the event log with its indexes, and checks the sum against
the growth of ``INFO memory`` ``used_memory``. docs/runbooks/operations.md quotes the figures.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

import redis
from celery import Celery

from wowevent_kombu import Event, EventBus
from wowevent_kombu.core import names
from wowevent_kombu.testing.redisserver import RedisServer

SUBSCRIBERS = {
    "billing": "order.*",
    "audit": "order.#",
    "mailer": "order.created",
    "ledger": "order.created",
}


def payload(size: int) -> dict[str, object]:
    """Order-like data whose JSON encoding is about ``size`` bytes."""
    data: dict[str, object] = {"order_id": str(uuid.uuid4()), "customer": "c-1042", "total": 99.5}
    pad = size - len(json.dumps(data))
    if pad > 20:
        data["note"] = "x" * (pad - 12)
    return data


def key_sizes(client: redis.Redis, exchange: str) -> dict[str, int]:
    """``MEMORY USAGE`` (every element sampled) of each key of the bus."""
    sizes = {}
    for key in client.scan_iter(match=f"{exchange}*", count=1000):
        sizes[key.decode()] = int(client.memory_usage(key, samples=0) or 0)
    return sizes


def measure(
    client: redis.Redis, url: str, size: int, count: int, correlated: bool
) -> dict[str, float]:
    exchange = f"sizing{uuid.uuid4().hex[:8]}"
    app = Celery("sizing", broker=url, set_as_current=False)
    bus = EventBus(app, exchange=exchange)
    for name, pattern in SUBSCRIBERS.items():
        bus.subscriber(pattern, name=name)(lambda event: None)
    bus.declare()
    queues = {names.queue_name(exchange, name) for name in SUBSCRIBERS}
    client.memory_purge()
    before_keys = key_sizes(client, exchange)
    before = int(client.info("memory")["used_memory"])
    started = time.perf_counter()
    data = payload(size)
    batch: list[Event] = []
    encoded = 0
    for number in range(count):
        event = Event(
            type="order.created", data=data, source="shop-api",
            correlation_id=f"req-{number}" if correlated else None,
        )  # fmt: skip
        encoded += len(event.to_json())
        batch.append(event)
        if len(batch) == 200:
            bus.publish_many(batch)
            batch = []
    if batch:
        bus.publish_many(batch)
    elapsed = time.perf_counter() - started
    client.memory_purge()
    after = int(client.info("memory")["used_memory"])
    sizes = key_sizes(client, exchange)
    grown = {k: v - before_keys.get(k, 0) for k, v in sizes.items()}
    queued = sum(v for k, v in grown.items() if k in queues)
    logged = sum(v for k, v in grown.items() if k not in queues)
    deliveries = sum(int(client.llen(q)) for q in queues)
    assert deliveries == count * len(SUBSCRIBERS), (deliveries, count)
    index_keys = [k for k in grown if k.startswith(f"{exchange}:log:")]
    bus.close()
    client.delete(*sizes, names.binding_table_key(exchange))
    return {
        "event_json": encoded / count,
        "per_delivery": queued / deliveries,
        "per_logged_event": logged / count,
        "log_stream": grown.get(names.log_key(exchange), 0) / count,
        "index_keys": len(index_keys),
        "used_memory_per_event": (after - before) / count,
        "keys_per_event": (queued + logged) / count,
        "publish_seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000, help="events per configuration")
    args = parser.parse_args()
    server = RedisServer().start()
    client = redis.Redis.from_url(server.url)
    try:
        print(f"redis-server {client.info('server')['redis_version']}, "
              f"{len(SUBSCRIBERS)} subscribers bound, {args.events} events per row, "
              "nothing consuming")  # fmt: skip
        head = (f"{'data bytes':>10} {'corr id':>8} {'event JSON':>10} {'per delivery':>13} "
                f"{'per logged event':>17} {'(stream)':>9} {'used_memory/event':>18} "
                f"{'sum of keys/event':>18}")  # fmt: skip
        print(head)
        for size in (100, 1024, 4096):
            for correlated in (False, True):
                row = measure(client, server.url, size, args.events, correlated)
                print(
                    f"{size:>10} {'unique' if correlated else 'none':>8} "
                    f"{row['event_json']:>10.0f} {row['per_delivery']:>13.0f} "
                    f"{row['per_logged_event']:>17.0f} {row['log_stream']:>9.0f} "
                    f"{row['used_memory_per_event']:>18.0f} {row['keys_per_event']:>18.0f}"
                )
        print("bytes; per delivery = one queued Celery task message in a subscriber's list;")
        print("per logged event = the log stream entry plus its id and correlation indexes")
    finally:
        client.close()
        server.stop()


if __name__ == "__main__":
    main()
