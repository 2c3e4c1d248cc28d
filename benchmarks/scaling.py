"""Competing workers: deliveries/s with 1, 2 and 3 ``celery worker`` processes on one queue.

Pre-fills one subscriber's queue with ``--events`` events, then starts N solo workers at once
and measures from the first handled delivery to the last, so worker start-up is not counted.
Each handler only increments a counter, so the figure is the bus's own per-delivery cost.
The speed-up is relative to one worker in the same run. On a machine with C cores the
workers, Redis and this script share those C cores; each solo worker also waits on Redis round
trips part of the time, so expect the curve to flatten at about C + 1 workers.
Median of --rounds runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.e2e import Run  # noqa: E402


def run_once(url: str, workers: int, events: int) -> float:
    """Deliveries/s drained by ``workers`` solo worker processes."""
    run = Run(url, 1, pattern="order.*", mode="count")
    try:
        run.fill("bus", events)
        for _ in range(workers):
            run.start_worker("solo", 1, probe=False)
        run.wait(lambda: run.count() >= 1, 60)
        first, done_at_first = time.perf_counter(), run.count()
        run.wait(lambda: run.count() >= events, 300)
        return (events - done_at_first) / (time.perf_counter() - first)
    finally:
        run.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-workers", type=int, default=3)
    args = parser.parse_args()
    url = os.environ.get("WOWEVENT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    cores = os.cpu_count() or 1
    print(f"{cores} CPU cores; {args.events} events; median of {args.rounds} rounds", flush=True)
    print("| workers | deliveries/s | speed-up vs 1 worker |\n|---|---|---|", flush=True)
    base = 0.0
    for workers in range(1, args.max_workers + 1):
        rate = statistics.median(run_once(url, workers, args.events) for _ in range(args.rounds))
        base = base or rate
        print(f"| {workers} | {rate:,.0f} | {rate / base:.2f}x |", flush=True)
    if args.max_workers > cores + 1:
        print(f"\nBeyond {cores + 1} workers the processes compete for {cores} cores (with "
              "Redis and the publisher): the ceiling is the machine, not the bus.")  # fmt: skip


if __name__ == "__main__":
    main()
