"""Soak: many events through two subscribers; memory of worker, publisher and Redis, and losses.

A private redis-server and one real ``celery worker`` (prefork, 2 children) run the two
counting subscribers of ``benchmarks/soakapp.py``. This process publishes ``--events`` events
in batches, holding back while a queue holds more than ``--backlog`` deliveries, and samples
the resident memory (RSS) of the worker (main process plus children) and of itself once a
second. Reported:

* events in, handled, duplicated and lost per subscriber (from per-subscriber bitmaps);
* RSS growth after warm-up: last sample against the first sample after warm-up, for the
  worker and the publisher. Warm-up is the first ``--warmup`` fraction of events, and at least
  the subscribers' time limit plus 5 s: Celery's prefork pool arms a timer per delivery for the
  hard time limit, and a cancelled timer stays in the main process's heap until it would have
  fired, so the heap fills up for ``time_limit`` seconds (rate x time limit entries) and then
  stays that size;
* Redis ``used_memory`` before publishing and after the queues drained, with and without the
  event log and the dead-letter store (which keep what they hold by design).

``make soak`` (200,000 events); ``tests/reliability/test_soak.py`` runs a short one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wowevent_kombu import Event  # noqa: E402
from wowevent_kombu.core import names  # noqa: E402
from wowevent_kombu.testing.redisserver import RedisServer  # noqa: E402

SUBSCRIBERS = ("left", "right")


def rss_kib(pid: int) -> int:
    """Resident memory of one process in KiB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def tree_rss_kib(pid: int) -> int:
    """RSS of a process and its direct children (a prefork worker and its pool)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return rss_kib(pid) + sum(rss_kib(int(child)) for child in out.stdout.split())


@dataclasses.dataclass
class SoakReport:
    """What one soak run measured."""

    events: int
    seconds: float
    counts: dict[str, dict[str, int]]
    worker_rss_kib: list[tuple[int, int]]  # (events published so far, KiB)
    publisher_rss_kib: list[tuple[int, int]]
    warmup_events: int
    redis_baseline: int
    redis_drained: int
    redis_kept: int  # MEMORY USAGE of the log and dead letters after the drain (an estimate)
    redis_without_log_dlq: int  # used_memory once the log and dead letters are deleted
    redis_overhead: tuple[tuple[int, int], tuple[int, int]]  # (clients, Lua VM) before, after
    leftover_keys: list[str]  # queues or unacked entries still holding deliveries
    other_keys: dict[str, int]  # the bus's other keys (stats, bindings version...), bytes each

    @property
    def lost(self) -> int:
        return sum(c["lost"] for c in self.counts.values())

    @property
    def duplicates(self) -> int:
        return sum(c["duplicates"] for c in self.counts.values())

    @staticmethod
    def growth(samples: list[tuple[int, int]], warmup: int) -> float:
        """Growth from the first sample after warm-up to the last, as a fraction."""
        after = [kib for published, kib in samples if published >= warmup and kib]
        if len(after) < 2:
            return 0.0
        return (after[-1] - after[0]) / after[0]

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "seconds": round(self.seconds, 1),
            "counts": self.counts,
            "worker_rss_growth": round(self.growth(self.worker_rss_kib, self.warmup_events), 4),
            "publisher_rss_growth": round(
                self.growth(self.publisher_rss_kib, self.warmup_events), 4
            ),
            "worker_rss_kib_first_last": _ends(self.worker_rss_kib, self.warmup_events),
            "publisher_rss_kib_first_last": _ends(self.publisher_rss_kib, self.warmup_events),
            "redis_baseline": self.redis_baseline,
            "redis_drained": self.redis_drained,
            "redis_kept_log_dlq": self.redis_kept,
            "redis_without_log_dlq": self.redis_without_log_dlq,
            "redis_growth_excluding_log_dlq": self.redis_without_log_dlq - self.redis_baseline,
            "redis_overhead_before_after": list(self.redis_overhead),
            "leftover_keys": self.leftover_keys,
            "other_keys_bytes": sum(self.other_keys.values()),
        }  # fmt: skip


def _ends(samples: list[tuple[int, int]], warmup: int) -> list[int]:
    after = [kib for published, kib in samples if published >= warmup and kib]
    return [after[0], after[-1]] if after else []


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "celery", "-A", "benchmarks.soakapp", "worker", "-l",
               "warning", "-P", "prefork", "-c", "2", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]  # fmt: skip
    with log.open("wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _used_memory(client: redis.Redis) -> tuple[int, tuple[int, int]]:
    """Redis ``used_memory``, and two parts of it: client buffers and the Lua VM."""
    info = client.info("memory")
    parts = (int(info["mem_clients_normal"]), int(info.get("used_memory_lua", 0)))
    return int(info["used_memory"]), parts


def _key_memory(client: redis.Redis, keys: list[str]) -> int:
    return sum(int(client.memory_usage(k, samples=0) or 0) for k in keys)


def soak(url: str, events: int, *, batch: int = 500, backlog: int = 5000, warmup: float = 0.2,
         logs: Path | None = None, timeout: float = 3600.0) -> SoakReport:  # fmt: skip
    """Run one soak against the Redis at ``url``.

    The run owns that Redis: nothing else may use it meanwhile (its memory is measured), and
    the run's event log and dead letters are deleted at the end, to measure Redis without them.
    """
    exchange = f"soak{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "WOWEVENT_BROKER_URL": url, "WOWEVENT_EXCHANGE": exchange,
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    # The app module reads its configuration from the environment when imported; set it for
    # the import only, so a caller (the test suite) does not inherit this run's exchange.
    saved = {k: os.environ.get(k) for k in ("WOWEVENT_BROKER_URL", "WOWEVENT_EXCHANGE")}
    os.environ.update(WOWEVENT_BROKER_URL=url, WOWEVENT_EXCHANGE=exchange)
    try:
        sys.modules.pop("benchmarks.soakapp", None)
        import benchmarks.soakapp as soakapp
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    logs = logs or ROOT / ".run"
    logs.mkdir(parents=True, exist_ok=True)
    client = redis.Redis.from_url(url)
    bus = soakapp.bus
    bus.declare()
    queues = [names.queue_name(exchange, s) for s in SUBSCRIBERS]
    worker = _start_worker(env, logs / f"{exchange}-worker.log")
    try:
        time.sleep(0.5)  # its connections and bindings settle before the baseline is taken
        baseline, baseline_overhead = _used_memory(client)
        worker_rss: list[tuple[int, int]] = []
        publisher_rss: list[tuple[int, int]] = []
        published = 0
        started = last_sample = time.monotonic()
        timers_full = started + soakapp.TIME_LIMIT + 5
        warm_after: int | None = None  # events published once the timers had filled up
        deadline = started + timeout

        def sample() -> None:
            worker_rss.append((published, tree_rss_kib(worker.pid)))
            publisher_rss.append((published, rss_kib(os.getpid())))

        while published < events:
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}")
            if max(int(client.llen(q)) for q in queues) > backlog:
                time.sleep(0.02)
            else:
                size = min(batch, events - published)
                bus.publish_many(
                    [Event(type="soak.item", data={"n": published + i}) for i in range(size)]
                )
                published += size
            if warm_after is None and time.monotonic() >= timers_full:
                warm_after = published
            if time.monotonic() - last_sample >= 1.0:
                sample()
                last_sample = time.monotonic()
            if time.monotonic() > deadline:
                raise RuntimeError(f"soak did not finish publishing within {timeout} s")

        def handled() -> int:
            return sum(int(client.get(f"{exchange}:count:{s}") or 0) for s in SUBSCRIBERS)

        while handled() < events * len(SUBSCRIBERS) or any(client.llen(q) for q in queues):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the worker stopped or the deadline passed before the drain")
            if time.monotonic() - last_sample >= 1.0:
                sample()
                last_sample = time.monotonic()
            time.sleep(0.05)
        sample()
        seconds = time.monotonic() - started
        counts = {}
        for sub in SUBSCRIBERS:
            unique = int(client.bitcount(f"{exchange}:seen:{sub}"))
            runs = int(client.get(f"{exchange}:count:{sub}") or 0)
            counts[sub] = {"in": events, "handled": unique, "duplicates": runs - unique,
                           "lost": events - unique}  # fmt: skip
        # The counters are the test's own bookkeeping, not the bus's: leave them out.
        client.delete(
            *[f"{exchange}:{kind}:{s}" for kind in ("seen", "count") for s in SUBSCRIBERS]
        )
        time.sleep(1.5)  # the last acks land; idle connections settle
        drained, drained_overhead = _used_memory(client)
        kept_keys, other_keys = [], []
        for raw in client.scan_iter(match=f"{exchange}:*", count=1000):
            key = raw.decode()
            by_design = key == names.log_key(exchange) or key.startswith(
                (f"{names.log_key(exchange)}:", f"{exchange}:dlq:")
            )
            (kept_keys if by_design else other_keys).append(key)
        kept = _key_memory(client, kept_keys)
        # MEMORY USAGE only estimates a stream or hash: measure Redis without them instead. The
        # run owns this Redis (see the docstring), so the log and DLQ may go now.
        client.delete(*kept_keys)
        without_kept, drained_overhead = _used_memory(client)
        # Deliveries still held anywhere: a subscriber queue or Kombu's unacked bookkeeping.
        leftover = [q for q in queues if client.llen(q)]
        leftover += [k for k in ("unacked", "unacked_index") if client.exists(k) and (
            client.hlen(k) if k == "unacked" else client.zcard(k))]  # fmt: skip
        other = {key: int(client.memory_usage(key, samples=0) or 0) for key in other_keys}
        warm = events if warm_after is None else warm_after  # a short run: never warm
        return SoakReport(
            events=events, seconds=seconds, counts=counts, worker_rss_kib=worker_rss,
            publisher_rss_kib=publisher_rss, warmup_events=max(int(events * warmup), warm),
            redis_baseline=baseline, redis_drained=drained, redis_kept=kept,
            redis_without_log_dlq=without_kept,
            redis_overhead=(baseline_overhead, drained_overhead),
            leftover_keys=leftover, other_keys=other,
        )  # fmt: skip
    finally:
        worker.terminate()  # our own worker, by pid
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        bus.close()


def describe(report: SoakReport) -> list[str]:
    """The report as the lines ``make soak`` prints."""
    figures = report.as_dict()
    rate = len(SUBSCRIBERS) * report.events / report.seconds
    lines = [f"{report.events:,} events through {len(SUBSCRIBERS)} subscribers in "
             f"{figures['seconds']} s ({rate:,.0f} deliveries/s)"]  # fmt: skip
    for sub, c in report.counts.items():
        lines.append(f"  {sub:<6} in {c['in']:,}  handled {c['handled']:,}  "
                     f"duplicates {c['duplicates']}  lost {c['lost']}")  # fmt: skip
    if report.warmup_events >= report.events:
        lines.append("  (publishing ended within the time limit's warm-up: the RSS figures "
                     "below cover the drain only)")  # fmt: skip
    for who in ("worker", "publisher"):
        first, last = figures[f"{who}_rss_kib_first_last"] or [0, 0]
        growth = figures[f"{who}_rss_growth"] * 100
        lines.append(f"  {who} RSS after warm-up: {first / 1024:.1f} -> {last / 1024:.1f} MiB "
                     f"({growth:+.1f}%)")  # fmt: skip
    rest = figures["redis_growth_excluding_log_dlq"]
    (clients_before, lua_before), (clients_after, lua_after) = report.redis_overhead
    lines += [
        f"  Redis used_memory: baseline {report.redis_baseline / 1e6:.2f} MB, drained "
        f"{report.redis_drained / 1e6:.2f} MB (log + DLQ ~{report.redis_kept / 1e6:.2f} MB by "
        f"MEMORY USAGE); with log and DLQ deleted {report.redis_without_log_dlq / 1e6:.2f} MB "
        f"({rest / 1e6:+.3f} MB vs baseline)",
        f"  of which client buffers {clients_before / 1e6:.2f} -> {clients_after / 1e6:.2f} MB, "
        f"Lua VM (script cache, uncollected garbage) {lua_before / 1e6:.2f} -> "
        f"{lua_after / 1e6:.2f} MB",
        f"  other keys of the bus: {len(report.other_keys)} "
        f"({sum(report.other_keys.values()):,} bytes: {', '.join(sorted(report.other_keys))})",
        f"  deliveries still held (queues, unacked): {report.leftover_keys or 'none'}",
    ]  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--backlog", type=int, default=5000, help="deliveries waiting per queue")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    with RedisServer() as server:
        report = soak(server.url, args.events, backlog=args.backlog)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(describe(report)))


if __name__ == "__main__":
    main()
