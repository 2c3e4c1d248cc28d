"""Health rules and the window's quantile maths."""

from __future__ import annotations

import pytest

from wowevent_kombu import ConfigurationError, HealthRules
from wowevent_kombu.observability.health import judge
from wowevent_kombu.observability.window import WINDOW_BOUNDS, bucket_index, quantile

RULES = HealthRules(min_attempts=10, degraded_backlog_age=60, unhealthy_backlog_age=300)


@pytest.mark.parametrize(
    ("attempts", "rate", "backlog", "age", "consumers", "verdict"),
    [
        (100, 0.0, 0, None, 1, "healthy"),
        (100, 0.04, 0, None, 1, "healthy"),
        (100, 0.05, 0, None, 1, "degraded"),
        (100, 0.25, 0, None, 1, "unhealthy"),
        (9, 1.0, 0, None, 1, "healthy"),  # too few attempts to judge
        (0, None, 5, 59.0, 1, "healthy"),
        (0, None, 5, 60.0, 1, "degraded"),
        (0, None, 5, 300.0, 1, "unhealthy"),
        (0, None, 0, None, 0, "degraded"),  # idle and nobody consumes
        (0, None, 1, 1.0, 0, "unhealthy"),  # waiting and nobody consumes
        (100, 0.1, 5, 400.0, 1, "unhealthy"),  # the worst rule wins
    ],
)
def test_judge(
    attempts: int, rate: float | None, backlog: int, age: float | None, consumers: int, verdict: str
) -> None:
    got, reasons = judge(
        RULES, attempts=attempts, error_rate=rate, backlog=backlog, oldest_age=age,
        consumers=consumers,
    )  # fmt: skip
    assert got == verdict
    assert bool(reasons) == (verdict != "healthy")


def test_consumer_rule_can_be_switched_off() -> None:
    rules = HealthRules(require_consumer=False)
    assert judge(rules, attempts=0, error_rate=None, backlog=3, oldest_age=1, consumers=0)[0] == (
        "healthy"
    )


def test_rules_load_from_the_environment() -> None:
    env = {
        "WOWEVENT_HEALTH_WINDOW_SECONDS": "120",
        "WOWEVENT_HEALTH_BUCKET_SECONDS": "2",
        "WOWEVENT_HEALTH_REQUIRE_CONSUMER": "no",
    }
    rules = HealthRules.load(env, min_attempts=3)
    assert (rules.window_seconds, rules.bucket_seconds, rules.require_consumer) == (120, 2, False)
    assert rules.min_attempts == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"WOWEVENT_HEALTH_WINDOW_SECONDS": "soon"}, "WOWEVENT_HEALTH_WINDOW_SECONDS='soon'"),
        ({"WOWEVENT_HEALTH_REQUIRE_CONSUMER": "maybe"}, "not a valid bool"),
        ({"WOWEVENT_HEALTH_DEGRADED_ERROR_RATE": "0.9"}, "error rates"),
        ({"WOWEVENT_HEALTH_UNHEALTHY_BACKLOG_AGE": "1"}, "backlog ages"),
        ({"WOWEVENT_HEALTH_BUCKET_SECONDS": "0"}, "bucket_seconds"),
    ],
)
def test_bad_rules_are_refused_with_the_reason(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("(", r"\(")):
        HealthRules.load(env)


def test_bucket_index_places_values_under_their_bound() -> None:
    for index, bound in enumerate(WINDOW_BOUNDS):
        assert bucket_index(bound) == index
        if index:
            assert bucket_index(bound * 0.99) == index
    assert bucket_index(0) == 0
    assert bucket_index(10_000) == len(WINDOW_BOUNDS) - 1


def test_quantile_interpolates_within_a_bucket() -> None:
    counts = [0] * len(WINDOW_BOUNDS)
    assert quantile(counts, 0.5) is None
    for value in [0.001] * 90 + [0.1] * 10:
        counts[bucket_index(value)] += 1
    p50 = quantile(counts, 0.5)
    p99 = quantile(counts, 0.99)
    # Within one bucket (25% wide) of the true value.
    assert p50 is not None
    assert 0.001 / 1.25 <= p50 <= 0.001 * 1.25
    assert p99 is not None
    assert 0.1 / 1.25 <= p99 <= 0.1 * 1.25
