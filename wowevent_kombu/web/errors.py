"""Every error answer is JSON ``{"error": message}``; library errors map to the status they mean.

==================================  ======  ============================================
error                               status  why
==================================  ======  ============================================
bad parameters or body              400     the request itself is malformed
missing token / wrong token         401/403
Unknown* (record, replay, schema)   404     nothing has that id
UnroutableEventError                409     ``mandatory`` and no subscriber matched
InvalidEventError (and subclasses)  422     the event breaks a rule (size, schema, type)
IncompatibleSchemaError, conflict   409     the change is refused as the registry stands
Redis unreachable or refusing auth  503     a dependency is down: retry later
PublishError (Redis failed a write) 503     the same, seen by a publish
other WowEventError                 409     the operation cannot be done as things are
==================================  ======  ============================================
"""

from __future__ import annotations

import logging
import re
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from wowevent_kombu.core.errors import (
    DeadLetterError,
    InvalidEventError,
    InvalidPatternError,
    LogQueryError,
    PublishError,
    SchemaError,
    UnknownDeadLetterError,
    UnknownReplayError,
    UnknownSchemaError,
    UnknownSubscriberError,
    UnroutableEventError,
    WowEventError,
)
from wowevent_kombu.core.urls import redact_query

__all__ = ["ApiError", "error_body", "install_error_handlers", "status_of"]

log = logging.getLogger(__name__)


class ApiError(WowEventError):
    """Answer the request with ``status`` and ``{"error": message}`` (raised by routes)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def error_body(message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": message, **extra}


def status_of(exc: WowEventError) -> int:
    """The HTTP status a library error stands for (see the module table)."""
    if isinstance(exc, ApiError):
        return exc.status
    if isinstance(exc, UnknownDeadLetterError | UnknownReplayError | UnknownSchemaError):
        return 404
    if isinstance(exc, UnknownSubscriberError):
        return 404
    if isinstance(exc, LogQueryError | InvalidPatternError) or (
        isinstance(exc, DeadLetterError) and not isinstance(exc, UnknownDeadLetterError)
    ):
        return 400
    if isinstance(exc, UnroutableEventError):
        return 409
    if isinstance(exc, PublishError):
        return 503  # Redis refused or failed the write: a dependency is down, retry later
    if isinstance(exc, InvalidEventError):
        return 422
    if isinstance(exc, SchemaError):
        return 409
    return 409


def _validation_message(exc: RequestValidationError) -> tuple[str, list[dict[str, Any]]]:
    details = []
    parts = []
    for problem in exc.errors():
        where = ".".join(str(p) for p in problem.get("loc", ()) if p != "body") or "body"
        message = str(problem.get("msg", "invalid"))
        details.append({"field": where, "problem": message})
        parts.append(f"{where}: {message}")
    return "invalid request: " + "; ".join(parts[:5]), details


def allowed_methods(request: Request) -> str | None:
    """Every method the API documents at the request's path (the router names only those of
    the first route matching the path, so ``/admin/dlq/purge`` would say ``GET`` of ``/{id}``).
    ``None`` for a path the API document does not describe."""
    table = getattr(request.app.state, "wowevent_methods", None)
    if table is None:
        table = [
            (re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(path)) + "$"),
             {m.upper() for m in ops if m != "head"}, "{" not in path)
            for path, ops in request.app.openapi()["paths"].items()
        ]  # fmt: skip
        request.app.state.wowevent_methods = table
    matching = [(methods, literal) for pattern, methods, literal in table
                if pattern.match(request.url.path)]  # fmt: skip
    # A literal path (/admin/dlq/purge) names its operation; a template (/admin/dlq/{id})
    # matching the same URL is not what the client meant.
    chosen = [m for m, literal in matching if literal] or [m for m, _ in matching]
    found = set().union(*chosen)
    return ", ".join(sorted(found)) if found else None


def _undeclared_body(request: Request) -> bool:
    sent = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return sent and kind != "application/json"


def install_error_handlers(app: FastAPI) -> None:
    """Make every error answer of ``app`` JSON in the shape of :func:`error_body`."""

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
        return JSONResponse(error_body(str(exc.detail)), exc.status_code, headers=headers)

    async def invalid(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        if _undeclared_body(request):
            # FastAPI reads only bodies declared JSON (a browser cannot send one cross-site
            # without a CORS preflight); say so rather than report the body as missing.
            message = "send the body as JSON, with 'Content-Type: application/json'"
            return JSONResponse(error_body(message), 415)
        message, details = _validation_message(exc)
        return JSONResponse(error_body(message, details=details), 400)

    async def library(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, WowEventError)
        headers = exc.headers if isinstance(exc, ApiError) else {}
        message = exc.message if isinstance(exc, ApiError) else str(exc)
        return JSONResponse(error_body(message), status_of(exc), headers=headers)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        shown = redact_query(str(request.url))
        log.warning("request %s %s: Redis is unavailable: %s", request.method, shown, exc)
        kind = type(exc).__name__
        return JSONResponse(
            error_body(f"Redis is unavailable ({kind}); retry once it answers"),
            503,
            headers={"Retry-After": "5"},
        )

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("request %s %s failed", request.method, redact_query(str(request.url)))
        return JSONResponse(error_body("internal error; see the service log"), 500)

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(WowEventError, library)
    app.add_exception_handler(redis.RedisError, unavailable)
    app.add_exception_handler(Exception, internal)
