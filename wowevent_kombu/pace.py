"""Replay speeds: parsing ``"instant"``, a pacing factor or a fixed rate, and the due times."""

from __future__ import annotations

import dataclasses
import re

from .errors import LogQueryError
from .eventlog import split_position

Speed = str | float
"""``"instant"``, a pacing factor (``1.0`` original pacing, ``10.0`` ten times faster) or a
fixed rate ``"<n>/s"``."""

_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*/\s*s$")


@dataclasses.dataclass(frozen=True)
class Pace:
    """A parsed speed: ``factor`` (original pacing divided by it) or ``rate`` (events/s)."""

    factor: float | None = None
    rate: float | None = None

    @property
    def instant(self) -> bool:
        """No pacing at all."""
        return self.factor is None and self.rate is None


def parse_speed(speed: Speed) -> Pace:
    """Parse ``speed``; :class:`LogQueryError` naming the accepted forms when malformed."""
    hint = "use 'instant', a factor like 1.0 or 10.0 (10x), or a rate like '500/s'"
    if isinstance(speed, bool):
        raise LogQueryError(f"speed {speed!r} is not a speed; {hint}")
    if isinstance(speed, int | float):
        factor = float(speed)
    elif isinstance(speed, str):
        text = speed.strip().lower()
        if text == "instant":
            return Pace()
        rate = _RATE.match(text)
        if rate:
            value = float(rate.group(1))
            if value <= 0:
                raise LogQueryError(f"speed {speed!r}: the rate must be positive; {hint}")
            return Pace(rate=value)
        try:
            factor = float(text.removesuffix("x"))
        except ValueError:
            raise LogQueryError(f"speed {speed!r} is not a speed; {hint}") from None
    else:
        raise LogQueryError(f"speed {speed!r} is not a speed; {hint}")
    if not factor > 0 or factor == float("inf"):
        raise LogQueryError(f"speed {speed!r}: the factor must be positive and finite; {hint}")
    return Pace(factor=factor)


class Clock:
    """When each delivered event is due under a pace (``None``: at once)."""

    def __init__(self, pace: Pace, began: float) -> None:
        self.pace = pace
        self.began = began
        self.sent = 0
        self.first_ms: int | None = None

    def due(self, position: str) -> float | None:
        """The monotonic time the delivery of the event at ``position`` is due."""
        if self.pace.rate is not None:
            self.sent += 1
            return self.began + (self.sent - 1) / self.pace.rate
        if self.pace.factor is None:
            return None
        ms = split_position(position)[0]
        if self.first_ms is None:
            self.first_ms = ms
        return self.began + (ms - self.first_ms) / 1000 / self.pace.factor
