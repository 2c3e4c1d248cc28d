"""Signing in with a token, and out: the only console pages served without a session."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from wowevent_kombu.web.console.render import ConsoleRoute, render
from wowevent_kombu.web.console.session import (
    PREFIX,
    Refused,
    clear_cookie,
    same_origin,
    session_of,
    set_cookie,
)
from wowevent_kombu.web.context import context_of

__all__ = ["router"]

router = APIRouter(prefix=PREFIX, route_class=ConsoleRoute, include_in_schema=False)

MAX_TOKEN = 1024


def _next_page(target: str | None) -> str:
    """Where to go after signing in: a console page of this site only (no open redirect)."""
    if (
        target
        and target.startswith(PREFIX + "/")
        and not target.startswith("//")
        and "\\" not in target
        and all(c.isprintable() for c in target)
    ):
        return target
    return PREFIX + "/"


@router.get("/login")
def login_page(
    request: Request, target: Annotated[str | None, Query(alias="next", max_length=2048)] = None
) -> Response:
    """The sign-in form (it says who is signed in when someone is)."""
    session_of(request)
    return render(request, "login.html", next=_next_page(target), problem=None)


@router.post("/login")
async def login(request: Request) -> Response:
    """Check the posted token; on success, a session cookie and the page asked for."""
    if not same_origin(request):
        raise Refused(403, "This form was posted from another site; nothing was done.")
    form = await request.form()
    token = form.get("token")
    target = form.get("next")
    target = _next_page(target if isinstance(target, str) else None)
    ctx = context_of(request)
    role = None
    if isinstance(token, str) and 0 < len(token) <= MAX_TOKEN:
        role = ctx.tokens.role_of(token)
    if role is None:
        problem = (
            "That token is not valid. Use the admin token, or the read-only token to look "
            "without changing anything (ask whoever runs this service)."
        )
        return render(request, "login.html", 401, next=target, problem=problem)
    value, session = ctx.signer.issue(role)
    request.state.console_session = session
    response = RedirectResponse(target, 303)
    set_cookie(response, request, value)
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session (it needs no CSRF token: it can only take access away)."""
    if not same_origin(request):
        raise Refused(403, "This form was posted from another site; nothing was done.")
    response = RedirectResponse(f"{PREFIX}/login", 303)
    clear_cookie(response, request)
    return response
