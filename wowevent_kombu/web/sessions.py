"""Console sign-in: a signed, expiring session cookie, and the CSRF token it carries.

The cookie holds the role, a fingerprint of the token that granted it (rotating a token ends
its sessions) and a random CSRF token; it is signed with the service's session secret
(:mod:`itsdangerous`), ``HttpOnly``, ``SameSite=Strict`` and scoped to the console's path.
Every form that changes something posts the CSRF token back; it is compared in constant time.
"""

from __future__ import annotations

import dataclasses
import hmac
import secrets

from itsdangerous import BadSignature, URLSafeTimedSerializer

from wowevent_kombu.web.auth import Role, Tokens

__all__ = ["COOKIE", "Session", "SessionSigner"]

COOKIE = "wowevent_session"
MAX_AGE = 8 * 3600
"""Seconds a console session lasts (a working shift); then the token is asked for again."""


@dataclasses.dataclass(frozen=True)
class Session:
    """A signed-in console user."""

    role: Role
    csrf: str

    @property
    def can_change(self) -> bool:
        """Whether this session may retry, purge and replay."""
        return self.role >= Role.ADMIN

    def csrf_matches(self, given: str | None) -> bool:
        """Whether a posted form carries this session's CSRF token."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


class SessionSigner:
    """Issues and reads session cookies for one service.

    Args:
        tokens: The configured tokens (a session is valid only while its token is unchanged).
        secret: Signing key; give every replica behind one address the same one. Random when
            ``None`` (sessions then end when the process restarts).
    """

    def __init__(self, tokens: Tokens, secret: str | None = None) -> None:
        self.tokens = tokens
        self._serializer = URLSafeTimedSerializer(
            secret or secrets.token_urlsafe(32), salt="wowevent-console-session"
        )

    def issue(self, role: Role) -> tuple[str, Session]:
        """A new session for ``role``: the cookie value and the session it encodes."""
        session = Session(role, secrets.token_urlsafe(24))
        value = self._serializer.dumps(
            {"role": int(role), "fp": self.tokens.fingerprint(role), "csrf": session.csrf}
        )
        return value, session

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; ``None`` when absent, forged, expired or revoked."""
        if not cookie or len(cookie) > 4096:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=MAX_AGE)
            role = Role(int(data["role"]))
            fingerprint, csrf = str(data["fp"]), str(data["csrf"])
        except (BadSignature, KeyError, TypeError, ValueError):
            return None
        if not hmac.compare_digest(fingerprint, self.tokens.fingerprint(role)):
            return None
        if role is Role.READ and self.tokens.read is None:
            return None
        return Session(role, csrf)
