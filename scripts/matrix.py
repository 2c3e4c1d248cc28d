"""Run the seam's tests in one virtual environment per supported Celery/Kombu/Python cell.

Each cell's environment lives in ``.matrix/<cell>/`` and is rebuilt only when its inputs
change (setup.cfg, pyproject.toml, the cell's pins and Python, this script's install steps),
as the Makefile's STAMP does for ``.venv``. The pinned Celery and Kombu are installed first
and the project second, as a team that already runs that Celery would install it: the
project's requirements must keep them, which this script checks.

In each cell it runs the unit tests, the integration and reliability tests that exercise the
seam (:data:`SEAM_TESTS`) and ``scripts/kombu-contract.py``, then prints one table row per cell.

Usage::

    python scripts/matrix.py                 # every cell
    python scripts/matrix.py --cell py313-celery57 --only unit
    python scripts/matrix.py --build-only
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MATRIX = ROOT / ".matrix"


@dataclass(frozen=True)
class Cell:
    """One supported combination: a Python, a Celery and the newest Kombu of its line."""

    name: str
    python: str
    celery: str
    kombu: str
    deselect: str = ""
    """A pytest ``-k`` expression of tests this cell leaves out (the reason is in CELLS)."""

    @property
    def pins(self) -> list[str]:
        # kombu[redis] brings the redis-py range that Kombu release was made for.
        return [f"celery=={self.celery}", f"kombu[redis]=={self.kombu}"]


CELLS = (
    # Celery 5.4 cannot consume quorum queues: the bus refuses RabbitMQ there (compat,
    # tests/integration/test_release_gate.py), so the RabbitMQ variants are left out.
    Cell("py311-celery54", "3.11", "5.4.0", "5.4.2", deselect="not amqp"),
    Cell("py312-celery55", "3.12", "5.5.3", "5.5.4"),
    Cell("py313-celery56", "3.13", "5.6.3", "5.6.2"),
    Cell("py313-celery57", "3.13", "5.7.0", "5.7.0"),
)

SEAM_TESTS = (
    # Worker start, consume, ack, retry and dead letters through the real worker.
    "tests/integration/test_worker.py",
    # Both brokers: every subscriber task on Redis and on RabbitMQ (dispatch task, tags).
    "tests/integration/test_brokers.py",
    # The atomic pop, restore after kill -9, warm-shutdown restore, unacked bookkeeping.
    "tests/reliability/test_atomic_consume.py",
    # Killed pool children and workers: WorkerLostError, retry_on_worker_lost, restore.
    "tests/reliability/test_faults.py",
    # Failure hooks before the ack: a lost child past max_retries, hard time limits (Request
    # on_failure / on_timeout / _context), a refused dead-letter write.
    "tests/integration/test_dead_letters_worker.py",
    "tests/reliability/test_hanging.py",
    # Entries that are no message: the quarantine envelope and the consumer's on_* hooks.
    "tests/reliability/test_malformed_entries.py",
    # A release the bus cannot run is refused at worker start.
    "tests/integration/test_release_gate.py",
    # Messages no worker can run: the pool guard (_process_task) and strategy checks.
    "tests/reliability/test_poison.py",
)
"""Integration and reliability tests that exercise a private member of Celery or Kombu."""

STEPS = {
    "unit": lambda cell: ["-m", "pytest", "-p", "no:cacheprovider", "-q", *_unit_tests()],
    "seam": lambda cell: ["-m", "pytest", "-p", "no:cacheprovider", "-q", "--durations=10",
                          *(["-k", cell.deselect] if cell.deselect else []), *SEAM_TESTS],
    "kombu": lambda cell: [str(ROOT / "scripts" / "kombu-contract.py"), "--sdists",
                           str(MATRIX / "sdists")],
}  # fmt: skip


def _unit_tests() -> list[str]:
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py"))


def find_python(version: str) -> str:
    """The interpreter of ``version``: pyenv's newest of it, else ``pythonX.Y`` on PATH.

    pyenv's shims on PATH answer only for the versions pyenv has selected, so each candidate
    is asked to run before it is used.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = [str(p) for p in sorted(root.glob(f"{version}.*/bin/python{version}"),
                                         reverse=True)]  # fmt: skip
    on_path = shutil.which(f"python{version}")
    for python in [*candidates, *([on_path] if on_path else [])]:
        check = [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
        ran = subprocess.run(check, capture_output=True, text=True)
        if ran.returncode == 0 and ran.stdout.strip() == version:
            return python
    raise SystemExit(f"no working python{version} under {root} or on PATH: install it (pyenv)")


def stamp_of(cell: Cell, python: str) -> str:
    """A digest of everything the cell's environment is built from."""
    digest = hashlib.sha256()
    for path in (ROOT / "setup.cfg", ROOT / "pyproject.toml"):
        digest.update(path.read_bytes())
    digest.update(repr((cell, python, INSTALL_VERSION)).encode())
    return digest.hexdigest()[:16]


INSTALL_VERSION = 1
"""Bump when the install steps below change, so every cell is rebuilt."""


def build(cell: Cell, log: Path) -> Path:
    """The cell's environment, built (or reused when its stamp matches)."""
    python = find_python(cell.python)
    venv = MATRIX / cell.name
    stamp = venv / f".installed-{stamp_of(cell, python)}"
    if stamp.exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    py = str(venv / "bin" / "python")
    with log.open("a") as out:
        for command in (
            [python, "-m", "venv", str(venv)],
            [py, "-m", "pip", "install", "-q", *cell.pins],
            [py, "-m", "pip", "install", "-q", "-e", f"{ROOT}[test]"],
        ):
            out.write(f"$ {' '.join(command)}\n")
            out.flush()
            subprocess.run(command, check=True, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    installed = versions(py)
    wanted = {"celery": cell.celery, "kombu": cell.kombu}
    if installed != wanted:
        raise SystemExit(
            f"{cell.name}: installing the project changed {wanted} to {installed}: "
            "setup.cfg's install_requires does not allow this cell"
        )
    stamp.touch()
    return venv


def versions(py: str) -> dict[str, str]:
    out = subprocess.run(
        [py, "-c", "import celery, kombu; print(celery.__version__, kombu.__version__)"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    return {"celery": out[0], "kombu": out[1]}


@dataclass
class Result:
    """What one cell's steps did."""

    cell: Cell
    passed: int = 0
    failed: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


_COUNTS = re.compile(r"(\d+) (passed|failed|error|errors)\b")


def count(text: str) -> tuple[int, int]:
    """Passed and failed (errors included) from the last summary line of pytest or the script."""
    for line in reversed(text.splitlines()):
        found = _COUNTS.findall(line)
        if found:
            passed = sum(int(n) for n, kind in found if kind == "passed")
            failed = sum(int(n) for n, kind in found if kind != "passed")
            return passed, failed
    return 0, 0


def run_cell(cell: Cell, steps: list[str], logs: Path) -> Result:
    result = Result(cell)
    start = time.monotonic()
    log = logs / f"{cell.name}.log"
    log.write_text("")
    try:
        venv = build(cell, log)
    except (subprocess.CalledProcessError, SystemExit) as exc:
        result.failed += 1
        result.notes.append(f"build failed: {exc} (see {log})")
        result.seconds = time.monotonic() - start
        return result
    env = {**os.environ, "VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    for step in steps:
        command = [str(venv / "bin" / "python"), *STEPS[step](cell)]
        began = time.monotonic()
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        output = proc.stdout + proc.stderr
        with log.open("a") as out:
            out.write(f"\n$ {' '.join(command)}\n{output}")
        passed, failed = count(output)
        if proc.returncode != 0 and failed == 0:
            failed = 1  # a crash, or a collection error pytest counts as an error
        result.passed += passed
        result.failed += failed
        result.notes.append(f"{step}: {passed} passed, {failed} failed, "
                            f"{time.monotonic() - began:.0f} s")  # fmt: skip
        print(f"  {cell.name} {result.notes[-1]}", flush=True)
    result.seconds = time.monotonic() - start
    return result


def table(results: list[Result]) -> str:
    rows = [("cell", "python", "celery", "kombu", "passed", "failed", "seconds")]
    for r in results:
        c = r.cell
        rows.append((c.name, c.python, c.celery, c.kombu, str(r.passed), str(r.failed),
                     f"{r.seconds:.0f}"))  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", action="append", choices=[c.name for c in CELLS])
    parser.add_argument("--only", action="append", choices=list(STEPS))
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    cells = [c for c in CELLS if not args.cell or c.name in args.cell]
    steps = [] if args.build_only else (args.only or list(STEPS))
    logs = MATRIX / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for cell in cells:
        print(f"== {cell.name}: Python {cell.python}, celery {cell.celery}, kombu {cell.kombu}",
              flush=True)  # fmt: skip
        results.append(run_cell(cell, steps, logs))
        for note in results[-1].notes:
            if note.startswith("build failed"):
                print(f"  {note}", flush=True)
    print()
    print(table(results))
    passed = sum(r.passed for r in results)
    failed = sum(r.failed for r in results)
    print(f"matrix: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
