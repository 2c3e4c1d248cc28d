"""Who may do what: the admin token, the read-only token, and the roles they grant.

Tokens are compared whole and in constant time (:func:`hmac.compare_digest` on their SHA-256
digests, so neither length nor a shared prefix shows in the timing): a prefix, an extension or a
case variant of a token is a different token. Both configured tokens are always compared, so
the time taken does not tell which one a guess came close to.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import hmac

from wowevent_kombu.core.errors import ConfigurationError

__all__ = ["Role", "Tokens"]

MIN_TOKEN_LENGTH = 16


class Role(enum.IntEnum):
    """What a signed-in caller may do; a higher role may do everything a lower one may."""

    READ = 1
    """Look at everything (dead letters with their payloads, the log, replays); change nothing."""
    ADMIN = 2
    """Also change things: retry, purge, publish, start and interrupt replays."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclasses.dataclass(frozen=True, repr=False)
class Tokens:
    """The configured tokens; with neither, every route that needs a token is switched off.

    Args:
        admin: Grants :attr:`Role.ADMIN`.
        read: Grants :attr:`Role.READ` (needs an admin token too: a console nobody can act in
            would hide its own dead letters from the people who could fix them).

    Raises:
        ConfigurationError: a token shorter than 16 characters, a read token without an admin
            token, or the two tokens equal.
    """

    admin: str | None = None
    read: str | None = None

    def __post_init__(self) -> None:
        for name in ("admin", "read"):
            value = getattr(self, name)
            if value is not None and len(value.strip()) < MIN_TOKEN_LENGTH:
                raise ConfigurationError(
                    f"the {name} token must be at least {MIN_TOKEN_LENGTH} characters "
                    f"(got {len(value.strip())}); generate one with "
                    "'python -c \"import secrets; print(secrets.token_urlsafe(32))\"'"
                )
        if self.read is not None and self.admin is None:
            raise ConfigurationError("a read-only token needs an admin token as well")
        if self.read is not None and self.read == self.admin:
            raise ConfigurationError("the read-only token must differ from the admin token")

    def __repr__(self) -> str:
        return f"Tokens(admin={'set' if self.admin else None}, read={'set' if self.read else None})"

    @property
    def enabled(self) -> bool:
        """Whether any token is configured (the admin API and the console exist only then)."""
        return self.admin is not None

    def role_of(self, given: str) -> Role | None:
        """The role ``given`` grants, or ``None`` when it matches no token."""
        probe = _digest(given)
        admin = hmac.compare_digest(probe, _digest(self.admin or "\0no admin token"))
        read = hmac.compare_digest(probe, _digest(self.read or "\0no read token"))
        if admin and self.admin is not None:
            return Role.ADMIN
        if read and self.read is not None:
            return Role.READ
        return None

    def fingerprint(self, role: Role) -> str:
        """A short digest of the token behind ``role``: a session dies when its token changes."""
        token = self.admin if role is Role.ADMIN else self.read
        return hashlib.sha256(b"wowevent-session\0" + (token or "").encode()).hexdigest()[:32]
