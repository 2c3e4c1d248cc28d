"""Log positions and the times that name them: parsing and checking ``since``/``until``.

A position is a Redis stream id, ``<milliseconds>-<sequence>``, the Redis server's clock when the
event was logged; times and ages given by a user become positions here.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from wowevent_kombu.core.errors import LogQueryError

_POSITION = re.compile(r"^([0-9]{1,20})(?:-([0-9]{1,20}))?\Z")
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?) *(s|m|h|d)\Z")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_SEQ = 18446744073709551615
"""The largest milliseconds or sequence of a Redis stream id (64 bits)."""

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
"""The oldest time a log position (milliseconds since the epoch) can name."""
LATEST = datetime.max.replace(tzinfo=UTC)
"""The latest time a ``datetime`` can hold (the end of the year 9999, UTC)."""


def split_position(position: str) -> tuple[int, int]:
    """``(milliseconds, sequence)`` of a log position; :class:`LogQueryError` if malformed."""
    match = _POSITION.match(position)
    if not match:
        raise LogQueryError(
            f"{position!r} is not a log position (expected '<milliseconds>-<sequence>', "
            "as shown by 'wowevent log read')"
        )
    return int(match.group(1)), int(match.group(2) or 0)


def position_text(position: tuple[int, int] | None) -> str | None:
    """A ``(milliseconds, sequence)`` pair as the stream writes it (``None`` stays ``None``)."""
    return None if position is None else f"{position[0]}-{position[1]}"


def position_pair(text: str | None) -> tuple[int, int] | None:
    """The inverse of :func:`position_text`; empty or ``None`` is ``None``."""
    return None if not text else split_position(text)


def position_time(position: str) -> datetime:
    """When the log recorded the event at ``position`` (Redis server clock, UTC)."""
    ms, _ = split_position(position)
    return datetime.fromtimestamp(ms / 1000, UTC)


def parse_when(text: str, *, now: datetime | None = None) -> datetime | str:
    """A CLI time argument: a log position, an ISO 8601 time, or an age like ``15m``/``2h``/``7d``.

    Naive ISO times are UTC. Times before 1970 (no log position names them) and after the year
    9999 are refused, and so are positions beyond Redis's 64-bit stream ids.

    Raises:
        LogQueryError: none of those forms, or out of range.
    """
    text = text.strip()
    position = _POSITION.match(text)
    if position:
        if max(int(position.group(1)), int(position.group(2) or 0)) > MAX_SEQ:
            raise LogQueryError(
                f"{shown(text)} is beyond the largest log position ({MAX_SEQ}-{MAX_SEQ})"
            )
        return text
    moment = age_before(text, now)
    if moment is not None:
        return moment
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise LogQueryError(
            f"'{shown(text)}' is not a time: give an ISO 8601 time (2024-05-01T12:00:00Z), an age "
            "(90s, 15m, 2h, 7d) or a log position (1714564800000-0)"
        ) from None
    return checked_time(moment, text)


def age_before(text: str, now: datetime | None = None) -> datetime | None:
    """The time an age like ``90s``/``15m``/``2h``/``7d`` names (``now`` minus it), else ``None``.

    Raises:
        LogQueryError: the age reaches back before 1970 (it would overflow the clock).
    """
    duration = _DURATION.match(text.strip())
    if not duration:
        return None
    now = now or datetime.now(UTC)
    seconds = float(duration.group(1)) * _UNITS[duration.group(2)]
    reach = (now - EARLIEST).total_seconds()
    if not seconds <= reach:  # also refuses inf, from a digit string too long for a float
        raise LogQueryError(
            f"{shown(text)} reaches back before 1970-01-01, the oldest time there is "
            f"(at most {int(reach // 86400)}d from now)"
        )
    return now - timedelta(seconds=seconds)


def checked_time(moment: datetime, text: str) -> datetime:
    """``moment`` made timezone-aware (naive is UTC) when it lies in 1970 to 9999, UTC.

    Raises:
        LogQueryError: before 1970-01-01T00:00Z or after 9999-12-31T23:59:59Z (``text`` is
            the value as given, for the message).
    """
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    seconds = aware.timestamp()  # an aware time's timestamp never overflows
    if seconds < 0:
        raise LogQueryError(f"{shown(text)} is before 1970-01-01T00:00Z, the oldest time there is")
    if seconds > LATEST.timestamp():
        raise LogQueryError(
            f"{shown(text)} is after 9999-12-31T23:59:59Z, the latest time there is"
        )
    return aware


def shown(text: str, limit: int = 40) -> str:
    """``text`` for an error message: control characters escaped, cut to about ``limit``."""
    escaped = repr(text)[1:-1]
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


def bound(value: datetime | str | None, *, end: bool) -> tuple[int, int] | None:
    """A ``since`` (``end=False``) or ``until`` as a position; ``None`` for no bound."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise LogQueryError("since/until must be timezone-aware (e.g. datetime.now(UTC))")
        ms = int(value.timestamp() * 1000)
        if ms < 0:
            raise LogQueryError(f"since/until {value.isoformat()} is before 1970, the log's start")
        return (ms, MAX_SEQ) if end else (ms, 0)
    if isinstance(value, str):
        ms, seq = split_position(value)
        if end and "-" not in value:
            seq = MAX_SEQ
        return ms, seq
    raise LogQueryError(f"since/until must be a datetime or a log position, got {value!r}")
