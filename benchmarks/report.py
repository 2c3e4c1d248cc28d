"""Every benchmark in one report: each run in turn, its output kept, one Markdown and one JSON file.

Each benchmark prints its figures beside a baseline measured in the same run (bare Celery, Kombu,
the same call without the feature). This runs them one after another and writes
``report.md`` (a section per benchmark: the command, its exit status and wall time, what it
printed) and ``report.json`` (the same, plus the JSON the benchmarks that write one left in the
output directory). Publishing, end to end, both brokers, metrics, the HTTP service, dead-letter
re-drive, schemas,
the event log and replay, Redis memory per delivery and per logged event, and worker memory
over a 100,000-event soak. ``make bench`` runs it.

Exits non-zero if any benchmark failed; the report still holds every one that ran.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Step:
    """One benchmark: its name, its arguments (``{out}`` is the output directory), its JSON."""

    name: str
    args: tuple[str, ...]
    writes: str | None = None


STEPS = (
    Step("publishing", ("benchmarks/publish.py", "--json", "{out}/publish.json"), "publish.json"),
    Step(
        "publishing beside peers",
        ("benchmarks/peers.py", "--json", "{out}/peers.json"),
        "peers.json",
    ),
    Step("end to end", ("benchmarks/e2e.py", "--out", "{out}"), "e2e.json"),
    Step("Redis and RabbitMQ", ("benchmarks/brokers.py", "--out", "{out}"), "brokers.json"),
    Step("metrics", ("benchmarks/metrics.py",)),
    Step("tracing", ("benchmarks/tracing.py",)),
    Step("HTTP service", ("benchmarks/http_service.py", "--json", "{out}/http.json"), "http.json"),
    Step("dead-letter re-drive", ("benchmarks/dlq.py",)),
    Step("schemas", ("benchmarks/schemas.py",)),
    Step("event log and replay", ("benchmarks/log.py",)),
    Step("Redis memory", ("benchmarks/redis_sizing.py",)),
    Step("worker memory (soak)", ("benchmarks/soak.py", "--events", "100000")),
)


def run_step(step: Step, out: Path) -> dict[str, Any]:
    """Run one benchmark with this interpreter; what it printed, its status and its JSON."""
    command = [sys.executable, *(arg.replace("{out}", str(out)) for arg in step.args)]
    print(f"== {step.name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    lines: list[str] = []
    # Output is shown as it comes (a benchmark may run for minutes); errors go to a file, so a
    # chatty stderr cannot fill its pipe while stdout is read.
    with tempfile.TemporaryFile("w+") as errors:
        with subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=errors, text=True
        ) as process:
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                lines.append(line)
        errors.seek(0)
        error = errors.read()[-4000:]
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {
        "command": " ".join(["python", *command[1:]]),
        "exit_status": process.returncode,
        "seconds": round(seconds, 1),
        "output": "".join(lines),
    }
    if process.returncode:
        sys.stderr.write(error)
        result["error"] = error
    if step.writes and (out / step.writes).exists():
        result["results"] = json.loads((out / step.writes).read_text())
    return result


def markdown_tables(output: str) -> list[list[str]]:
    """The complete Markdown tables (a header and its ``|---`` line) in a benchmark's output.

    Rows printed one at a time while a benchmark runs, before its final table, are left out.
    """
    blocks: list[list[str]] = [[]]
    for line in output.splitlines():
        if line.startswith("|"):
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [block for block in blocks if len(block) >= 2 and block[1].startswith("|---")]


def markdown(results: dict[str, dict[str, Any]]) -> str:
    """The report: a section per benchmark, tables as printed, other output as a code block."""
    parts = ["# Benchmark report", ""]
    for name, result in results.items():
        status = "ok" if result["exit_status"] == 0 else f"FAILED (exit {result['exit_status']})"
        parts += [f"## {name}", "", f"`{result['command']}`: {status}, {result['seconds']} s", ""]
        tables = markdown_tables(result["output"])
        for table in tables:
            parts += [*table, ""]
        if not tables and result["output"].strip():
            parts += ["```", *result["output"].rstrip("\n").splitlines(), "```", ""]
        if "error" in result:
            parts += ["```", *result["error"].rstrip("\n").splitlines()[-20:], "```", ""]
    return "\n".join(parts)


def collect(steps: Sequence[Step], out: Path) -> dict[str, dict[str, Any]]:
    """Run ``steps`` in order and write ``report.md`` and ``report.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for step in steps:
        results[step.name] = run_step(step, out)
        # Written after every step: an interrupted run keeps what it measured.
        (out / "report.json").write_text(json.dumps(results, indent=2) + "\n")
        (out / "report.md").write_text(markdown(results))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(ROOT / "bench-results"))
    parser.add_argument(
        "--only",
        action="append",
        choices=[step.name for step in STEPS],
        help="run only these benchmarks (repeatable)",
    )
    args = parser.parse_args(argv)
    steps = [step for step in STEPS if not args.only or step.name in args.only]
    results = collect(steps, Path(args.out))
    failed = [name for name, result in results.items() if result["exit_status"]]
    print(f"\nreport: {Path(args.out) / 'report.md'}, {Path(args.out) / 'report.json'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
