"""Bearer-token checks of the admin API, as FastAPI dependencies (documented in OpenAPI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from wowevent_kombu.web.auth import Role
from wowevent_kombu.web.context import context_of
from wowevent_kombu.web.errors import ApiError

__all__ = ["require"]

bearer = HTTPBearer(auto_error=False, description="The admin token, or the read-only token")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="wowevent"'}


def require(role: Role) -> Callable[..., Role]:
    """A dependency that lets the request through only with a token granting ``role``."""

    def check(request: Request, credentials: Credentials) -> Role:
        tokens = context_of(request).tokens
        if credentials is None or not credentials.credentials:
            raise ApiError(401, "this route needs 'Authorization: Bearer <token>'", CHALLENGE)
        granted = tokens.role_of(credentials.credentials)
        if granted is None:
            raise ApiError(403, "the bearer token is not valid", CHALLENGE)
        if granted < role:
            raise ApiError(403, "the read-only token cannot change anything; use the admin token")
        return granted

    return check


ReadAccess = Depends(require(Role.READ))
AdminAccess = Depends(require(Role.ADMIN))
