"""Publish-side benchmark: the bus against Celery and Kombu, side by side in one run.

Prints events/s for each scenario and its ratio to the baselines measured in the same run
(median of several rounds; the machine is shared and noisy). Needs a Redis; run via
``make bench`` or ``WOWEVENT_TEST_REDIS_URL=redis://... python benchmarks/publish.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from collections.abc import Callable

import redis
from celery import Celery
from kombu import Connection, Exchange, Producer, Queue

from wowevent_kombu import Event, EventBus

PAYLOAD = {
    "order_id": "ord-000123456",
    "customer": {"id": "cus-987654", "email": "someone@example.com", "tier": "gold"},
    "lines": [{"sku": f"SKU-{i:04d}", "qty": i + 1, "price": 12.5 * (i + 1)} for i in range(3)],
    "currency": "EUR",
    "total": 75.0,
    "note": "deliver after 6pm, ring twice",
}


def rate(run: Callable[[int], None], n: int) -> float:
    """Events/s of one run of ``n`` events."""
    start = time.perf_counter()
    run(n)
    return n / (time.perf_counter() - start)


def make_bus(url: str, exchange: str, subscribers: int, matching: int) -> EventBus:
    app = Celery("bench", broker=url, set_as_current=False)
    bus = EventBus(app, exchange=exchange)
    for i in range(subscribers):
        pattern = "order.*" if i < matching else f"other{i}.*"
        bus.subscriber(pattern, name=f"s{i}")(lambda event: None)
    bus.declare()
    return bus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", dest="json_out", help="also write results to this file")
    args = parser.parse_args()
    url = os.environ.get("WOWEVENT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url)
    prefix = f"bench{uuid.uuid4().hex[:6]}"
    n, rounds = args.events, args.rounds
    size = len(Event(type="order.created", data=PAYLOAD).to_json())
    results: dict[str, float] = {}
    cleanup: list[str] = []
    scenarios: list[tuple[str, Callable[[int], None], int]] = []
    buses: list[EventBus] = []

    def scenario(name: str, run: Callable[[int], None], count: int = n) -> None:
        scenarios.append((name, run, count))

    print(f"payload {size} B encoded, {n} events x {rounds} rounds, Redis {url}\n")
    try:
        # Baseline 1: Celery apply_async of one task.
        app = Celery("bench-celery", broker=url, set_as_current=False)
        app.conf.task_default_queue = f"{prefix}.celery"
        cleanup += [f"{prefix}.celery", f"_kombu.binding.{prefix}.celery"]

        @app.task(name="bench.noop")
        def noop(event: dict) -> None:
            pass

        doc = Event(type="order.created", data=PAYLOAD).to_cloudevent()
        with app.producer_or_acquire() as celery_producer, Connection(url) as conn:
            scenario("celery apply_async (1 task)",
                     lambda k: [noop.apply_async(kwargs={"event": doc}, producer=celery_producer)
                                for _ in range(k)])  # fmt: skip

            # Baseline 2: Kombu topic publish with 1 and 10 bound queues.
            channel = conn.channel()
            for matching in (1, 10):
                ex = Exchange(f"{prefix}k{matching}", type="topic")
                for i in range(matching):
                    queue = Queue(f"{prefix}.k{matching}.{i}", ex, routing_key="order.*")
                    queue(channel).declare()
                    cleanup.append(f"{prefix}.k{matching}.{i}")
                cleanup.append(f"_kombu.binding.{prefix}k{matching}")
                producer = Producer(channel, exchange=ex, serializer="json")

                def kombu(k: int, p: Producer = producer) -> None:
                    for _ in range(k):
                        p.publish({"event": doc}, routing_key="order.created")

                scenario(f"kombu topic publish ({matching} matching)", kombu)

            # The bus.
            for subs, matching in ((1, 1), (10, 10), (1000, 1)):
                exchange = f"{prefix}b{subs}x{matching}"
                cleanup += [f"{exchange}*", f"_kombu.binding.{exchange}"]
                bus = make_bus(url, exchange, subs, matching)
                buses.append(bus)
                label = f"bus.publish ({matching} matching, {subs} bound)"
                scenario(label, lambda k, b=bus: [b.publish("order.created", PAYLOAD)
                                                  for _ in range(k)])  # fmt: skip
                if subs == 1:
                    batch = 500

                    def many(k: int, b: EventBus = bus) -> None:
                        for _ in range(k // batch):
                            b.publish_many([Event(type="order.created", data=PAYLOAD)
                                            for _ in range(batch)])  # fmt: skip

                    scenario(f"bus.publish_many (batches of {batch})", many, n * 10)

            # Rounds interleave the scenarios, so a burst of load elsewhere hits them all alike.
            samples: dict[str, list[float]] = {name: [] for name, _, _ in scenarios}
            for name, run, count in scenarios:
                run(max(count // 10, 100))  # warm-up: connections, caches
            for _ in range(rounds):
                for name, run, count in scenarios:
                    samples[name].append(rate(run, count))
            for name, values in samples.items():
                results[name] = statistics.median(values)
                print(f"  {name:<44} {results[name]:>10,.0f} /s", flush=True)
            for bus in buses:
                bus.close()
    finally:
        for pattern in cleanup:
            keys = (
                list(client.scan_iter(match=pattern, count=1000)) if "*" in pattern else [pattern]
            )
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])

    one = results["bus.publish (1 matching, 1 bound)"]
    celery = results["celery apply_async (1 task)"]
    ten = results["bus.publish (10 matching, 10 bound)"]
    thousand = results["bus.publish (1 matching, 1000 bound)"]
    many = results["bus.publish_many (batches of 500)"]
    kombu10 = results["kombu topic publish (10 matching)"]
    checks = [
        ("publish, 1 subscriber", f"{one:,.0f}/s", f"{one / celery:.1f}x celery",
         one >= 5000 and one >= 3 * celery),
        ("10 matching cost vs 1", f"{one / ten:.2f}x", "target <= 2x", one / ten <= 2),
        ("publish_many", f"{many:,.0f}/s", f"{many / one:.1f}x publish", many >= 30000),
        ("1000 bound, 1 matching", f"{thousand:,.0f}/s", f"{thousand / one:.0%} of 1 bound",
         thousand >= 0.9 * one),
        ("kombu topic, 10 matching", f"{kombu10:,.0f}/s", f"bus is {ten / kombu10:.1f}x faster",
         True),
    ]  # fmt: skip
    print("\n| check | figure | ratio | target met |\n|---|---|---|---|")
    for name, figure, ratio, ok in checks:
        print(f"| {name} | {figure} | {ratio} | {'yes' if ok else 'NO'} |")
    if args.json_out:
        with open(args.json_out, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
