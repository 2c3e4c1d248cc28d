"""Who is looking at the console: the session cookie, and the checks before anything changes.

A page needs a valid session (else :class:`SignInNeeded`: a 303 to the sign-in page, nothing
shown). A form that changes something needs more, checked in this order: an admin session,
an ``Origin`` that is this host when the browser sends one, and the session's CSRF token in
the form's ``csrf`` field; any miss is :class:`Refused` (403) and nothing is done.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request, Response
from starlette.datastructures import FormData

from wowevent_kombu.core.errors import WowEventError
from wowevent_kombu.web.context import context_of
from wowevent_kombu.web.sessions import COOKIE, MAX_AGE, Session

__all__ = [
    "PREFIX",
    "Changing",
    "Posted",
    "Refused",
    "SignInNeeded",
    "Viewer",
    "changing",
    "clear_cookie",
    "login_url",
    "set_cookie",
    "viewer",
]

PREFIX = "/console"
"""Where the console lives; its cookie is scoped to this path."""


class SignInNeeded(WowEventError):
    """The request has no valid session: answered with a redirect to the sign-in page."""


class Refused(WowEventError):
    """The request may not do what it asks: answered with an error page and ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclasses.dataclass(frozen=True)
class Posted:
    """A checked form that changes something: who sent it and what it holds."""

    session: Session
    form: FormData

    def values(self, name: str) -> list[str]:
        """Every non-empty string posted under ``name`` (checkboxes give several)."""
        return [v.strip() for v in self.form.getlist(name) if isinstance(v, str) and v.strip()]

    def value(self, name: str) -> str | None:
        """The first non-empty string posted under ``name``."""
        found = self.values(name)
        return found[0] if found else None


def login_url(request: Request) -> str:
    """The sign-in page, asked to come back to the page of ``request`` (GET pages only)."""
    target = request.url.path
    if request.method != "GET" or not target.startswith(PREFIX + "/"):
        return f"{PREFIX}/login"
    if request.url.query:
        target += "?" + request.url.query
    return f"{PREFIX}/login?next={quote(target, safe='')}"


def session_of(request: Request) -> Session | None:
    """The valid session of ``request``, if it has one (remembered for the page layout)."""
    session = context_of(request).signer.read(request.cookies.get(COOKIE))
    request.state.console_session = session
    return session


def viewer(request: Request) -> Session:
    """Dependency of every page: the signed-in session.

    Raises:
        SignInNeeded: no cookie, or one forged, expired or issued for a rotated token.
    """
    session = session_of(request)
    if session is None:
        raise SignInNeeded("sign in first")
    return session


def same_origin(request: Request) -> bool:
    """Whether the ``Origin`` header, when the browser sent one, names this host.

    ``Origin: null`` (a sandboxed frame, or a page whose referrer policy hides its origin) is
    refused: console pages are served with ``Referrer-Policy: same-origin`` so that their
    own forms send their origin.
    """
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not a browser's cross-origin request; the CSRF token still decides
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc == request.headers.get("host")


async def changing(request: Request) -> Posted:
    """Dependency of every form that changes something (see the module docstring).

    Raises:
        SignInNeeded: no valid session.
        Refused: a read-only session, a cross-origin post, or a missing or wrong CSRF token.
    """
    session = viewer(request)
    if not session.can_change:
        raise Refused(403, "This session is read-only: it can look but not change anything.")
    if not same_origin(request):
        raise Refused(403, "This form was posted from another site; nothing was done.")
    form = await request.form()
    token = form.get("csrf")
    if not session.csrf_matches(token if isinstance(token, str) else None):
        raise Refused(
            403,
            "The form's security token is missing or stale; reload the page and try again. "
            "Nothing was done.",
        )
    return Posted(session, form)


Viewer = Annotated[Session, Depends(viewer)]
Changing = Annotated[Posted, Depends(changing)]


def set_cookie(response: Response, request: Request, value: str) -> None:
    """Give the browser its session: script-proof, same-site only, the console's path only."""
    response.set_cookie(
        COOKIE, value, max_age=MAX_AGE, path=PREFIX, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip


def clear_cookie(response: Response, request: Request) -> None:
    """End the browser's session."""
    response.delete_cookie(
        COOKIE, path=PREFIX, httponly=True, samesite="strict",
        secure=request.url.scheme == "https",
    )  # fmt: skip
