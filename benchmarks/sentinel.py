"""Redis Sentinel: failover unavailability, acknowledged publishes lost, and the cost of WAIT.

Each round starts a private deployment (primary, one replica — two with ``wait_replicas=1`` —
and three sentinels on loopback),
publishes one event at a time from a thread, SIGKILLs the primary and measures:

- the publish outage: from the kill to the first publish that succeeds again;
- PublishErrors raised meanwhile;
- acknowledged publishes the new primary's log does not hold (lost by asynchronous replication).

Then, on a fresh deployment, sequential publishes with ``wait_replicas=0`` and ``=1``: rate and
latency percentiles, and the ratio (WAIT adds one replication round trip per publish).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from celery import Celery  # noqa: E402

from wowevent_kombu import EventBus, PublishError  # noqa: E402
from wowevent_kombu.testing.sentinelcluster import SentinelCluster  # noqa: E402


def make_bus(cluster: SentinelCluster, **options: Any) -> EventBus:
    app = Celery("bench", broker=cluster.url, set_as_current=False)
    app.conf.broker_transport_options = {"master_name": cluster.master_name}
    bus = EventBus(app, exchange=f"bench{uuid.uuid4().hex[:8]}", publish_timeout=1.0, **options)
    bus.transport.bind(f"{bus.exchange}.sink", ["bench.*"])
    return bus


def failover_round(wait_replicas: int) -> dict[str, float]:
    # With WAIT, two replicas: one is left to acknowledge after the failover.
    with SentinelCluster(replicas=1 + wait_replicas) as cluster:
        bus = make_bus(cluster, wait_replicas=wait_replicas, wait_timeout_ms=200)
        acked: list[tuple[str, float]] = []
        errors: list[float] = []
        stop = threading.Event()

        def publish() -> None:
            while not stop.is_set():
                try:
                    acked.append((bus.publish("bench.tick", {}).id, time.monotonic()))
                except PublishError:
                    errors.append(time.monotonic())
                    time.sleep(0.01)

        thread = threading.Thread(target=publish, daemon=True)
        thread.start()
        time.sleep(1.0)
        old = cluster.primary()
        killed_at = time.monotonic()
        old.stop(kill=True)
        cluster.wait_failover(old.port)
        while not errors or acked[-1][1] < max(errors):
            time.sleep(0.01)
        resumed = min(t for _, t in acked if t > min(errors))
        time.sleep(0.5)
        stop.set()
        thread.join(10)
        lost = sum(1 for event_id, _ in acked if bus.log.get(event_id) is None)
        bus.close()
    return {"outage_s": resumed - killed_at, "errors": len(errors), "acked": len(acked),
            "lost": lost}  # fmt: skip


def wait_cost(n: int, chunks: int = 6) -> dict[str, dict[str, float]]:
    """Sequential publishes with and without WAIT, alternating in chunks (median chunk rate)."""
    rates: dict[int, list[float]] = {0: [], 1: []}
    samples: dict[int, list[float]] = {0: [], 1: []}
    with SentinelCluster() as cluster:
        buses = {r: make_bus(cluster, wait_replicas=r, wait_timeout_ms=500) for r in (0, 1)}
        for bus in buses.values():
            bus.publish("bench.warm", {})
        for _ in range(chunks):
            for replicas, bus in buses.items():
                start = time.perf_counter()
                for _ in range(n // chunks):
                    t0 = time.perf_counter()
                    bus.publish("bench.tick", {"x": 1})
                    samples[replicas].append(time.perf_counter() - t0)
                rates[replicas].append((n // chunks) / (time.perf_counter() - start))
        for bus in buses.values():
            bus.close()
    out = {}
    for replicas in (0, 1):
        ordered = sorted(samples[replicas])
        out[f"wait_replicas={replicas}"] = {
            "per_s": statistics.median(rates[replicas]),
            "p50_ms": ordered[len(ordered) // 2] * 1000,
            "p99_ms": ordered[int(len(ordered) * 0.99)] * 1000,
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--cost-only", action="store_true", help="skip the failover rounds")
    args = parser.parse_args()
    for replicas in () if args.cost_only else (0, 1):
        rounds = [failover_round(replicas) for _ in range(args.rounds)]
        print(f"failover with wait_replicas={replicas}, {args.rounds} rounds:")
        for r in rounds:
            print(
                f"  outage {r['outage_s']:.2f} s, {r['errors']:.0f} PublishError, "
                f"{r['acked']:.0f} acknowledged, {r['lost']:.0f} acknowledged but lost"
            )
        print(
            f"  median outage {statistics.median(r['outage_s'] for r in rounds):.2f} s", flush=True
        )
    cost = wait_cost(args.events)
    print("| publish (sequential, one event) | events/s | p50 ms | p99 ms |\n|---|---|---|---|")
    for key, value in cost.items():
        print(f"| {key} | {value['per_s']:,.0f} | {value['p50_ms']:.3f} | {value['p99_ms']:.3f} |")
    base, waited = cost["wait_replicas=0"], cost["wait_replicas=1"]
    print(f"WAIT costs {base['per_s'] / waited['per_s']:.2f}x in rate, "
          f"+{waited['p50_ms'] - base['p50_ms']:.3f} ms at p50")  # fmt: skip


if __name__ == "__main__":
    main()
