"""Publishing beside the peers, in one run: rate and client CPU per publish, 1 to 100 in flight.

Usage: ``make bench-peers`` (it builds ``.bench/venv`` with FastStream and Dramatiq, which are
never dependencies of the project), or ``python benchmarks/peers.py`` in any environment:
a peer that is not installed is left out of the table, and said so.

Every publisher sends the same payload to one Redis list per scenario, sequentially or with
several publishes in flight (threads for blocking publishers, tasks for asyncio ones). The
bus's figures include the log append done in the same atomic call, which the peers do not do.
``CPU µs/publish`` is this process's own CPU time (user + system) per publish: where a rate
gap comes from the client rather than the round trip. Rounds alternate between scenarios and
the median is printed, so all of them see the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from celery import Celery

from wowevent_kombu import EventBus
from wowevent_kombu.core import names

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the benchmarks package is beside it

from benchmarks.publish import PAYLOAD  # noqa: E402

Measure = Callable[[int], tuple[float, float]]
"""Publish ``n`` events; ``(seconds, cpu seconds)``."""


def timed(run: Callable[[], None]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def threaded(send: Callable[[], None], n: int, threads: int) -> tuple[float, float]:
    def each() -> None:
        for _ in range(n // threads):
            send()

    def run() -> None:
        workers = [threading.Thread(target=each) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return timed(run)


def in_flight(send: Callable[[], Awaitable[Any]], n: int, tasks: int) -> tuple[float, float]:
    async def main() -> None:
        async def each() -> None:
            for _ in range(n // tasks):
                await send()

        await asyncio.gather(*(each() for _ in range(tasks)))

    loop = asyncio.new_event_loop()
    try:
        return timed(lambda: loop.run_until_complete(main()))
    finally:
        loop.close()


def bus_scenarios(url: str, prefix: str) -> tuple[dict[str, Measure], Callable[[], None]]:
    bus = EventBus(Celery("bench", broker=url, set_as_current=False), exchange=f"{prefix}bus")
    bus.transport.bind(names.queue_name(bus.exchange, "s0"), ["order.*"])
    loop = asyncio.new_event_loop()

    def apublish_in(tasks: int) -> Measure:
        def measure(n: int) -> tuple[float, float]:
            async def main() -> None:
                async def each() -> None:
                    for _ in range(n // tasks):
                        await bus.apublish("order.created", PAYLOAD)

                await asyncio.gather(*(each() for _ in range(tasks)))

            return timed(lambda: loop.run_until_complete(main()))

        return measure

    def publish() -> None:
        bus.publish("order.created", PAYLOAD)

    scenarios: dict[str, Measure] = {
        "bus.publish, 1 thread": lambda n: threaded(publish, n, 1),
        "bus.publish, 4 threads": lambda n: threaded(publish, n, 4),
        "bus.publish, 16 threads": lambda n: threaded(publish, n, 16),
        "await bus.apublish, 1 in flight": apublish_in(1),
        "await bus.apublish, 10 in flight": apublish_in(10),
        "await bus.apublish, 100 in flight": apublish_in(100),
    }

    def close() -> None:
        loop.run_until_complete(bus.aclose())
        loop.close()
        bus.close()

    return scenarios, close


def celery_scenarios(url: str, prefix: str) -> dict[str, Measure]:
    app = Celery("bench-celery", broker=url, set_as_current=False)
    app.conf.task_default_queue = f"{prefix}celery"

    @app.task(name="bench.noop")
    def noop(event: dict[str, Any]) -> None:
        return None

    def send() -> None:
        noop.apply_async(args=(PAYLOAD,))

    noop.apply_async(args=(PAYLOAD,))  # connect before measuring
    return {"Celery apply_async, 1 thread": lambda n: threaded(send, n, 1)}


def dramatiq_scenarios(url: str, prefix: str) -> dict[str, Measure]:
    try:
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
    except ImportError:
        return {}
    broker = RedisBroker(url=url, namespace=f"{prefix}dramatiq")
    dramatiq.set_broker(broker)

    @dramatiq.actor(broker=broker, queue_name="bench")
    def noop(event: dict[str, Any]) -> None:
        return None

    def send() -> None:
        noop.send(PAYLOAD)

    send()
    return {"Dramatiq send, 1 thread": lambda n: threaded(send, n, 1)}


def faststream_scenarios(url: str, prefix: str) -> tuple[dict[str, Measure], Callable[[], None]]:
    try:
        from faststream.redis import RedisBroker as FastBroker
    except ImportError:
        return {}, lambda: None
    loop = asyncio.new_event_loop()
    broker = FastBroker(url)
    loop.run_until_complete(broker.connect())
    queue = f"{prefix}faststream"

    def in_flight_of(tasks: int) -> Measure:
        def measure(n: int) -> tuple[float, float]:
            async def main() -> None:
                async def each() -> None:
                    for _ in range(n // tasks):
                        await broker.publish(PAYLOAD, list=queue)

                await asyncio.gather(*(each() for _ in range(tasks)))

            return timed(lambda: loop.run_until_complete(main()))

        return measure

    def close() -> None:
        loop.run_until_complete(broker.stop())
        loop.close()

    scenarios: dict[str, Measure] = {
        "FastStream publish, 1 in flight": in_flight_of(1),
        "FastStream publish, 10 in flight": in_flight_of(10),
        "FastStream publish, 100 in flight": in_flight_of(100),
    }
    return scenarios, close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    url = os.environ.get("WOWEVENT_TEST_REDIS_URL") or os.environ.get(
        "WOWEVENT_BROKER_URL", "redis://127.0.0.1:6379/0"
    )
    prefix = f"peers{uuid.uuid4().hex[:6]}"
    client = redis.Redis.from_url(url)
    closers: list[Callable[[], None]] = []
    scenarios: dict[str, Measure] = {}
    scenarios.update(celery_scenarios(url, prefix))
    scenarios.update(dramatiq_scenarios(url, prefix))
    fast, close_fast = faststream_scenarios(url, prefix)
    scenarios.update(fast)
    closers.append(close_fast)
    ours, close_ours = bus_scenarios(url, prefix)
    scenarios.update(ours)
    closers.append(close_ours)
    missing = [peer for peer, found in (("Dramatiq", "Dramatiq send, 1 thread" in scenarios),
                                        ("FastStream", bool(fast))) if not found]  # fmt: skip
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in scenarios}
    try:
        for _ in range(args.rounds):
            for name, measure in scenarios.items():
                seconds, cpu = measure(args.events)
                results[name].append((args.events / seconds, cpu / args.events * 1e6))
                for key in client.scan_iter(match=f"{prefix}*"):
                    client.delete(key)  # queues stay small: every round starts alike
    finally:
        for close in closers:
            close()
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
    rows = {name: (statistics.median(r for r, _ in runs), statistics.median(c for _, c in runs))
            for name, runs in results.items()}  # fmt: skip
    base = rows["await bus.apublish, 1 in flight"][0]
    fast_base = rows.get("FastStream publish, 1 in flight", (None, None))[0]
    print(f"{args.events} publishes per figure, median of {args.rounds} rounds, one Redis\n")
    print("| publisher | events/s | CPU µs/publish | vs FastStream sequential |")
    print("|---|---:|---:|---:|")
    for name, (events, cpu) in rows.items():
        ratio = f"{events / fast_base:.2f}x" if fast_base else "-"
        print(f"| {name} | {events:,.0f} | {cpu:,.0f} | {ratio} |")
    threads = rows["bus.publish, 16 threads"][0] / rows["bus.publish, 1 thread"][0]
    print(f"\n16 threads vs 1 thread: {threads:.2f}x (target >= 2x)")
    hundred = rows["await bus.apublish, 100 in flight"][0] / base
    print(f"apublish 100 in flight vs sequential: {hundred:.2f}x (target >= 5x)")
    if missing:
        print(f"\nnot installed here, left out: {', '.join(missing)} (make bench-peers has them)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
