"""The bus on both brokers, Redis and RabbitMQ, each beside bare Celery on the same broker.

For each broker, in one invocation (rounds interleave the brokers, so a burst of load elsewhere
on the machine hits both alike; each figure is the median of --rounds):

1. publish: events/s of ``bus.publish`` (one matching subscriber, the ~300 B payload of
   ``benchmarks/e2e.py``) from one process, against Celery ``apply_async`` of ``bench.bare``
   carrying the same CloudEvent as its argument, through the same kind of producer, with no
   worker consuming;
2. latency: a paced 500 events/s for --seconds to one subscriber, one solo worker; p50, p95,
   p99 and max of event time -> handler start, against ``bench.bare`` at the same rate;
3. throughput: deliveries/s one solo worker drains from a pre-filled queue of no-op
   deliveries, against the same number of ``bench.bare`` tasks.

The baseline is a stock Celery app on Kombu's own transport (:mod:`benchmarks.bareapp`), run
in a worker process of its own. What each side does on each broker (both are ``acks_late``,
persistent messages):

* Redis, bus: one script call per event that appends it to the log and LPUSHes the task
  message onto the subscriber's list and a token onto its bell. Bare Celery: one LPUSH onto
  its queue's list.
* RabbitMQ, bus: the log append in Redis (``WOWEVENT_TEST_REDIS_URL``), then one publish to
  the bus's topic exchange, which routes it into the subscriber's durable quorum queue, waiting
  for the publisher confirm. Bare Celery: one publish through a topic exchange into a
  durable quorum queue with ``broker_transport_options={'confirm_publish': True}``, so it waits
  for the same confirm; it has no log to write.

RabbitMQ queues and exchanges are named after each run's unique exchange and deleted at the
end of the run. Writes ``brokers.json`` and ``brokers.md`` when --out is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.e2e import (  # noqa: E402
    PAYLOAD,
    Run,
    cloudevent,
    forget_app_modules,
    latency,
    throughput,
)
from wowevent_kombu.testing.redisserver import RedisServer  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672//"
QUANTILES = ("p50", "p95", "p99", "max")


def publish_rate(url: str, n: int, store_url: str | None = None) -> dict[str, float]:
    """Events/s of ``bus.publish`` and of bare ``apply_async``, interleaved, no worker running."""
    run = Run(url, 1, pattern="order.*", mode="count", store_url=store_url)
    try:
        doc = cloudevent()
        with run.bare.app.producer_or_acquire() as producer:

            def bus(k: int) -> None:
                for _ in range(k):
                    run.bus.publish("order.created", PAYLOAD)

            def bare(k: int) -> None:
                for _ in range(k):
                    run.bare.bare.apply_async(
                        kwargs={"sent": time.time(), "event": doc}, producer=producer
                    )

            sides: dict[str, Callable[[int], None]] = {"bus": bus, "bare": bare}
            for send in sides.values():
                send(max(n // 10, 20))  # warm-up: connections, declarations, caches
            rates = {}
            for side, send in sides.items():
                start = time.perf_counter()
                send(n)
                rates[side] = n / (time.perf_counter() - start)
    finally:
        run.close()
    return rates


def bench(
    brokers: dict[str, tuple[str, str | None]],
    *,
    rounds: int,
    events: int,
    rate: int,
    seconds: float,
    drain: int,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[str, Any]:
    """Run every scenario ``rounds`` times on each broker; the medians, bus and bare.

    Args:
        brokers: broker name -> (broker URL, store URL or ``None`` when the broker is Redis).
        rounds: How many times to run each scenario; figures are the medians.
        events: Events per side in the publish scenario.
        rate: Events/s of the paced latency scenario.
        seconds: How long the latency scenario publishes, per side.
        drain: Deliveries per side in the throughput scenario.
        progress: Called with a line after every measurement.
    """
    samples: dict[str, dict[str, list[dict[str, Any]]]] = {
        name: {"publish": [], "latency": [], "throughput": []} for name in brokers
    }
    runs: dict[str, list[str]] = {name: [] for name in brokers}
    with preserved_environment():
        measure(brokers, samples, runs, rounds, events, rate, seconds, drain, progress)
    report: dict[str, Any] = {
        "config": {"rounds": rounds, "publish_events": events, "latency_rate": rate,
                   "latency_seconds": seconds, "throughput_deliveries": drain},
        "brokers": {},
        "runs": runs,
    }  # fmt: skip
    for name, got in samples.items():
        report["brokers"][name] = {
            "publish_per_s": median_by_side(got["publish"]),
            "latency_ms": {
                side: {q: statistics.median(s[side][q] for s in got["latency"]) for q in QUANTILES}
                for side in ("bus", "bare")
            },
            "throughput_per_s": median_by_side(got["throughput"]),
        }
    return report


def measure(
    brokers: dict[str, tuple[str, str | None]],
    samples: dict[str, dict[str, list[dict[str, Any]]]],
    runs: dict[str, list[str]],
    rounds: int,
    events: int,
    rate: int,
    seconds: float,
    drain: int,
    progress: Callable[[str], None],
) -> None:
    """Append one sample per scenario, broker and round to ``samples``; brokers interleaved.

    Each scenario makes one :class:`Run`, which names its exchange in ``WOWEVENT_EXCHANGE``;
    those names go to ``runs`` (every queue, exchange and key of a run starts with it).
    """
    for round_no in range(1, rounds + 1):
        for name, (url, store_url) in brokers.items():
            got = samples[name]
            got["publish"].append(publish_rate(url, events, store_url))
            runs[name].append(os.environ["WOWEVENT_EXCHANGE"])
            progress(f"round {round_no} {name} publish/s {fmt_pair(got['publish'][-1])}")
            got["latency"].append(latency(url, rate, seconds, "solo", 1, store_url=store_url))
            runs[name].append(os.environ["WOWEVENT_EXCHANGE"])
            p99 = {side: v["p99"] for side, v in got["latency"][-1].items()}
            progress(f"round {round_no} {name} latency p99 ms {fmt_pair(p99, '.2f')}")
            got["throughput"].append(throughput(url, drain, "solo", store_url=store_url))
            runs[name].append(os.environ["WOWEVENT_EXCHANGE"])
            progress(f"round {round_no} {name} deliveries/s {fmt_pair(got['throughput'][-1])}")


@contextlib.contextmanager
def preserved_environment() -> Iterator[None]:
    """Give back the caller's environment: each run configures its app module through it."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        forget_app_modules()


def median_by_side(samples: list[dict[str, float]]) -> dict[str, float]:
    return {side: statistics.median(s[side] for s in samples) for side in ("bus", "bare")}


def fmt_pair(pair: dict[str, float], spec: str = ",.0f") -> str:
    return f"bus {pair['bus']:{spec}} bare {pair['bare']:{spec}}"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def table(report: dict[str, Any]) -> str:
    """The Markdown table: each broker's bus and bare figures, bus/bare, and amqp/redis (bus)."""
    redis, amqp = report["brokers"]["redis"], report["brokers"]["amqp"]
    rows = [
        "| scenario | Redis: bus | Redis: bare Celery | bus/bare | RabbitMQ: bus "
        "| RabbitMQ: bare Celery | bus/bare | bus RabbitMQ/Redis |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def row(label: str, r: dict[str, float], a: dict[str, float], spec: str) -> None:
        rows.append(
            f"| {label} | {r['bus']:{spec}} | {r['bare']:{spec}} | {ratio(r['bus'], r['bare'])} "
            f"| {a['bus']:{spec}} | {a['bare']:{spec}} | {ratio(a['bus'], a['bare'])} "
            f"| {ratio(a['bus'], r['bus'])} |"
        )

    row("publish (events/s)", redis["publish_per_s"], amqp["publish_per_s"], ",.0f")
    rate = report["config"]["latency_rate"]
    for q in QUANTILES:
        pick = lambda b: {side: b["latency_ms"][side][q] for side in ("bus", "bare")}  # noqa: E731
        row(f"latency {rate}/s, solo, {q} (ms)", pick(redis), pick(amqp), ".2f")
    row("worker throughput, solo (deliveries/s)", redis["throughput_per_s"],
        amqp["throughput_per_s"], ",.0f")  # fmt: skip
    return "\n".join(rows)


def rabbitmq_answers(url: str) -> bool:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception:  # any failure means "not usable"
        return False
    return True


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=3000, help="publish scenario, per side")
    parser.add_argument("--rate", type=int, default=500, help="latency scenario, events/s")
    parser.add_argument("--seconds", type=float, default=4.0, help="latency scenario, per side")
    parser.add_argument("--drain", type=int, default=5000, help="throughput scenario, per side")
    parser.add_argument("--out", help="directory for brokers.json and brokers.md")
    parser.add_argument("--private-redis", action="store_true",
                        help="start a private redis-server for the Redis broker and the store, "
                             "away from other users of the shared one")  # fmt: skip
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        redis_url = os.environ.get("WOWEVENT_TEST_REDIS_URL") or DEFAULT_REDIS_URL
        if args.private_redis:
            redis_url = stack.enter_context(RedisServer()).url
        return run(parser, args, redis_url)


def run(
    parser: argparse.ArgumentParser, args: argparse.Namespace, redis_url: str
) -> dict[str, Any]:
    amqp_url = os.environ.get("WOWEVENT_TEST_AMQP_URL") or DEFAULT_AMQP_URL
    if not rabbitmq_answers(amqp_url):
        parser.exit(2, f"no RabbitMQ answers at {amqp_url.split('@')[-1]}: start one "
                       "(rabbitmq-server -detached) or set WOWEVENT_TEST_AMQP_URL\n")  # fmt: skip
    print(f"Redis {redis_url}, RabbitMQ {amqp_url.split('@')[-1]}; {args.rounds} round(s), "
          "medians; the machine is shared, so absolute figures are noisy: read the ratios",
          flush=True)  # fmt: skip
    report = bench(
        {"redis": (redis_url, None), "amqp": (amqp_url, redis_url)},
        rounds=args.rounds,
        events=args.events,
        rate=args.rate,
        seconds=args.seconds,
        drain=args.drain,
        progress=lambda line: print(line, flush=True),
    )
    report["config"]["private_redis"] = args.private_redis
    text = table(report)
    print("\n" + text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "brokers.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / "brokers.md").write_text(text + "\n")
    return report


if __name__ == "__main__":
    main()
