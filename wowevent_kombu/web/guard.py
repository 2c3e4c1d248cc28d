"""The service's outer layer: body limits and timeouts, HEAD, security headers, access log.

A pure ASGI middleware, so it sees every request before routing and every response after it:

- a URL over :data:`MAX_URL_BYTES` is answered 414, a request head over :data:`MAX_HEAD_BYTES`
  431, as are more than :data:`MAX_HEADERS` header fields (the HTTP parser limits only heads
  that arrive in pieces);
- a body larger than :data:`MAX_BODY_BYTES` (declared or, chunked, as it streams) is refused
  with 413 without being read on;
- a body that stops arriving for :data:`BODY_TIMEOUT` seconds is answered 408;
- ``HEAD`` is served as ``GET`` without the body (the server drops it, keeping the length);
- every answer says ``nosniff``, no framing, no referrer, and is not cached (pages and admin
  answers hold event payloads);
- the access log never shows a query string's secrets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wowevent_kombu.core.urls import redact_query

__all__ = ["BODY_TIMEOUT", "MAX_BODY_BYTES", "MAX_HEAD_BYTES", "MAX_URL_BYTES", "Guard"]

log = logging.getLogger("wowevent_kombu.web.access")

MAX_BODY_BYTES = 1024 * 1024
MAX_URL_BYTES = 8 * 1024
MAX_HEAD_BYTES = 16 * 1024
MAX_HEADERS = 100
BODY_TIMEOUT = 10.0

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
]


class _Refused(HTTPException):
    """Raised from ``receive``: frameworks pass an ``HTTPException`` from there on unchanged,
    so the app's error handler answers it (the guard answers when nothing else has)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": message}).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"), *SECURITY_HEADERS],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Wraps the app (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.monotonic()
        method = scope["method"]
        url_size = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        head_size = url_size + sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        too_many = len(scope["headers"]) > MAX_HEADERS
        if url_size > MAX_URL_BYTES or head_size > MAX_HEAD_BYTES or too_many:
            status, what, limit = (
                (414, "URL", MAX_URL_BYTES) if url_size > MAX_URL_BYTES
                else (431, "request head", MAX_HEAD_BYTES)
            )  # fmt: skip
            message = f"{what} larger than {limit} bytes"
            if too_many and status == 431 and head_size <= MAX_HEAD_BYTES:
                message = f"more than {MAX_HEADERS} header fields"
            self._log(scope, status, began)
            await _answer(send, status, message)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            status = 413 if declared.isdigit() else 400
            await _answer(send, status, f"request body larger than {MAX_BODY_BYTES} bytes"
                          if status == 413 else "Content-Length is not a number")  # fmt: skip
            self._log(scope, status, began)
            return
        shown = scope  # the access log names the method as asked
        if declared is not None and b"transfer-encoding" in headers:
            # Two framings for one body: a proxy in front may pick the other one (smuggling).
            self._log(scope, 400, began)
            await _answer(send, 400, "Content-Length and Transfer-Encoding together are refused")
            return
        if method == "HEAD":
            scope = {**scope, "method": "GET"}
        received = 0
        started = False
        status_sent = 0

        async def limited_receive() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), BODY_TIMEOUT)
            except TimeoutError:
                raise _Refused(408, f"the request body stalled for {BODY_TIMEOUT:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise _Refused(413, f"request body larger than {MAX_BODY_BYTES} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, status_sent
            if message["type"] == "http.response.start":
                started = True
                status_sent = int(message["status"])
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                self._log(shown, status_sent, began)  # before the client can see the answer
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except _Refused as exc:
            if started:
                raise
            self._log(shown, exc.status, began)
            await _answer(send, exc.status, exc.message)
        except Exception as exc:
            refused = _refusal_in(exc)
            if refused is None or started:
                raise
            self._log(shown, refused.status, began)
            await _answer(send, refused.status, refused.message)

    @staticmethod
    def _log(scope: Scope, status: int, began: float) -> None:
        query = scope.get("query_string", b"").decode("latin-1")
        target = scope.get("path", "") + (f"?{query}" if query else "")
        client: Any = scope.get("client") or ("-", 0)
        log.info(
            "%s %s %s %d %.1fms", client[0], scope.get("method"), redact_query(target), status,
            (time.monotonic() - began) * 1000,
        )  # fmt: skip


def _refusal_in(exc: BaseException) -> _Refused | None:
    """The refusal that caused ``exc`` (a framework may wrap it while reading the body)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, _Refused):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None
