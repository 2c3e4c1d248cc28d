"""``wowevent serve`` tried as a hostile or careless client would: every trick gets its status.

Connections held open across SIGTERM, heads and bodies that stop half-way, chunked bodies and
smuggling attempts, oversized heads and bodies, 200 requests at once, odd methods. The service
is a real ``wowevent serve`` process (or the same app on uvicorn in a thread, where a test only
needs HTTP).
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tests.integration.serving import serving
from tests.web.live import ADMIN, call, live_service, make_bus
from wowevent_kombu import EventBus
from wowevent_kombu.core import names
from wowevent_kombu.web.auth import Tokens
from wowevent_kombu.web.guard import BODY_TIMEOUT
from wowevent_kombu.web.server import HEAD_TIMEOUT, KEEP_ALIVE

PUBLISH = json.dumps({"type": "order.created", "data": {"n": 1}}).encode()


@pytest.fixture
def served(redis_url: str, exchange: str) -> Iterator[tuple[EventBus, str]]:
    bus = make_bus(redis_url, exchange)
    bus.declare()
    with live_service(bus, tokens=Tokens(admin=ADMIN)) as address:
        yield bus, address
    bus.close()


def connect(address: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    return sock


def read_reply(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One whole response (by Content-Length) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body[:length]


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (reads to end of stream)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def admin_post(path: str, body: bytes, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: t", f"Authorization: Bearer {ADMIN}",
             "Content-Type: application/json", *extra]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- shutdown ---------------------------------------------------------------------------------


def test_sigterm_with_idle_partial_and_in_flight_clients_exits_within_5_s(
    redis_url: str, exchange: str, tmp_path: Path
) -> None:
    log = tmp_path / "serve.log"
    with serving(redis_url, exchange, log, WOWEVENT_ADMIN_TOKEN=ADMIN) as (proc, base):
        address = base.removeprefix("http://")
        idle = []
        for _ in range(5):  # keep-alive connections that made one request and wait
            sock = connect(address)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            assert read_reply(sock)[0] == 200
            idle.append(sock)
        bare = [connect(address) for _ in range(3)]  # connected, sent nothing
        partial = connect(address)  # half a request head
        partial.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        in_flight = connect(address)  # a whole head, half a body
        in_flight.sendall(admin_post("/admin/publish", PUBLISH[:10],
                                     f"Content-Length: {len(PUBLISH)}"))  # fmt: skip
        time.sleep(0.2)  # let the server take every connection in before the signal
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        in_flight.sendall(PUBLISH[10:])  # the request in flight is finished and answered
        assert read_reply(in_flight)[0] == 201
        assert closed_by_server(in_flight)  # and then its connection is closed
        in_flight.close()
        assert proc.wait(5) == 0
        took = time.monotonic() - began
        for sock in [*idle, *bare, partial]:
            assert closed_by_server(sock)
            sock.close()
        print(f"\nwowevent serve exited {took:.2f} s after SIGTERM with 10 clients connected")
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(names.log_key(exchange)) == 1
    assert "Traceback" not in log.read_text()


# -- timeouts ---------------------------------------------------------------------------------


def test_stalled_heads_bodies_and_idle_keep_alives_are_closed(served: tuple[EventBus, str]) -> None:
    bus, address = served
    head = connect(address)
    head.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
    body = connect(address)
    body.sendall(admin_post("/admin/publish", PUBLISH[:5], f"Content-Length: {len(PUBLISH)}"))
    idle = connect(address)
    idle.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert read_reply(idle)[0] == 200
    idle_began = time.monotonic()
    status, _, reply = read_reply(body)
    assert status == 408 and "stalled" in json.loads(reply)["error"]
    status, _, reply = read_reply(head)
    assert status == 408 and "request head" in json.loads(reply)["error"]
    assert closed_by_server(idle)
    assert time.monotonic() - idle_began < KEEP_ALIVE + HEAD_TIMEOUT
    for sock in (head, body, idle):
        sock.close()
    assert bus.log.read() == []  # the half-sent publish did nothing
    assert BODY_TIMEOUT <= HEAD_TIMEOUT


def test_300_idle_connections_hold_no_thread_each(
    redis_url: str, exchange: str, tmp_path: Path
) -> None:
    def threads(pid: int) -> int:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no Threads line")

    with serving(redis_url, exchange, tmp_path / "serve.log") as (proc, base):
        address = base.removeprefix("http://")
        before = threads(proc.pid)
        socks = [connect(address) for _ in range(300)]
        status, _, _ = call(address, "GET", "/health")  # still answers beside them
        assert status == 200
        assert threads(proc.pid) <= before + 2
        for sock in socks:
            sock.close()


# -- bodies -----------------------------------------------------------------------------------


def chunked(*parts: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in parts) + b"0\r\n\r\n"


def test_a_chunked_body_is_read_as_the_body_and_nothing_more(served: tuple[EventBus, str]) -> None:
    bus, address = served
    sock = connect(address)
    sock.sendall(admin_post("/admin/publish", chunked(PUBLISH[:7], PUBLISH[7:]),
                            "Transfer-Encoding: chunked"))  # fmt: skip
    status, _, reply = read_reply(sock)
    assert status == 201 and json.loads(reply)["data"] == {"n": 1}
    # The same connection goes on with the next request: the chunks were consumed exactly.
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert read_reply(sock)[0] == 200
    sock.close()
    # A request hidden in a chunk is body data (invalid JSON here), never a second request.
    smuggled = b"GET /admin/bindings HTTP/1.1\r\nHost: t\r\n\r\n"
    sock = connect(address)
    sock.sendall(admin_post("/admin/publish", chunked(smuggled), "Transfer-Encoding: chunked",
                            "Connection: close"))  # fmt: skip
    status, _, reply = read_reply(sock)
    assert status == 400 and "error" in json.loads(reply)
    assert closed_by_server(sock)
    sock.close()
    # Content-Length beside Transfer-Encoding is refused outright.
    sock = connect(address)
    sock.sendall(admin_post("/admin/publish", chunked(PUBLISH), "Transfer-Encoding: chunked",
                            f"Content-Length: {len(PUBLISH)}"))  # fmt: skip
    assert read_reply(sock)[0] == 400
    sock.close()
    assert len(bus.log.read()) == 1


def test_oversized_heads_and_bodies_get_their_statuses(served: tuple[EventBus, str]) -> None:
    bus, address = served
    cases = {
        "URL of 10 KiB": (b"GET /health?x=" + b"a" * 10_240 + b" HTTP/1.1\r\nHost: t\r\n\r\n",
                          414),
        "header of 20 KiB": (b"GET /health HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 20_480
                             + b"\r\n\r\n", 431),
        "150 header fields": (b"GET /health HTTP/1.1\r\nHost: t\r\n"
                              + b"".join(b"X-%d: v\r\n" % i for i in range(150)) + b"\r\n", 431),
        "head of 100 KiB in pieces": (b"GET /health HTTP/1.1\r\nX-Big: " + b"a" * 102_400, 431),
        "declared body of 2 MiB": (admin_post("/admin/publish", b"",
                                              f"Content-Length: {2 * 1024 * 1024}"), 413),
        "chunked body growing past 1 MiB": (
            admin_post("/admin/publish", chunked(*[b"a" * 65_536] * 17),
                       "Transfer-Encoding: chunked"), 413),
        "Content-Length not a number": (admin_post("/admin/publish", b"", "Content-Length: x"),
                                        400),
        "garbage": (b"\x00\xff\xfe garbage\r\n\r\n", 400),
    }  # fmt: skip
    for name, (data, expected) in cases.items():
        sock = connect(address)
        # The server may answer and close before reading everything.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(data)
        status, headers, reply = read_reply(sock)
        assert status == expected, (name, status, reply[:200])
        assert headers["content-type"] == "application/json", name
        assert "error" in json.loads(reply), name
        sock.close()
    assert bus.log.read() == []
    assert call(address, "GET", "/health")[0] == 200


# -- load and methods -------------------------------------------------------------------------


def test_200_parallel_requests_are_all_answered(served: tuple[EventBus, str]) -> None:
    _, address = served
    requests = [("GET", "/status", None), ("GET", "/admin/dlq", ADMIN), ("GET", "/metrics", None),
                ("GET", "/health", None)] * 50  # fmt: skip
    with ThreadPoolExecutor(50) as pool:
        codes = list(pool.map(lambda r: call(address, r[0], r[1], token=r[2])[0], requests))
    assert codes == [200] * 200


def test_methods_get_the_status_they_must(served: tuple[EventBus, str]) -> None:
    _, address = served
    status, headers, body = call(address, "HEAD", "/health")
    assert (status, body) == (200, b"") and headers["content-length"] == "15"
    status, _, body = call(address, "HEAD", "/admin/dlq", token=ADMIN)
    assert (status, body) == (200, b"")
    assert call(address, "HEAD", "/admin/dlq")[0] == 401
    for method in ("OPTIONS", "PUT", "PATCH", "DELETE", "BREW", "TRACE"):
        status, headers, body = call(address, method, "/health")
        assert status == 405, method
        assert headers["allow"] == "GET" and body == {"error": "Method Not Allowed"}, method
    status, headers, body = call(address, "GET", "/admin/publish", token=ADMIN)
    assert (status, headers["allow"]) == (405, "POST")
    assert call(address, "GET", "/nowhere")[0] == 404
    assert call(address, "GET", "/health/../admin/bindings")[0] in (401, 404)
