"""Broker URLs: their scheme, their credentials hidden for display, moved where Kombu reads them.

Every URL shown (logs, ``repr``, status, CLI output) goes through :func:`redact_url` first.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote, unquote_plus, urlsplit, urlunsplit

from wowevent_kombu.core.errors import ConfigurationError

# ``scheme://``: what tells a URL from any other text (urlsplit takes "user:pw@host" for a URL
# of scheme "user", and raises on a malformed port or IPv6 address).
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://")
# Separators of query parameters and path segments; redaction looks at every piece between them.
_PIECES = re.compile(r"([/?#&;])")
# The same in free text (a request line in a log): whitespace and quotes end a value too.
_TEXT_PIECES = re.compile(r"([/?#&;\s\"'])")
_SECRET_NAMES = frozenset({"user", "username", "userid", "pass", "passwd", "pwd", "auth"})
_SECRET_WORDS = ("password", "passwd", "secret", "token", "credential")
_REDACTED = "***"
# What Kombu's parse_url passes besides the query, so a query parameter of the same name makes
# it fail with "dict() got multiple values for keyword argument".
_KOMBU_URL_KEYWORDS = frozenset({"transport", "hostname", "port", "userid", "virtual_host"})


def url_scheme(url: str) -> str:
    """The lower-cased scheme of ``url`` (of its first part, for ``a;b``), ``""`` if it has none.

    Never raises: a malformed host or port is for the client to refuse, with a redacted URL.
    """
    found = _SCHEME.match(url.strip())
    return found.group(1).lower() if found else ""


def redact_url(url: object) -> str:
    """``url`` with every password replaced by ``***`` (for logs, repr, status and CLI output).

    Hidden: the password of the userinfo (``user:***@``); query parameters (and path or
    fragment pieces) named like a credential (``password=``, ``username=``, ``token=``, ...,
    in any case, percent-encoded or repeated); everything before the last ``@`` when an ``@``
    comes after the host (a password holding an unescaped ``/``, ``?`` or ``#``); all of a text
    that is not a ``scheme://`` URL. Kombu's multi-host form (``sentinel://a;sentinel://b``) is
    redacted part by part. Host, port, database and ``ssl_*`` options stay visible.
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}, not a URL>"
    return ";".join(_redact_part(part) for part in url.split(";"))


def _redact_part(text: str) -> str:
    found = _SCHEME.match(text)
    if found is None:  # no telling what in it is a password
        return "<not a URL>" if text.strip() else text
    prefix, rest = found.group(0), text[found.end() :]
    at = rest.rfind("@")
    if at >= 0:
        authority_end = next((i for i, c in enumerate(rest) if c in "/?#"), len(rest))
        user, colon, _ = rest[:at].partition(":")
        if at > authority_end:  # no telling the userinfo from the rest: hide all of it
            prefix += f"{_REDACTED}@"
        else:
            prefix += f"{user}:{_REDACTED}@" if colon else f"{user}@"
        rest = rest[at + 1 :]
    return prefix + _redact_parameters(rest, _PIECES)


def redact_query(text: str) -> str:
    """``text`` with the value of every credential-named parameter replaced by ``***``.

    For what holds a path and query but no ``scheme://`` (an HTTP request target, a request
    line in a log); the names are those :func:`redact_url` hides.
    """
    return _redact_parameters(text, _TEXT_PIECES)


def _redact_parameters(text: str, separators: re.Pattern[str]) -> str:
    pieces = separators.split(text)
    for index, piece in enumerate(pieces):
        name, equals, _ = piece.partition("=")
        if equals and _secret_name(name):
            pieces[index] = f"{name}={_REDACTED}"
    return "".join(pieces)


def _secret_name(raw: str) -> bool:
    name = raw
    for _ in range(3):  # doubly encoded names too (%2570assword)
        name = unquote_plus(name)
    name = name.strip().lower()
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def credentials_in_userinfo(url: str) -> str:
    """``url`` with its ``password=`` and ``username=`` query parameters moved to the userinfo.

    redis-py reads credentials from the query string or the userinfo alike; Kombu's URL parser
    (hence every Celery worker) fails on them in the query string with ``dict() got multiple
    values for keyword argument 'password'``. Both read ``redis://user:password@host``, so the
    bus uses that form. Each part of a ``;``-separated URL is rewritten on its own.

    Raises:
        ConfigurationError: a credential given twice with different values, or a query
            parameter that no client reads as intended (``PASSWORD=``, ``userid=``, ...).
    """
    if ";" in url:
        return ";".join(credentials_in_userinfo(part) for part in url.split(";"))
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(f"bad URL {redact_url(url)}: {exc}") from None
    if not parts.query:
        return url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    user_raw, colon, password_raw = userinfo.partition(":")
    given: dict[str, list[str]] = {"username": [], "password": []}
    kept = []
    for piece in parts.query.split("&"):
        raw_name, _, raw_value = piece.partition("=")
        name = unquote_plus(raw_name)
        if name in given:
            if raw_value:  # a blank value is dropped by redis-py and Kombu alike
                given[name].append(unquote_plus(raw_value))
            continue
        if name.lower() in given or name in _KOMBU_URL_KEYWORDS:
            where = "redis://username:password@host:port/db"
            raise ConfigurationError(
                f"URL {redact_url(url)}: query parameter {name[:50]!r} is not read as intended "
                f"by redis-py and Kombu (a Celery worker fails on it); write credentials as {where}"
            )
        kept.append(piece)
    if not given["username"] and not given["password"]:
        return url
    current = {"username": unquote(user_raw) if at else "", "password": unquote(password_raw)}
    for name, values in given.items():
        if len(set(values)) > 1 or (values and current[name] and current[name] != values[0]):
            raise ConfigurationError(
                f"URL {redact_url(url)} gives the {name} more than once, with different values;"
                " give it once, in the userinfo: redis://username:password@host:port/db"
            )
        if values:
            current[name] = values[0]
    user = quote(current["username"], safe="") if given["username"] else user_raw
    password = quote(current["password"], safe="") if given["password"] else password_raw
    credentials = f"{user}:{password}" if given["password"] or colon else user
    netloc = f"{credentials}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, "&".join(kept), parts.fragment))


def sentinel_hosts(broker_url: str) -> list[tuple[str, int]]:
    """``(host, port)`` of each sentinel in Kombu's ``sentinel://a:26379;sentinel://b`` form.

    Raises:
        ConfigurationError: a part is not ``sentinel://host[:port]``.
    """
    hosts = []
    for part in broker_url.split(";"):
        try:
            parts = urlsplit(part.strip())
            port = parts.port or 26379
        except ValueError as exc:
            raise ConfigurationError(f"bad sentinel URL {redact_url(part)}: {exc}") from exc
        if parts.scheme != "sentinel" or not parts.hostname:
            raise ConfigurationError(
                f"bad sentinel URL {redact_url(part)!r} in {redact_url(broker_url)}: every "
                "';'-separated part must be sentinel://host[:port]"
            )
        hosts.append((parts.hostname, port))
    return hosts
