"""The README's Quick start, run exactly as written: a real worker, the CLI and Python, real Redis.

The section's first Python block is saved as ``shop.py`` (as the README says); each later
Python block runs as a script beside it; each shell block runs line by line in a fresh
``bash``, the block that starts the worker in the background. Only two things are supplied by
the test: the Redis URL when the test Redis is not ``localhost:6379/0``, and
``WOWEVENT_EXCHANGE``, so the run has an exchange of its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tests.conftest import ROOT, wait_for
from wowevent_kombu.core import names

pytestmark = pytest.mark.integration

README_URL = "redis://localhost:6379/0"


def quick_start_blocks() -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block of the README's Quick start, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(\w+)\n(.*?)```", section, flags=re.S)


def commands(code: str) -> list[str]:
    return [line for line in code.splitlines() if line.strip() and not line.startswith("#")]


def test_the_quick_start_runs_as_written(redis_url, redis_client, exchange, tmp_path):
    blocks = quick_start_blocks()
    assert [lang for lang, _ in blocks] == ["python", "sh", "sh", "python", "sh"]
    module = blocks[0][1]
    assert README_URL in module
    local = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    if (local.get("host"), local.get("port"), local.get("db")) != ("127.0.0.1", 6379, 0):
        module = module.replace(README_URL, redis_url)
    (tmp_path / "shop.py").write_text(module)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "WOWEVENT_EXCHANGE": exchange,
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("WOWEVENT_BROKER_URL", None)
    env.pop("WOWEVENT_APP", None)
    log = tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    out = log.open("wb")
    exports: list[str] = []
    ran: list[tuple[str, subprocess.CompletedProcess[str]]] = []
    try:
        for number, (lang, code) in enumerate(blocks[1:], 1):
            if lang == "python":
                script = tmp_path / f"snippet{number}.py"
                script.write_text(code)
                ran.append((code, run([sys.executable, str(script)], tmp_path, env)))
                continue
            for line in commands(code):
                if line.startswith("celery ") and " worker" in line:
                    assert worker is None, "one worker block"
                    worker = subprocess.Popen(
                        ["bash", "-c", f"exec {line}"], cwd=tmp_path, env=env,
                        stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                    )  # fmt: skip
                    wait_for(lambda w=worker: ready(w, log), 60, 0.1, "the README's worker")
                    continue
                if line.startswith("export "):
                    exports.append(line)
                script = "\n".join([*exports, line])
                ran.append((line, run(["bash", "-c", script], tmp_path, env)))
        for order_id in ("1", "2"):
            charged = f"charging order {order_id}"
            wait_for(lambda c=charged: c in log.read_text(), 30, 0.1, f"billing: {charged}")
    finally:
        if worker is not None and worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        out.close()
    outputs = {line: done for line, done in ran}
    for line, done in ran:
        expected = 124 if line.startswith("timeout ") else 0
        assert done.returncode == expected, f"{line}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr, line
    text = log.read_text(errors="replace")
    # The worker comes up without a warning of ours, and names both patterns of audit.
    assert "subscriber audit bound to order.#, payment.*" in text
    ours = [ln for ln in text.splitlines() if "WARNING/" in ln or "ERROR/" in ln]
    assert ours == [], "\n".join(ours)
    listed = output_of(outputs, "wowevent subscribers")
    assert "billing" in listed and "order.#, payment.*" in listed
    assert "to 2 subscriber(s): audit, billing" in output_of(outputs, "wowevent publish")
    status = output_of(outputs, "wowevent status")
    live = re.search(r"(\d+) live worker\(s\)", status)
    assert live and int(live.group(1)) >= 1, status
    assert "published" in output_of(outputs, "from shop import bus")
    # The tail under `timeout` left neither binding nor temporary queue behind.
    assert redis_client.smembers(names.temporary_queues_key(exchange)) == set()
    bound = {m.decode().split(names.KOMBU_BINDING_SEP)[2] for m in
             redis_client.smembers(names.binding_table_key(exchange))}  # fmt: skip
    assert bound == {f"{exchange}.billing", f"{exchange}.audit"}


def ready(worker: subprocess.Popen[bytes], log: Path) -> bool:
    if worker.poll() is not None:
        raise AssertionError(f"the worker exited with {worker.returncode}:\n{log.read_text()}")
    return " ready." in log.read_text(errors="replace")


def run(argv: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def output_of(outputs: dict[str, subprocess.CompletedProcess[str]], start: str) -> str:
    done = next(d for line, d in outputs.items() if line.startswith(start))
    return done.stdout
