"""Run the service under uvicorn with the limits a service on a cluster network needs.

- **Shutdown**: SIGTERM or SIGINT stops accepting, closes idle keep-alive connections and
  connections that have not sent a whole request head, lets requests in flight finish for up
  to :data:`GRACE` seconds, then cancels them; the process exits within 5 s whatever clients
  hold open.
- **Timeouts**: a request head must arrive within :data:`HEAD_TIMEOUT` seconds of the
  connection (or of the previous answer), a body must not stall longer than the guard's
  ``BODY_TIMEOUT``, an idle keep-alive connection is closed after :data:`KEEP_ALIVE` seconds.
- **Sizes**: a request head over :data:`MAX_HEAD_BYTES` is answered 431; a body over the
  guard's limit 413. Malformed requests get JSON errors like every other answer.

uvicorn has no request-head timeout; :class:`GuardedH11` adds one to its HTTP/1.1 protocol
(its members used here are covered by ``tests/web/test_server_contract.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from wowevent_kombu.web.guard import MAX_HEAD_BYTES

__all__ = [
    "GRACE", "HEAD_TIMEOUT", "KEEP_ALIVE", "GuardedH11", "bind", "make_server",
    "run", "serving_in_thread",
]  # fmt: skip

log = logging.getLogger(__name__)

GRACE = 3
HEAD_TIMEOUT = 10.0
KEEP_ALIVE = 5


def _raw_answer(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a request-head timeout and JSON protocol errors."""

    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm_head_timer()

    def send_400_response(self, msg: str) -> None:
        buffered = len(self.conn.trailing_data[0])
        if buffered > MAX_HEAD_BYTES:
            answer = _raw_answer(
                431, "Request Header Fields Too Large",
                f"request head larger than {MAX_HEAD_BYTES} bytes",
            )  # fmt: skip
        else:
            answer = _raw_answer(400, "Bad Request", "malformed HTTP request")
        if not self.transport.is_closing():
            self.transport.write(answer)
            self.transport.close()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        if self.transport.is_closing():
            return
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out, self.cycle)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self, armed_for: object) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.cycle is not armed_for:
            return  # a request arrived since: its own answer re-arms the timer
        if self.cycle is not None and not self.cycle.response_complete:
            return
        message = f"no complete request head within {HEAD_TIMEOUT:g} s"
        self.transport.write(_raw_answer(408, "Request Timeout", message))
        self.transport.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (``port`` 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.setblocking(False)
    return sock


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGTERM/SIGINT with a clean exit.

    uvicorn re-raises the signal once it has stopped, so the process would die by it (exit
    -15) before the command could close the bus and say it stopped; here the signals only ask
    the server to stop (a second one forces it), through the event loop.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # a server in a thread (tests, embedding) is stopped by its owner
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)


def make_server(app: Any) -> uvicorn.Server:
    """A uvicorn server of ``app`` with this module's limits (not yet serving)."""
    config = uvicorn.Config(
        app,
        http=GuardedH11,
        lifespan="on",
        timeout_keep_alive=KEEP_ALIVE,
        timeout_graceful_shutdown=GRACE,
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
    )
    return _Server(config)


def run(app: Any, sock: socket.socket, *, on_stop: Callable[[], None] | None = None) -> None:
    """Serve ``app`` on ``sock`` until SIGTERM or SIGINT (see the module docstring)."""
    server = make_server(app)
    try:
        server.run(sockets=[sock])
    finally:
        if on_stop is not None:
            on_stop()


@contextlib.contextmanager
def serving_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``app`` from a thread of this process (embedding, tests); yield ``host:port``.

    Leaving the block stops the server as SIGTERM would (in-flight requests finish).
    """
    sock = bind(host, port)
    server = make_server(app)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="wowevent-serve", daemon=True
    )
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the service stopped while starting; see the log")
        thread.join(0.01)
    bound = sock.getsockname()
    try:
        yield f"{bound[0]}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(GRACE + 5)
