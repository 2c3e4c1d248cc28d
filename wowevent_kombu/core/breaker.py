"""The circuit breaker's settings and state as values: what a subscriber asks for, what Redis holds.

A breaker is off unless a subscriber (or ``subscriber_defaults``) sets ``circuit_breaker=``.
Closed, it counts attempts and failures over a sliding window; when at least ``min_attempts``
ran and the failed share reaches ``failure_rate``, it opens: every worker stops consuming the
subscriber's queue and the events wait there. After ``open_for`` seconds it is half-open:
``trials`` deliveries run; that many successes close it, one failure opens it again for twice
as long as the time before (up to ``max_open_for``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from wowevent_kombu.core.errors import ConfigurationError

CLOSED = "closed"
HALF_OPEN = "half_open"
OPEN = "open"
STATES = (CLOSED, HALF_OPEN, OPEN)
"""A breaker's states, in the order of their gauge values (0, 1, 2)."""

TASK_FLAG = "wowevent_circuit_breaker"
"""Task attribute holding the subscriber's :class:`CircuitBreaker` (absent: no breaker)."""


@dataclasses.dataclass(frozen=True)
class CircuitBreaker:
    """A subscriber's circuit breaker (``circuit_breaker=CircuitBreaker(...)``).

    Attributes:
        failure_rate: Share of failed attempts (0 < rate <= 1) over the window that opens it.
        min_attempts: Attempts the window must hold before the rate is judged.
        window: Seconds of attempts the rate is computed over.
        open_for: Seconds it stays open before the first trial deliveries.
        trials: Deliveries let through when half-open; that many successes close it.
        max_open_for: Longest open time the backoff reaches after failed trials.
    """

    failure_rate: float = 0.5
    min_attempts: int = 20
    window: float = 30.0
    open_for: float = 30.0
    trials: int = 3
    max_open_for: float = 600.0

    def __post_init__(self) -> None:
        problems = []
        if not 0 < self.failure_rate <= 1:
            problems.append(f"failure_rate={self.failure_rate!r} must be in (0, 1]")
        if not isinstance(self.min_attempts, int) or self.min_attempts < 1:
            problems.append(f"min_attempts={self.min_attempts!r} must be an integer >= 1")
        if not isinstance(self.trials, int) or self.trials < 1:
            problems.append(f"trials={self.trials!r} must be an integer >= 1")
        for name in ("window", "open_for", "max_open_for"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.1 <= value <= 86_400:
                problems.append(f"{name}={value!r} must be 0.1 to 86400 seconds")
        if not problems and self.max_open_for < self.open_for:
            problems.append("max_open_for must be at least open_for")
        if problems:
            raise ConfigurationError("CircuitBreaker: " + "; ".join(problems))

    def open_time(self, reopens: int) -> float:
        """Seconds the breaker stays open after ``reopens`` failed half-open trials in a row."""
        return open_time(self.open_for, self.max_open_for, reopens)

    @classmethod
    def coerce(cls, value: Any) -> CircuitBreaker | None:
        """The option's value as a breaker: an instance, a mapping of its fields, or off.

        Raises:
            ConfigurationError: anything else, or fields out of range.
        """
        if value is None or value is False:
            return None
        if isinstance(value, cls):
            return value
        if value is True:
            return cls()
        if isinstance(value, dict):
            try:
                return cls(**value)
            except TypeError as exc:
                raise ConfigurationError(f"circuit_breaker={value!r}: {exc}") from exc
        raise ConfigurationError(
            f"circuit_breaker={value!r}: give a CircuitBreaker(...), a dict of its fields or None"
        )


def open_time(open_for: float, max_open_for: float, reopens: int) -> float:
    """``open_for`` doubled per failed trial round, capped at ``max_open_for``."""
    if reopens <= 0:
        return float(open_for)
    exponent = min(reopens, 64)
    return float(min(max_open_for, open_for * math.pow(2, exponent)))


@dataclasses.dataclass(frozen=True)
class BreakerState:
    """One subscriber's breaker as Redis holds it.

    Attributes:
        subscriber: The subscriber's name.
        state: ``closed``, ``half_open`` or ``open``.
        changed_at: Epoch seconds of the last transition (``None`` if never).
        opened_at: Epoch seconds when it opened, kept through half-open rounds until it closes.
        until: Epoch seconds when an open breaker goes half-open (``None``: forced open).
        reopens: Failed trial rounds since it opened (the backoff exponent).
        forced: An operator forced it open; it stays open until closed by hand.
        reason: Why it last changed.
        transitions: Transitions into each state, counted since the key was made.
    """

    subscriber: str
    state: str = CLOSED
    changed_at: float | None = None
    opened_at: float | None = None
    until: float | None = None
    reopens: int = 0
    forced: bool = False
    reason: str = ""
    transitions: dict[str, int] = dataclasses.field(default_factory=dict)

    @property
    def gauge(self) -> int:
        """0 closed, 1 half-open, 2 open."""
        return STATES.index(self.state) if self.state in STATES else 0

    def open_seconds(self, now: float) -> float:
        """Seconds since it opened (through half-open rounds); 0 when closed."""
        if self.state == CLOSED or self.opened_at is None:
            return 0.0
        return max(0.0, now - self.opened_at)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by ``/status``, the admin API and ``wowevent breaker --json``."""
        return {
            "subscriber": self.subscriber,
            "state": self.state,
            "changed_at": self.changed_at,
            "opened_at": self.opened_at,
            "until": self.until,
            "reopens": self.reopens,
            "forced": self.forced,
            "reason": self.reason,
            "transitions": dict(self.transitions),
        }
