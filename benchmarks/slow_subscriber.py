"""A slow subscriber beside a fast one: shared worker vs dedicated ``-Q`` workers.

Two subscribers receive every event; ``sluggish`` takes BENCH_SLOW_FACTOR (100) times as long
as ``quick``. Set-up *shared*: one prefork worker with 2 children consumes both queues. Set-up
*dedicated*: two workers of 1 child each, started with ``-Q`` on one subscriber queue each (the
runbook's recommendation). Same number of processes in both. Events are published at a steady
rate; the figure is ``quick``'s delivery delay (event time -> handler start): p50, p99, max.

Runs on a private redis-server; prints a table. ``make bench-slow``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wowevent_kombu import Event  # noqa: E402
from wowevent_kombu.core import names  # noqa: E402
from wowevent_kombu.testing.redisserver import RedisServer  # noqa: E402


def start_worker(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celery", "-A", "benchmarks.slowapp", "worker", "-l", "info",
               "--without-gossip", "--without-mingle", "--without-heartbeat", *args]  # fmt: skip
    with log.open("wb") as out:  # the child keeps its own descriptor
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while " ready." not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return proc


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(setup: str, url: str, events: int, rate: float, work: float, factor: float,
        logs: Path) -> dict[str, float]:  # fmt: skip
    exchange = f"slow{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "WOWEVENT_BROKER_URL": url, "WOWEVENT_EXCHANGE": exchange,
           "BENCH_WORK": str(work), "BENCH_SLOW_FACTOR": str(factor),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    os.environ.update(WOWEVENT_BROKER_URL=url, WOWEVENT_EXCHANGE=exchange)
    sys.modules.pop("benchmarks.slowapp", None)
    import benchmarks.slowapp as slowapp

    workers = []
    try:
        if setup == "shared":
            workers.append(start_worker(env, logs / f"{setup}.log", "-P", "prefork", "-c", "2"))
        else:
            for sub in ("quick", "sluggish"):
                queue = names.queue_name(exchange, sub)
                log = logs / f"{setup}-{sub}.log"
                workers.append(start_worker(env, log, "-P", "prefork", "-c", "1", "-Q", queue))
        store = redis.Redis.from_url(url)
        bus = slowapp.bus
        started = time.monotonic()
        for i in range(events):
            bus.publish_event(Event(type="work.item", data={"n": i}))
            pause = started + (i + 1) / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
        deadline = time.monotonic() + 120
        while store.llen(f"{exchange}:delay") < events:
            if time.monotonic() > deadline:
                raise RuntimeError("quick did not handle every event within 120 s")
            time.sleep(0.05)
        slow_done = int(store.llen(f"{exchange}:slow"))
        delays = [float(raw.split()[1]) for raw in store.lrange(f"{exchange}:delay", 0, -1)]
        bus.close()
        return {"p50": percentile(delays, 0.5), "p99": percentile(delays, 0.99),
                "max": max(delays), "slow_done": slow_done}  # fmt: skip
    finally:
        for proc in workers:
            proc.kill()  # our own workers, by pid; the private Redis goes with the run
            proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--work", type=float, default=0.001, help="quick's handler seconds")
    parser.add_argument("--factor", type=float, default=100.0, help="how much slower sluggish is")
    args = parser.parse_args()
    logs = ROOT / ".run" / "slow-subscriber"
    logs.mkdir(parents=True, exist_ok=True)
    with RedisServer() as server:
        results = {setup: run(setup, server.url, args.events, args.rate, args.work, args.factor,
                              logs) for setup in ("shared", "dedicated")}  # fmt: skip
    print(
        f"{args.events} events at {args.rate:g}/s; quick {args.work * 1000:g} ms, sluggish "
        f"{args.work * args.factor * 1000:g} ms per event; 2 worker processes in both set-ups"
    )
    print(f"{'set-up':<34} {'p50 ms':>9} {'p99 ms':>9} {'max ms':>9} {'sluggish done':>14}")
    labels = {"shared": "shared worker (-c 2, both queues)",
              "dedicated": "dedicated -Q workers (-c 1 each)"}  # fmt: skip
    for setup, figures in results.items():
        print(
            f"{labels[setup]:<34} {figures['p50'] * 1000:>9.1f} {figures['p99'] * 1000:>9.1f} "
            f"{figures['max'] * 1000:>9.1f} {figures['slow_done']:>9.0f}/{args.events}"
        )
    ratio = results["shared"]["p99"] / max(results["dedicated"]["p99"], 1e-9)
    print(f"quick's p99 delay, shared / dedicated: {ratio:.0f}x")


if __name__ == "__main__":
    main()
