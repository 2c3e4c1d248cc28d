"""Where a delivery's time goes: cProfile of a solo worker draining a backlog, bus and bare Celery.

For each side, pre-fills a queue with ``--events`` no-op deliveries (the handler only counts
them in Redis, one ``INCR``), runs ``celery worker -P solo`` under cProfile until every one is
handled, and prints the profiled time per delivery of the functions that take the most,
cumulatively. The profiler slows everything down about twofold, evenly enough that the shares
are what to read; ``benchmarks/e2e.py --only throughput`` gives the unprofiled rates. The
``.prof`` files are kept (``--out``) for ``python -m pstats`` or snakeviz.
"""

from __future__ import annotations

import argparse
import os
import pstats
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.e2e import Run  # noqa: E402

MODULES = {"bus": "benchmarks.benchapp", "bare": "benchmarks.bareapp"}


def profile(url: str, side: str, n: int, out: Path) -> Path:
    """Drain ``n`` deliveries in a profiled solo worker of ``side``; the ``.prof`` file."""
    run = Run(url, 1, pattern="order.*", mode="count")
    target = out / f"worker-{side}.prof"
    try:
        run.start_worker("solo", side=side)  # declares the queues, then stops
        run.stop_worker()
        run.fill(side, n)
        node = f"{run.exchange}-p@%h"
        args = [sys.executable, "-m", "cProfile", "-o", str(target), "-m", "celery", "-A",
                MODULES[side], "worker", "-P", "solo", "-l", "warning", "--without-gossip",
                "--without-mingle", "--without-heartbeat", "-n", node]  # fmt: skip
        with (ROOT / ".run" / f"{run.exchange}-profile.log").open("ab") as log:
            worker = subprocess.Popen(args, cwd=ROOT, env=run.env, stdout=log, stderr=log)
        try:
            run.wait(lambda: run.count() >= n, 600)
        finally:
            worker.send_signal(signal.SIGTERM)  # cProfile writes its file as the worker exits
            worker.wait(60)
    finally:
        run.close()
    return target


WAITS = ("recv_into", "sendall", "poll", "select", "recv")


def package(filename: str, name: str) -> str:
    """Where a profiled function belongs: a package, the standard library, or socket waits."""
    if filename == "~":
        if any(f"'{wait}'" in name for wait in WAITS):
            return "socket I/O and waiting (Redis round trips, the event loop's poll)"
        return "C built-ins (json, dict, isinstance, ...)"
    if "site-packages/" in filename:
        return filename.split("site-packages/")[1].split("/")[0]
    if filename.startswith(str(ROOT)):
        return filename[len(str(ROOT)) + 1 :].split("/")[0]
    return "Python standard library"


def report(path: Path, n: int, top: int) -> None:
    """Functions called at least once per 20 deliveries: the ``top`` by cumulative time, then
    by own time, in profiled microseconds per delivery."""
    stats = pstats.Stats(str(path))
    rows = []
    for (filename, line, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        calls, own, cumulative = entry[1], entry[2], entry[3]
        if calls < n / 20:
            continue  # start-up and the worker's outer frames
        where = filename.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
        rows.append((cumulative, own, calls, f"{where}:{line} {name}"))
    total = stats.total_tt / n * 1e6  # type: ignore[attr-defined]
    print(f"\n{path.name}: {n} deliveries, {total:,.0f} us profiled per delivery in all")
    shares: dict[str, float] = {}
    for (filename, _line, name), entry in stats.stats.items():  # type: ignore[attr-defined]
        group = package(filename, name)
        shares[group] = shares.get(group, 0.0) + entry[2]
    print("\n| us per delivery (own time, all calls) | where |\n|---|---|")
    rest = 0.0
    for group, own in sorted(shares.items(), key=lambda item: item[1], reverse=True):
        if own / n < 5e-6:
            rest += own
        else:
            print(f"| {own / n * 1e6:,.0f} | {group} |")
    print(f"| {rest / n * 1e6:,.0f} | everything else |")
    for title, index in (("cumulative", 0), ("own", 1)):
        print(f"\n| us per delivery ({title}) | calls per delivery | function |\n|---|---|---|")
        for row in sorted(rows, key=lambda r: r[index], reverse=True)[:top]:
            print(f"| {row[index] / n * 1e6:,.0f} | {row[2] / n:.2f} | `{row[3]}` |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--side", choices=["bus", "bare", "both"], default="both")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", default=str(ROOT / ".run" / "profiles"))
    args = parser.parse_args()
    url = os.environ.get("WOWEVENT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for side in ("bus", "bare") if args.side == "both" else (args.side,):
        start = time.perf_counter()
        path = profile(url, side, args.events, out)
        print(f"{side}: profiled in {time.perf_counter() - start:.1f} s -> {path}", flush=True)
        report(path, args.events, args.top)


if __name__ == "__main__":
    main()
