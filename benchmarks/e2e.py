"""End-to-end benchmarks against bare Celery, side by side, with real worker processes.

Scenarios (each bus figure beside a bare-Celery baseline from the same run):

1. latency: paced publishing at 500 and 1,000 events/s, solo and prefork-2 workers; p50, p95,
   p99 and max of event time -> handler start.
2. throughput: deliveries/s a worker sustains draining a pre-filled queue of no-op tasks, and
   what solo worker processes (one more than cores) drain together: the machine's ceiling.
3. fan-out: 1, 10 and 100 matching subscribers per event: publish rate and deliveries/s.
4. many subscribers: 1,000 bound subscribers, each event matching one: delivery p99 at
   100 events/s when one worker consumes all 1,000 queues, against one queue.

Writes a JSON and a Markdown table when --out is given. Median of --rounds runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def cloudevent() -> dict[str, Any]:
    """The same event document the bus sends, for the bare-Celery baseline's arguments."""
    from wowevent_kombu import Event

    return Event(type="order.created", data=PAYLOAD).to_cloudevent()


PAYLOAD = {"order_id": "ord-000123456", "customer": "cus-987654", "total": 75.0,
           "currency": "EUR", "lines": [{"sku": "SKU-0001", "qty": 2, "price": 12.5}],
           "note": "deliver after 6pm, ring twice"}  # fmt: skip


APP_MODULES = ("benchmarks.appconfig", "benchmarks.benchapp", "benchmarks.bareapp")
"""The modules that read a run's configuration from the environment when imported."""


def forget_app_modules() -> None:
    """Drop the app modules, so the next import configures them from the environment anew."""
    for module in APP_MODULES:
        sys.modules.pop(module, None)


class Run:
    """One benchmark environment: an exchange, a worker process, a publisher.

    ``url`` is the broker; with a RabbitMQ broker, ``store_url`` is the Redis of the log, the
    dead letters and the recorded latencies.
    """

    def __init__(self, url: str, subscribers: int, pattern: str = "t{i}.*",
                 mode: str = "latency", store_url: str | None = None) -> None:  # fmt: skip
        self.url = url
        self.exchange = f"bench{uuid.uuid4().hex[:8]}"
        self.env = {**os.environ, "WOWEVENT_BROKER_URL": url, "WOWEVENT_EXCHANGE": self.exchange,
                    "BENCH_SUBSCRIBERS": str(subscribers), "BENCH_PATTERN": pattern,
                    "BENCH_MODE": mode, "PYTHONPATH": str(ROOT)}  # fmt: skip
        os.environ.update(WOWEVENT_BROKER_URL=url, WOWEVENT_EXCHANGE=self.exchange)
        self.env.pop("WOWEVENT_STORE_URL", None)
        os.environ.pop("WOWEVENT_STORE_URL", None)
        if store_url is not None:
            self.env["WOWEVENT_STORE_URL"] = os.environ["WOWEVENT_STORE_URL"] = store_url
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("BENCH_")})
        forget_app_modules()
        # Fresh imports per run: the app modules read their configuration from the environment.
        self.app = importlib.import_module("benchmarks.benchapp")
        self.bare = importlib.import_module("benchmarks.bareapp")
        benchapp = self.app
        self.bus = benchapp.bus
        self.bus.declare()
        self.store = redis.Redis.from_url(store_url or url)
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_worker(self, pool: str = "solo", concurrency: int = 1, probe: bool = True,
                     side: str = "bus") -> None:  # fmt: skip
        """Start a worker of the bus's app (``side="bus"``) or of the bare baseline's.

        Several may run at once (each with a node name of its own); :meth:`stop_worker` stops
        them all.
        """
        module = "benchmarks.benchapp" if side == "bus" else "benchmarks.bareapp"
        args = [sys.executable, "-m", "celery", "-A", module, "worker", "-P", pool,
                "-c", str(concurrency), "-l", "warning", "--without-gossip", "--without-mingle",
                "--without-heartbeat", "-n", f"{self.exchange}-{len(self.workers)}@%h"]  # fmt: skip
        # A node name of its own: on RabbitMQ the remote-control queue is exclusive to one
        # worker per node name, so another worker named celery@<host> would block this one.
        log = ROOT / ".run" / f"{self.exchange}-worker.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab") as out:  # the worker keeps its own copy of the descriptor
            self.workers.append(subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out,
                                                 stderr=subprocess.STDOUT))  # fmt: skip
        if not probe:
            return
        # Ready when a probe task round-trips.
        self.store.delete(self.app.LAT)
        (self.app.probe if side == "bus" else self.bare.bare).apply_async(
            kwargs={"sent": time.time()}
        )
        self.wait(lambda: self.store.llen(self.app.LAT) >= 1 or self.count() >= 1, 60)
        self.store.delete(self.app.LAT, self.app.COUNT)

    def stop_worker(self) -> None:
        """Stop every worker this run started (SIGTERM, SIGKILL after 30 s)."""
        workers, self.workers = self.workers, []
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far (user + system) of this run's worker processes, and of Redis."""
        from benchmarks.procstat import cpu_seconds

        info = self.store.info("cpu")
        redis_cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return sum(cpu_seconds(worker.pid) for worker in self.workers), redis_cpu

    def fill(self, side: str, n: int) -> None:
        """Queue ``n`` no-op deliveries for ``side``'s worker: events, or bare Celery tasks."""
        if side == "bus":
            from wowevent_kombu import Event

            for start in range(0, n, 500):
                self.bus.publish_many([Event(type="order.created", data=PAYLOAD)
                                       for _ in range(min(500, n - start))])  # fmt: skip
            return
        document = cloudevent()
        with self.bare.app.producer_or_acquire() as producer:
            for _ in range(n):
                self.bare.bare.apply_async(
                    kwargs={"sent": 0.0, "event": document}, producer=producer
                )

    def count(self) -> int:
        return int(self.store.get(self.app.COUNT) or 0)

    def wait(self, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError("benchmark condition not reached")
            time.sleep(0.005)

    def latencies(self, kind: str) -> list[float]:
        return [float(raw.split()[1]) for raw in self.store.lrange(self.app.LAT, 0, -1)
                if raw.decode().startswith(kind)]  # fmt: skip

    def close(self) -> None:
        self.stop_worker()
        keys = list(self.store.scan_iter(match=f"{self.exchange}*", count=1000))
        # Celery's direct exchanges have their default queue's name.
        defaults = [self.app.app.conf.task_default_queue, self.bare.app.conf.task_default_queue]
        keys += [f"_kombu.{table}.{x}" for table in ("binding", "binding_permanent")
                 for x in (self.exchange, *defaults)]  # fmt: skip
        for start in range(0, len(keys), 500):
            self.store.delete(*keys[start : start + 500])
        try:
            if self.bus.settings.amqp:
                self.delete_rabbitmq_topology()
        finally:
            self.bus.close()

    def delete_rabbitmq_topology(self) -> None:
        """Delete this run's RabbitMQ queues and exchanges (all named after its exchange)."""
        from kombu import Connection

        from wowevent_kombu.core import names

        defaults = [self.app.app.conf.task_default_queue, self.bare.app.conf.task_default_queue]
        queues = [sub.queue for sub in self.bus.subscribers.values()] + defaults
        exchanges = [self.exchange, names.pinned_exchange(self.exchange), *defaults]
        with Connection(self.url) as conn:
            channel = conn.channel()
            for queue in queues:
                channel.queue_delete(queue)
            for exchange in exchanges:
                channel.exchange_delete(exchange)


def paced(rate: float, n: int, send: Callable[[int], None]) -> float:
    """Call ``send`` ``n`` times at ``rate`` per second; the rate achieved.

    A sender slower than the pace falls behind it, and then its side of a comparison carried
    less load than asked: the benchmark reports the achieved rate beside the latencies.
    """
    start = time.perf_counter()
    for i in range(n):
        target = start + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        send(i)
    return n / max(time.perf_counter() - start, (n - 1) / rate, 1e-9)


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {"p50": pick(0.50), "p95": pick(0.95), "p99": pick(0.99), "max": ordered[-1] * 1000}


def latency(url: str, rate: int, seconds: float, pool: str, subscribers: int,
            store_url: str | None = None) -> dict[str, Any]:  # fmt: skip
    n = int(rate * seconds)
    run = Run(url, subscribers, pattern="order.*", store_url=store_url)
    try:
        concurrency = 2 if pool == "prefork" else 1
        run.start_worker(pool, concurrency)
        bus_rate = paced(rate, n, lambda i: run.bus.publish("order.created", PAYLOAD))
        run.wait(lambda: run.store.llen(run.app.LAT) >= n * subscribers, 60)
        bus = {**percentiles(run.latencies("bus")), "events/s": bus_rate}
        run.stop_worker()
        run.store.delete(run.app.LAT)
        run.start_worker(pool, concurrency, side="bare")
        doc = cloudevent()

        def send_bare(i: int) -> None:
            # As many tasks per event as the bus has subscribers, all stamped with one time.
            sent = time.time()
            for _ in range(subscribers):
                run.bare.bare.apply_async(kwargs={"sent": sent, "event": doc})

        bare_rate = paced(rate, n, send_bare)
        run.wait(lambda: run.store.llen(run.app.LAT) >= n * subscribers, 60)
        bare = {**percentiles(run.latencies("bare")), "events/s": bare_rate}
    finally:
        run.close()
    return {"bus": bus, "bare": bare}


def throughput(
    url: str, n: int, pool: str, store_url: str | None = None, workers: int = 1
) -> dict[str, float]:
    """Deliveries/s that ``workers`` worker processes drain from a backlog of ``n``, each side."""
    run = Run(url, 1, pattern="order.*", mode="count", store_url=store_url)
    concurrency = 2 if pool == "prefork" else 1
    try:
        run.start_worker(pool, concurrency)
        run.stop_worker()
        results = {}
        for kind in ("bus", "bare"):
            run.store.delete(run.app.COUNT)
            run.fill(kind, n)
            for _ in range(workers):
                run.start_worker(pool, concurrency, probe=False, side=kind)
            # Measured over the middle 80% of the backlog: neither the workers' start-up (one
            # may start later than another) nor the last, partly idle moments are counted.
            run.wait(lambda: run.count() >= n // 10, 60)
            first, done_at_first, cpu_at_first = time.perf_counter(), run.count(), run.cpu()
            run.wait(lambda: run.count() >= n - n // 10, 300)
            done, cpu = run.count() - done_at_first, run.cpu()
            results[kind] = done / (time.perf_counter() - first)
            if pool == "solo" and store_url is None:  # solo: the worker is one process
                results[f"{kind} worker CPU us"] = (cpu[0] - cpu_at_first[0]) / done * 1e6
                results[f"{kind} Redis CPU us"] = (cpu[1] - cpu_at_first[1]) / done * 1e6
            run.wait(lambda: run.count() >= n, 300)
            run.stop_worker()
    finally:
        run.close()
    return results


def fanout(url: str, matching: int, n: int) -> dict[str, float]:
    run = Run(url, matching, pattern="order.*", mode="count")
    try:
        start = time.perf_counter()
        for _ in range(n):
            run.bus.publish("order.created", PAYLOAD)
        publish_rate = n / (time.perf_counter() - start)
        run.start_worker("prefork", 2, probe=False)
        run.wait(lambda: run.count() >= 1, 60)
        first, done_at_first = time.perf_counter(), run.count()
        run.wait(lambda: run.count() >= n * matching, 600)
        deliveries = (n * matching - done_at_first) / (time.perf_counter() - first)
    finally:
        run.close()
    return {"publish_per_s": publish_rate, "deliveries_per_s": deliveries}


def many(url: str, subscribers: int, rate: int, seconds: float) -> dict[str, Any]:
    n = int(rate * seconds)
    run = Run(url, subscribers)
    try:
        run.start_worker("solo")
        paced(rate, n, lambda i: run.bus.publish(f"t{i % subscribers}.x", PAYLOAD))
        run.wait(lambda: run.store.llen(run.app.LAT) >= n, 120)
        result = percentiles(run.latencies("bus"))
    finally:
        run.close()
    return result


def yardstick() -> float:
    """Seconds a fixed pure-Python loop takes here: how fast this machine is, for comparing runs.

    The same code measures several times faster or slower from one machine to another; the
    ratios to bare Celery, measured in the same run, move much less.
    """
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for i in range(10_000_000):
            total += i
        best = min(best, time.perf_counter() - start)
    return best


def cpu_rows(key: str, res: dict[str, float]) -> list[str]:
    """Table rows of the CPU each side's workers and Redis spent per delivery, when measured."""
    rows = []
    for part in ("worker", "Redis"):
        if f"bus {part} CPU us" in res:
            bus, bare = res[f"bus {part} CPU us"], res[f"bare {part} CPU us"]
            label = key.replace(" (deliveries/s)", f": {part} CPU per delivery (us)")
            rows.append(f"| {label} | {bus:,.0f} | {bare:,.0f} | {ratio(bus, bare)} |")
    return rows


def ratio(bus: float, bare: float) -> str:
    return f"{bus / bare:.2f}x" if bare else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument(
        "--rates",
        default="500,1000",
        help="paced rates (events/s) of the latency scenarios, comma-separated",
    )
    parser.add_argument(
        "--only",
        choices=["latency", "throughput", "fanout", "many"],
        action="append",
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument("--quick", action="store_true", help="one round, short runs")
    parser.add_argument("--out", help="directory for results.json and results.md")
    args = parser.parse_args()
    url = os.environ.get("WOWEVENT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    rounds = 1 if args.quick else args.rounds
    seconds = 1.5 if args.quick else args.seconds
    rates = [int(rate) for rate in args.rates.split(",")]
    only = set(args.only or ["latency", "throughput", "fanout", "many"])
    rows: list[str] = ["| scenario | bus | bare Celery | ratio |", "|---|---|---|---|"]
    report: dict[str, Any] = {"machine: pure-Python yardstick (s)": yardstick()}
    print(f"machine yardstick: {report['machine: pure-Python yardstick (s)']:.2f} s for 10M "
          "loop steps (absolute figures scale with it; ratios much less)", flush=True)  # fmt: skip

    def median_of(fn: Callable[[], Any]) -> Any:
        samples = [fn() for _ in range(rounds)]
        if (
            isinstance(samples[0], dict)
            and "bus" in samples[0]
            and isinstance(samples[0]["bus"], dict)
        ):
            return {
                side: {k: statistics.median(s[side][k] for s in samples) for k in samples[0][side]}
                for side in samples[0]
            }
        if isinstance(samples[0], dict):
            return {k: statistics.median(s[k] for s in samples) for k in samples[0]}
        return statistics.median(samples)

    for pool in ("solo", "prefork") if "latency" in only else ():
        for rate in rates:
            for subs in (1, 2):
                key = f"latency {rate}/s {pool} {subs} sub"
                res = median_of(lambda: latency(url, rate, seconds, pool, subs))
                report[key] = res
                for q in ("p50", "p95", "p99", "max"):
                    rows.append(f"| {key} {q} (ms) | {res['bus'][q]:.2f} | {res['bare'][q]:.2f} | "
                                f"{ratio(res['bus'][q], res['bare'][q])} |")  # fmt: skip
                sent = res["bus"]["events/s"], res["bare"]["events/s"]
                behind = " (a sender fell behind the pace)" if min(sent) < 0.95 * rate else ""
                rows.append(f"| {key} events sent/s | {sent[0]:,.0f} | {sent[1]:,.0f} | "
                            f"{ratio(*sent)}{behind} |")  # fmt: skip
                print(rows[-5:], flush=True)
    # The last row is the machine's ceiling: one solo worker process more than cores, since
    # each waits on Redis round trips part of the time (benchmarks/scaling.py, docs/scaling.md).
    machine = (os.cpu_count() or 1) + 1
    drains = [("solo", 1), ("prefork", 1), ("solo", machine)] if "throughput" in only else []
    for pool, workers in drains:
        if workers == 1:
            key, n = f"throughput {pool} (deliveries/s)", 2000 if args.quick else 5000
        else:
            key = f"throughput {workers} solo workers (deliveries/s)"
            n = (4000 if args.quick else 10000) * workers
        res = median_of(lambda: throughput(url, n, pool, workers=workers))
        report[key] = res
        rows.append(
            f"| {key} | {res['bus']:,.0f} | {res['bare']:,.0f} | {ratio(res['bus'], res['bare'])} |"
        )
        extra = cpu_rows(key, res)
        rows.extend(extra)
        print("\n".join(rows[-1 - len(extra) :]), flush=True)
    for matching in (1, 10, 100) if "fanout" in only else ():
        key = f"fan-out {matching} matching"
        n = max(200, 2000 // matching)
        res = median_of(lambda: fanout(url, matching, n))
        report[key] = res
        rows.append(f"| {key}: publish/s, deliveries/s | {res['publish_per_s']:,.0f}, "
                    f"{res['deliveries_per_s']:,.0f} | | |")  # fmt: skip
        print(rows[-1], flush=True)
    for subs in (1, 1000) if "many" in only else ():
        key = f"{subs} subscribers bound, 100 events/s, one worker"
        res = median_of(lambda: many(url, subs, 100, seconds * 2))
        report[key] = res
        rows.append(f"| {key}: p50/p99 (ms) | {res['p50']:.2f} / {res['p99']:.2f} | | |")
        print(rows[-1], flush=True)
    table = "\n".join(rows)
    print("\n" + table)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "e2e.json").write_text(json.dumps(report, indent=2))
        (out / "e2e.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
