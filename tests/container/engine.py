"""A private Docker daemon for the container tests, and the few CLI calls they make on it.

The daemon is Debian's ``dockerd`` started as its own instance: no bridge, no iptables, its socket,
data root, exec root and pid file under one temporary directory that :meth:`Engine.close` removes.
Containers use the host's network and talk over loopback only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

START_TIMEOUT = 60.0


class EngineUnavailable(Exception):
    """dockerd cannot run here: the message says why, for the skip (or the failure under CI)."""


def wait_until(condition: Any, timeout: float, message: str, interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; raise at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


class Engine:
    """One ``dockerd`` of our own and the ``docker`` client beside it."""

    def __init__(self) -> None:
        dockerd = shutil.which("dockerd")
        if dockerd is None:
            raise EngineUnavailable("dockerd is not installed (make test-image installs docker.io)")
        if os.geteuid() != 0:
            raise EngineUnavailable("dockerd needs root here (rootless Docker is not set up)")
        client = Path(dockerd).with_name("docker")
        self.client = str(client if client.exists() else shutil.which("docker") or "docker")
        # Short: the socket's path must fit in sun_path (108 bytes).
        self.root = Path(tempfile.mkdtemp(prefix="wowevent-dockerd-"))
        self.socket = self.root / "docker.sock"
        self.host = f"unix://{self.socket}"
        self.log_path = self.root / "dockerd.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false",
             f"--host={self.host}", f"--data-root={self.root / 'data'}",
             f"--exec-root={self.root / 'exec'}", f"--pidfile={self.root / 'docker.pid'}",
             # Its own containerd namespaces: nothing shared with another daemon on the machine.
             f"--containerd-namespace=wowevent-{self.root.name}",
             f"--containerd-plugins-namespace=wowevent-{self.root.name}-plugins"],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            wait_until(self._answers, START_TIMEOUT, "dockerd to answer", 0.1)
        except AssertionError as exc:
            log = self.log_path.read_text(errors="replace")[-3000:]
            self.close()
            raise EngineUnavailable(f"dockerd did not start: {exc}\n{log}") from None

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"dockerd exited with {self.proc.returncode}")
        if not self.socket.exists():
            return False
        out = subprocess.run(self.argv("version", "--format", "{{.Server.Version}}"),
                             capture_output=True, text=True, timeout=30)  # fmt: skip
        return out.returncode == 0

    def argv(self, *args: str) -> list[str]:
        return [self.client, "--host", self.host, *args]

    @property
    def env(self) -> dict[str, str]:
        """An environment whose ``docker`` (and Compose) talk to this daemon."""
        return {**os.environ, "DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def run(
        self, *args: str, timeout: float = 120.0, check: bool = True, stdin: Any = None
    ) -> subprocess.CompletedProcess[str]:
        """``docker ARGS``; fail with its output when it fails and ``check`` is set."""
        out = subprocess.run(
            self.argv(*args), capture_output=True, text=True, timeout=timeout, env=self.env,
            stdin=stdin,
        )  # fmt: skip
        if check and out.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed ({out.returncode}):\n"
                                 f"{out.stdout[-4000:]}\n{out.stderr[-4000:]}")  # fmt: skip
        return out

    def inspect(self, name: str) -> dict[str, Any]:
        data: list[dict[str, Any]] = json.loads(self.run("inspect", name).stdout)
        return data[0]

    def health(self, container: str) -> str:
        state = self.inspect(container)["State"]
        if not state["Running"]:
            raise AssertionError(f"{container} stopped: {state}\n{self.logs(container)}")
        return str(state.get("Health", {}).get("Status", "none"))

    def logs(self, container: str) -> str:
        out = self.run("logs", container, check=False)
        return out.stdout + out.stderr

    def image_size(self, image: str) -> int:
        return int(self.run("image", "inspect", "--format", "{{.Size}}", image).stdout)

    def close(self) -> None:
        """Stop every container, stop the daemon, remove its directory."""
        if self.proc.poll() is None:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                ids = self.run("ps", "-aq", check=False, timeout=30).stdout.split()
                if ids:
                    self.run("rm", "-f", *ids, check=False, timeout=120)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()
        # A daemon killed hard may leave its overlay mounts behind: unmount before removing.
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(self.root))]  # fmt: skip
        for mount in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False)
        shutil.rmtree(self.root, ignore_errors=True)
