"""Helpers for tests that run ``wowevent serve``, Prometheus or Flower as real processes."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import ROOT, wait_for


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def app_env(redis_url: str, exchange: str, **extra: str) -> dict[str, str]:
    """The environment the test apps read their Redis and exchange from."""
    return {
        **os.environ,
        "WOWEVENT_TEST_REDIS_URL": redis_url,
        "WOWEVENT_TEST_EXCHANGE": exchange,
        "PYTHONPATH": str(ROOT),
        **extra,
    }


@contextmanager
def serving(
    redis_url: str,
    exchange: str,
    log: Path,
    *args: str,
    app: str = "tests.apps.observed:app",
    **env: str,
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``wowevent -A <app> serve --port 0``; yield it and its base URL."""
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from wowevent_kombu.cli import main; main()",
         "-A", app, "serve", "--port", "0", *args],
        cwd=ROOT, env=app_env(redis_url, exchange, **env), stdout=out, stderr=subprocess.STDOUT,
    )  # fmt: skip

    def address() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{log.read_text()}")
        found = re.search(r"serving on (http://\S+)", log.read_text())
        return found.group(1) if found else None

    try:
        yield proc, str(wait_for(address, 20, 0.05, "wowevent serve to listen"))
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
