"""A private Redis Sentinel deployment on loopback: one primary, replicas, three sentinels.

Part of :mod:`wowevent_kombu.testing`, for tests and benchmarks of failover. Every process is
a ``redis-server`` (sentinels run as ``redis-server <config> --sentinel``) on a free port, and
is stopped by its pid, never by name.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from wowevent_kombu.testing.redisserver import (
    RedisServer,
    free_port,
    redis_server_binary,
    stop_pid,
)

DEFAULT_MASTER_NAME = "wowevent"


class SentinelProcess:
    """One ``redis-server --sentinel`` watching ``master_name`` at ``primary_port``."""

    def __init__(
        self,
        directory: Path,
        master_name: str,
        primary_port: int,
        *,
        quorum: int = 2,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.pid: int | None = None
        self._client: redis.Redis | None = None
        self.config = directory / "sentinel.conf"
        self.pidfile = directory / "sentinel.pid"
        directory.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            "\n".join(
                [
                    "bind 127.0.0.1",
                    f"port {self.port}",
                    "daemonize yes",
                    f"pidfile {self.pidfile}",
                    f"logfile {directory / 'sentinel.log'}",
                    f"dir {directory}",
                    f"sentinel monitor {master_name} 127.0.0.1 {primary_port} {quorum}",
                    f"sentinel down-after-milliseconds {master_name} {down_after_ms}",
                    f"sentinel failover-timeout {master_name} {failover_timeout_ms}",
                    f"sentinel parallel-syncs {master_name} 1",
                    "",
                ]
            )
        )

    def start(self, timeout: float = 10.0) -> SentinelProcess:
        """Start the sentinel (daemonised) and wait until it answers."""
        binary = redis_server_binary()
        if binary is None:
            raise FileNotFoundError("redis-server is not installed (it also runs sentinels)")
        subprocess.run([binary, str(self.config), "--sentinel"], check=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pidfile.exists():
                with contextlib.suppress(redis.RedisError, OSError):
                    if self.client().ping():
                        self.pid = int(self.pidfile.read_text().strip())
                        return self
            time.sleep(0.02)
        raise TimeoutError(f"sentinel on port {self.port} did not answer within {timeout} s")

    def client(self) -> redis.Redis:
        """A client of this sentinel (one per process object, closed by :meth:`stop`)."""
        if self._client is None:
            self._client = redis.Redis(port=self.port, socket_timeout=1, socket_connect_timeout=1)
        return self._client

    def stop(self) -> None:
        """SIGTERM by pid and wait until the process is gone."""
        if self._client is not None:
            self._client.close()
            self._client = None
        _stop(self.pid)
        self.pid = None


class SentinelCluster:
    """One primary, ``replicas`` replicas and ``sentinels`` sentinels, all on 127.0.0.1.

    Args:
        master_name: The Sentinel service name.
        replicas: Number of replicas (asynchronous replication, Redis's default).
        sentinels: Number of sentinels; the quorum is a majority of them.
        down_after_ms: How long the primary must not answer before sentinels act.
        directory: Where data, configs and logs go (a fresh temporary one by default).
    """

    def __init__(
        self,
        *,
        master_name: str = DEFAULT_MASTER_NAME,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 1000,
        directory: str | Path | None = None,
    ) -> None:
        self.master_name = master_name
        self.directory = Path(directory or tempfile.mkdtemp(prefix="wowevent-sentinel-"))
        self.servers = [RedisServer(directory=self.directory / "redis0")]
        primary_port = self.servers[0].port
        for i in range(replicas):
            self.servers.append(
                RedisServer(
                    directory=self.directory / f"redis{i + 1}",
                    extra=["--replicaof", "127.0.0.1", str(primary_port)],
                )
            )
        self.sentinels = [
            SentinelProcess(
                self.directory / f"sentinel{i}",
                master_name,
                primary_port,
                quorum=sentinels // 2 + 1,
                down_after_ms=down_after_ms,
            )
            for i in range(sentinels)
        ]

    @property
    def url(self) -> str:
        """Kombu's Sentinel broker URL: ``sentinel://127.0.0.1:p1;sentinel://127.0.0.1:p2;...``."""
        return ";".join(f"sentinel://127.0.0.1:{s.port}/0" for s in self.sentinels)

    def start(self, timeout: float = 30.0) -> SentinelCluster:
        """Start everything; return once replicas are in sync and sentinels know each other."""
        try:
            for server in self.servers:
                server.start()
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        replicas = len(self.servers) - 1
        while time.monotonic() < deadline:
            if self._ready(replicas):
                return
            time.sleep(0.1)
        raise TimeoutError(f"the sentinel deployment was not ready within {timeout} s")

    def _ready(self, replicas: int) -> bool:
        try:
            primary = self.primary_port()
            with redis.Redis(port=primary, socket_timeout=1) as client:
                info = client.info("replication")
            online = sum(
                1
                for key, value in info.items()
                if key.startswith("slave") and isinstance(value, dict)
                if value.get("state") == "online"
            )
            if online < replicas:
                return False
            for sentinel in self.sentinels:
                client = sentinel.client()
                known = _ask(client, "REPLICAS", self.master_name)
                peers = _ask(client, "SENTINELS", self.master_name)
                if len(known) < replicas or len(peers) < len(self.sentinels) - 1:
                    return False
            return True
        except (redis.RedisError, OSError):
            return False

    def primary_port(self) -> int:
        """The port of the primary as the first answering sentinel sees it."""
        for sentinel in self.sentinels:
            with contextlib.suppress(redis.RedisError, OSError):
                _host, port = _ask(sentinel.client(), "GET-MASTER-ADDR-BY-NAME", self.master_name)
                return int(port)
        raise ConnectionError("no sentinel answers")

    def primary(self) -> RedisServer:
        """The server the sentinels currently name as primary."""
        port = self.primary_port()
        return next(s for s in self.servers if s.port == port)

    def wait_failover(self, old_port: int, timeout: float = 30.0) -> int:
        """Wait until every sentinel names a primary other than ``old_port``; its port."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ports = set()
            for sentinel in self.sentinels:
                with contextlib.suppress(redis.RedisError, OSError):
                    reply = _ask(sentinel.client(), "GET-MASTER-ADDR-BY-NAME", self.master_name)
                    ports.add(int(reply[1]))
            if ports and old_port not in ports and len(ports) == 1:
                return ports.pop()
            time.sleep(0.05)
        raise TimeoutError(f"no failover away from port {old_port} within {timeout} s")

    def stop(self) -> None:
        """Stop every process of the deployment (by pid)."""
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop(kill=True)

    def __enter__(self) -> SentinelCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ask(client: redis.Redis, *args: str) -> Any:
    """One ``SENTINEL`` subcommand."""
    return client.execute_command("SENTINEL", *args)  # type: ignore[no-untyped-call]


def _stop(pid: int | None, timeout: float = 10.0) -> None:
    if pid is not None and not stop_pid(pid, signal.SIGTERM, timeout):
        stop_pid(pid, signal.SIGKILL, timeout)
