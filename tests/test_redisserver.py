"""Private redis-server processes: stopped by pid, and known gone as soon as they exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from wowevent_kombu.testing.redisserver import (
    RedisServer,
    answers,
    redis_server_binary,
    running,
    stop_pid,
)

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"  # noqa: E501


def test_an_exited_process_not_yet_reaped_does_not_run() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_for(lambda: not running(child.pid), timeout=10, message="the child to exit")
        os.kill(child.pid, 0)  # exited but not waited for: signal 0 still reaches the zombie
    finally:
        child.wait()
    assert not running(child.pid)


def test_stop_pid_waits_for_the_exit_and_reports_a_timeout() -> None:
    with subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None and child.stdout.readline()  # SIGTERM ignored now
            assert not stop_pid(child.pid, timeout=0.2)
            assert running(child.pid)
            assert stop_pid(child.pid, sig=signal.SIGKILL, timeout=10)
            assert not running(child.pid)
        finally:
            child.kill()


@pytest.mark.skipif(redis_server_binary() is None, reason="redis-server is not installed")
def test_a_daemonised_server_is_stopped_by_pid(tmp_path: Path) -> None:
    server = RedisServer(directory=tmp_path).start()
    pid = server.pid
    assert pid is not None and running(pid)
    url = server.url
    server.stop()
    assert server.pid is None and not running(pid)
    assert not answers(url, 0.2)
    assert not server.pidfile.exists()
