"""Private ``redis-server`` processes on free loopback ports, for demos and tests.

Part of :mod:`wowevent_kombu.testing`: used by ``make demo`` and ``make test`` when no Redis
answers, and by tests (the project's or yours) that must restart or kill their own Redis. Each
server is stopped by its pid, never by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def running(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, exited but not yet reaped, does not).

    A daemonised ``redis-server`` is re-parented to init, which may reap it seconds after it
    exited; until then signal 0 still reaches it, though its files and ports are released.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): signal 0 is all there is
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop_pid(pid: int, sig: signal.Signals = signal.SIGTERM, timeout: float = 10.0) -> bool:
    """Send ``sig`` to ``pid`` and wait until it no longer runs; ``False`` at the timeout."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def answers(url: str, timeout: float = 0.5) -> bool:
    """Whether a Redis at ``url`` replies to PING."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError):
        return False


def redis_server_binary() -> str | None:
    """Path of ``redis-server``, or ``None`` when it is not installed."""
    return shutil.which("redis-server")


class RedisServer:
    """One private ``redis-server`` bound to 127.0.0.1.

    Args:
        port: Port to use (a free one by default); reused across :meth:`restart`.
        directory: Data directory (a fresh temporary one by default).
        appendonly: Enable the AOF.
        appendfsync: ``everysec`` or ``always``.
        extra: Further ``redis-server`` arguments, e.g. ``["--requirepass", "s3cret"]``.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        directory: str | Path | None = None,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        extra: list[str] | None = None,
    ) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError(
                "redis-server is not installed: apt-get install redis-server "
                "(Debian/Ubuntu), brew install redis (macOS), or set WOWEVENT_BROKER_URL"
            )
        self.binary = binary
        self.port = port or free_port()
        self.directory = Path(directory or tempfile.mkdtemp(prefix="wowevent-redis-"))
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra = list(extra or [])
        self.pid: int | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pidfile(self) -> Path:
        """Where the server writes its pid."""
        return self.directory / "redis.pid"

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server (daemonised) and wait until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--daemonize", "yes",
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.directory / "redis.log"),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            *self.extra,
        ]  # fmt: skip
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pidfile.exists() and self._ping():
                self.pid = int(self.pidfile.read_text().strip())
                return self
            time.sleep(0.02)
        raise TimeoutError(f"redis-server on port {self.port} did not answer within {timeout} s")

    def _ping(self) -> bool:
        if "--requirepass" in self.extra or "--aclfile" in self.extra:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return True
            return False
        return answers(self.url, 0.2)

    def stop(self, *, kill: bool = False, timeout: float = 10.0) -> None:
        """Stop by pid: SIGTERM (a clean SHUTDOWN, AOF flushed) or SIGKILL when ``kill``."""
        pid = self.pid
        if pid is None:
            return
        stop_pid(pid, signal.SIGKILL if kill else signal.SIGTERM, timeout)
        self.pid = None
        with contextlib.suppress(FileNotFoundError):
            self.pidfile.unlink()

    def restart(self) -> RedisServer:
        """Stop cleanly and start again on the same port and directory."""
        self.stop()
        return self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
