"""Reading what an operator typed into a filter: times, ages, positions and lists of patterns.

Times are what the CLI takes (``wowevent_kombu.log.positions.parse_when``): an ISO 8601 time
(UTC when it names no zone), an age such as ``15m``, ``2h`` or ``7d``, or a log position.
A value that is none of those raises :class:`LogQueryError`, shown on the page.
"""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlencode

from wowevent_kombu.log.positions import parse_when, position_time

__all__ = ["as_epoch", "as_position", "patterns", "query", "text"]

MAX_FIELD = 255


def text(value: str | None, limit: int = MAX_FIELD) -> str | None:
    """A typed value trimmed; ``None`` when empty. Over-long values are cut at ``limit``."""
    if value is None:
        return None
    value = value.strip()[:limit]
    return value or None


def as_epoch(value: str | None) -> float | None:
    """A typed time as epoch seconds (a log position stands for the time it was logged).

    Raises:
        LogQueryError: not a time, an age or a position.
    """
    value = text(value)
    if value is None:
        return None
    moment = parse_when(value)
    if isinstance(moment, str):
        moment = position_time(moment)
    return moment.timestamp()


def as_position(value: str | None) -> str | None:
    """A typed time as a log position, the form replays and log reads take as text.

    A time becomes its millisecond (``until`` then takes that whole millisecond).

    Raises:
        LogQueryError: not a time, an age or a position.
    """
    value = text(value)
    if value is None:
        return None
    moment = parse_when(value)
    if isinstance(moment, datetime):
        return str(int(moment.timestamp() * 1000))
    return moment


def patterns(value: str | None) -> list[str]:
    """Event type patterns typed as a list separated by commas or spaces."""
    return [p for p in re.split(r"[,\s]+", value or "") if p][:50]


def query(**values: str | None) -> str:
    """A query string of the given values that are set (with a leading ``?``; empty if none)."""
    given = {k: v for k, v in values.items() if v}
    return "?" + urlencode(given) if given else ""
