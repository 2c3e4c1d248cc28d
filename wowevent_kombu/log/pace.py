"""Replay speeds: parsing ``"instant"``, a pacing factor or a fixed rate, and the due times."""

from __future__ import annotations

import dataclasses
import re

from wowevent_kombu.core.errors import LogQueryError
from wowevent_kombu.log.positions import shown, split_position

Speed = str | float
"""``"instant"``, a pacing factor (``1.0`` original pacing, ``10.0`` ten times faster) or a
fixed rate ``"<n>/s"``."""

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_RATE = re.compile(rf"^({_NUMBER}) */ *s\Z")
_FACTOR = re.compile(rf"^({_NUMBER}) *x?\Z")

MIN_FACTOR, MAX_FACTOR = 0.001, 1_000_000.0
"""Pacing factors allowed: a thousand times slower than the original, to a million faster."""
MIN_RATE, MAX_RATE = 0.001, 1_000_000.0
"""Fixed rates allowed, in events per second (one per ~17 minutes to a million a second)."""

HINT = "a speed is 'instant', a factor like 1.0 or 10x, or a rate like 500/s"


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
    """Parse ``speed``; :class:`LogQueryError` naming the accepted forms and limits otherwise.

    The limits keep every due time computable: a factor of ``1e-300`` would put the second
    event centuries away (and overflow the clock), ``nan`` would never be due.
    """
    if isinstance(speed, bool) or not isinstance(speed, str | int | float):
        raise LogQueryError(f"{speed!r} is not a speed; {HINT}")
    if not isinstance(speed, str):
        return Pace(factor=_within(float(speed), str(speed), MIN_FACTOR, MAX_FACTOR, "factor"))
    text = speed.strip().lower()
    if text == "instant":
        return Pace()
    rate = _RATE.match(text)
    if rate:
        return Pace(rate=_within(float(rate.group(1)), text, MIN_RATE, MAX_RATE, "rate"))
    factor = _FACTOR.match(text)
    if factor:
        return Pace(factor=_within(float(factor.group(1)), text, MIN_FACTOR, MAX_FACTOR, "factor"))
    raise LogQueryError(f"'{shown(speed)}' is not a speed; {HINT}")


def _within(value: float, text: str, low: float, high: float, kind: str) -> float:
    unit = "/s" if kind == "rate" else ""
    if value != value or value <= 0:  # nan, zero or negative
        problem = f"not a positive {kind}"
    elif value < low:
        problem = f"too slow: the slowest {kind} is {low:g}{unit}"
    elif value > high:  # inf included
        problem = f"too fast: the fastest {kind} is {high:.0f}{unit}"
    else:
        return value
    raise LogQueryError(f"{shown(text)} is {problem}; {HINT}")


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
