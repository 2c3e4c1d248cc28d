"""Rendering console pages: the templates, one-shot flash messages and HTML error pages.

Templates are Jinja2 with autoescaping on for everything, loaded from the package. Every
console route is a :class:`ConsoleRoute`: a library error, a refusal or a bad parameter becomes
an HTML page that says what went wrong (never a stack trace), a missing session a redirect to
the sign-in page.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

import jinja2
import redis
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeSerializer
from starlette.exceptions import HTTPException

from wowevent_kombu.core.errors import WowEventError
from wowevent_kombu.core.urls import redact_query
from wowevent_kombu.web.console.session import PREFIX, Refused, SignInNeeded, login_url
from wowevent_kombu.web.errors import status_of
from wowevent_kombu.web.sessions import Session

__all__ = ["ConsoleRoute", "flash_to", "pretty_json", "render", "render_error", "templates"]

log = logging.getLogger(__name__)

FLASH_COOKIE = "wowevent_flash"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("wowevent_kombu.web.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def when(epoch: float | None) -> str:
    """Epoch seconds as a UTC time to the second; a dash for none."""
    if epoch is None or not math.isfinite(epoch) or epoch <= 0:
        return "—"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float | None) -> str:
    """A latency or an age, in the unit that reads best."""
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms" if seconds >= 0.001 else f"{seconds * 1000:.2f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON (anything not JSON shown as its ``str``)."""
    return json.dumps(value, indent=2, sort_keys=False, default=str, ensure_ascii=False)


_env.filters.update(when=when, duration=duration, pretty_json=pretty_json)
_env.globals["prefix"] = PREFIX
templates = Jinja2Templates(env=_env)


def _flash_codec(session: Session) -> URLSafeSerializer:
    # Keyed by the session's CSRF secret: only this server can write a flash for this session.
    return URLSafeSerializer(session.csrf, salt="wowevent-console-flash")


def flash_to(url: str, session: Session, message: str) -> RedirectResponse:
    """Redirect (303) to ``url``, which then shows ``message`` once."""
    response = RedirectResponse(url, 303)
    response.set_cookie(
        FLASH_COOKIE, _flash_codec(session).dumps(message[:2000]), max_age=120, path=PREFIX,
        httponly=True, samesite="strict",
    )  # fmt: skip
    return response


def _take_flash(request: Request, session: Session | None) -> str | None:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw or session is None:
        return None
    try:
        message = _flash_codec(session).loads(raw)
    except BadSignature:
        return None
    return message if isinstance(message, str) else None


def render(request: Request, name: str, status: int = 200, /, **context: Any) -> Response:
    """The page ``name`` with the layout's context: session, flash message, current section."""
    session: Session | None = getattr(request.state, "console_session", None)
    flash = _take_flash(request, session)
    response = templates.TemplateResponse(
        request, name, {"session": session, "flash": flash, "section": None, **context},
        status_code=status,
    )  # fmt: skip
    # The service says no-referrer everywhere; with it, browsers post forms with "Origin: null"
    # even to their own site. "same-origin" keeps referrers off other sites and lets the
    # console check that a form came from its own pages.
    response.headers["referrer-policy"] = "same-origin"
    if FLASH_COOKIE in request.cookies:
        response.delete_cookie(FLASH_COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


def render_error(request: Request, status: int, message: str) -> Response:
    """A page that says what went wrong (the message is escaped like everything else)."""
    titles = {400: "Bad request", 401: "Not signed in", 403: "Not allowed", 404: "Not found",
              409: "Not possible now", 503: "Redis is unavailable"}  # fmt: skip
    title = titles.get(status, "Something went wrong")
    return render(request, "error.html", status, title=title, message=message, status=status)


def _validation_text(exc: RequestValidationError) -> str:
    parts = []
    for problem in exc.errors()[:5]:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("query", "body"))
        parts.append(f"{where or 'request'}: {problem.get('msg', 'invalid')}")
    return "The request is not valid: " + "; ".join(parts)


class ConsoleRoute(APIRoute):
    """A route whose failures are HTML pages (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The route's handler, wrapped so that no failure leaves it as JSON or a traceback."""
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInNeeded:
                return RedirectResponse(login_url(request), 303)
            except Refused as exc:
                return render_error(request, exc.status, exc.message)
            except RequestValidationError as exc:
                return render_error(request, 400, _validation_text(exc))
            except HTTPException as exc:
                return render_error(request, exc.status_code, str(exc.detail))
            except WowEventError as exc:
                return render_error(request, status_of(exc), str(exc))
            except redis.RedisError as exc:
                log.warning("console %s: Redis is unavailable: %s", request.url.path, exc)
                return render_error(
                    request, 503, f"Redis is unavailable ({type(exc).__name__}); retry once it "
                    "answers.",
                )  # fmt: skip
            except Exception:
                log.exception(
                    "console %s %s failed", request.method, redact_query(str(request.url))
                )
                return render_error(request, 500, "Internal error; see the service log.")

        return guarded
