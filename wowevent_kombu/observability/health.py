"""Subscriber health: ``healthy`` / ``degraded`` / ``unhealthy`` from documented rules.

A subscriber is judged on three things (thresholds in :class:`HealthRules`):

1. Error rate over the window: attempts that did not succeed (retried, failed, dead-lettered,
   rejected) divided by all attempts, once at least ``min_attempts`` ended in the window.
2. Backlog age: how long the oldest event waiting in its queue has waited.
3. Consumers: whether any live worker (heartbeat of an instrumented worker) consumes its queue.
   With none, it is ``unhealthy`` when events are waiting and ``degraded`` when idle.

The worst verdict wins; every rule that fired is named in the reasons.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping

from wowevent_kombu.core.errors import ConfigurationError
from wowevent_kombu.core.settings import ENV_PREFIX

HEALTHY = "healthy"
DEGRADED = "degraded"
UNHEALTHY = "unhealthy"
STATES = (HEALTHY, DEGRADED, UNHEALTHY)
_RANK = {state: rank for rank, state in enumerate(STATES)}


@dataclasses.dataclass(frozen=True, kw_only=True)
class HealthRules:
    """Thresholds of the health verdict and the window it is judged over.

    Every field can be set from the environment as ``WOWEVENT_HEALTH_<FIELD>`` (upper case),
    e.g. ``WOWEVENT_HEALTH_WINDOW_SECONDS=120``.

    Attributes:
        window_seconds: The recent window that error rate, throughput and latency cover.
        bucket_seconds: Width of the time buckets the workers write; workers and readers must
            agree (both read the same variable).
        min_attempts: Fewer attempts than this in the window never judge the error rate.
        degraded_error_rate: Error rate from which a subscriber is degraded.
        unhealthy_error_rate: Error rate from which it is unhealthy.
        degraded_backlog_age: Seconds the oldest waiting event may wait before degraded.
        unhealthy_backlog_age: Seconds before unhealthy.
        require_consumer: Apply the consumer rule.
        heartbeat_seconds: How often workers write their heartbeat; one missed three times over
            counts the worker as gone.
    """

    window_seconds: float = 60.0
    bucket_seconds: int = 5
    min_attempts: int = 10
    degraded_error_rate: float = 0.05
    unhealthy_error_rate: float = 0.25
    degraded_backlog_age: float = 60.0
    unhealthy_backlog_age: float = 300.0
    require_consumer: bool = True
    heartbeat_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.window_seconds <= 0 or self.bucket_seconds < 1 or self.heartbeat_seconds <= 0:
            raise ConfigurationError(
                "health window_seconds and heartbeat_seconds must be positive and "
                f"bucket_seconds at least 1, got {self!r}"
            )
        if not 0 <= self.degraded_error_rate <= self.unhealthy_error_rate <= 1:
            raise ConfigurationError(
                "health error rates must satisfy 0 <= degraded_error_rate <= "
                f"unhealthy_error_rate <= 1, got {self.degraded_error_rate} and "
                f"{self.unhealthy_error_rate}"
            )
        if not 0 <= self.degraded_backlog_age <= self.unhealthy_backlog_age:
            raise ConfigurationError(
                "health backlog ages must satisfy 0 <= degraded_backlog_age <= "
                f"unhealthy_backlog_age, got {self.degraded_backlog_age} and "
                f"{self.unhealthy_backlog_age}"
            )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> HealthRules:
        """Read ``WOWEVENT_HEALTH_*`` variables; explicit ``overrides`` (not ``None``) win.

        Raises:
            ConfigurationError: a variable does not parse or the thresholds are inconsistent.
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for field in dataclasses.fields(cls):
            key = f"{ENV_PREFIX}HEALTH_{field.name.upper()}"
            if key in env:
                values[field.name] = _parse(key, env[key], str(field.type))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


def _parse(key: str, raw: str, kind: str) -> object:
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(raw)
            return lowered in ("1", "true", "yes")
        if kind == "int":
            return int(raw)
        return float(raw)
    except ValueError as exc:
        raise ConfigurationError(f"{key}={raw!r} is not a valid {kind}") from exc


def judge(
    rules: HealthRules,
    *,
    attempts: int,
    error_rate: float | None,
    backlog: int,
    oldest_age: float | None,
    consumers: int,
) -> tuple[str, list[str]]:
    """The verdict for one subscriber and the reasons for it (empty when healthy)."""
    verdict = HEALTHY
    reasons: list[str] = []

    def worsen(state: str, reason: str) -> None:
        nonlocal verdict
        reasons.append(reason)
        if _RANK[state] > _RANK[verdict]:
            verdict = state

    if error_rate is not None and attempts >= rules.min_attempts:
        if error_rate >= rules.unhealthy_error_rate:
            worsen(UNHEALTHY, f"error rate {error_rate:.0%} >= {rules.unhealthy_error_rate:.0%}")
        elif error_rate >= rules.degraded_error_rate:
            worsen(DEGRADED, f"error rate {error_rate:.0%} >= {rules.degraded_error_rate:.0%}")
    if oldest_age is not None and backlog:
        if oldest_age >= rules.unhealthy_backlog_age:
            worsen(UNHEALTHY, f"oldest waiting event is {oldest_age:.0f} s old")
        elif oldest_age >= rules.degraded_backlog_age:
            worsen(DEGRADED, f"oldest waiting event is {oldest_age:.0f} s old")
    if rules.require_consumer and consumers == 0:
        if backlog:
            worsen(UNHEALTHY, f"no live worker consumes its queue and {backlog} event(s) wait")
        else:
            worsen(DEGRADED, "no live worker consumes its queue")
    return verdict, reasons
