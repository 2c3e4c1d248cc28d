"""Retry policies: Celery options and the backoff arithmetic Celery applies to them."""

from __future__ import annotations

import json

import pytest
from celery import Celery

from wowevent_kombu import EventBus, InvalidSubscriberError, backoff_delays, exponential_retries
from wowevent_kombu.core.event import Event


@pytest.mark.parametrize(
    ("max_retries", "backoff", "cap", "delays"),
    [
        (5, 1, 16, [1, 2, 4, 8, 16]),
        (6, 1, 16, [1, 2, 4, 8, 16, 16]),
        (3, 2, 600, [2, 4, 8]),
        (2, 0.5, 600, [1, 2]),  # Celery rounds the factor up to 1
        (0, 1, 16, []),
    ],
)
def test_backoff_table(max_retries: int, backoff: float, cap: int, delays: list[int]) -> None:
    assert backoff_delays(max_retries, backoff, cap) == delays


def test_default_policy_is_celery_options() -> None:
    policy = exponential_retries()
    assert policy == {
        "autoretry_for": (Exception,),
        "max_retries": 5,
        "retry_backoff": 1,
        "retry_backoff_max": 16,
        "retry_jitter": False,
    }
    assert exponential_retries(jitter=True)["retry_jitter"] is True
    delays = backoff_delays(policy["max_retries"], policy["retry_backoff"], 16)
    assert delays == [1, 2, 4, 8, 16]
    for bad in ({"max_retries": -1}, {"backoff": 0}, {"backoff_max": 1.5}):
        with pytest.raises(InvalidSubscriberError):
            exponential_retries(**bad)  # type: ignore[arg-type]


def test_bus_wide_defaults_apply_and_a_subscriber_overrides_them(redis_url: str) -> None:
    bus = EventBus(
        Celery("d", broker=redis_url, set_as_current=False),
        exchange="tdefaults",
        subscriber_defaults=exponential_retries(),
    )

    @bus.subscriber("a.*", name="plain")
    def plain(event: Event) -> None: ...

    @bus.subscriber("a.*", name="patient", max_retries=9, retry_jitter=True)
    def patient(event: Event) -> None: ...

    assert (plain.max_retries, plain.retry_backoff, plain.retry_jitter) == (5, 1, False)
    assert (patient.max_retries, patient.retry_backoff, patient.retry_jitter) == (9, 1, True)
    assert json.dumps(exponential_retries(retry_for=(KeyError,))["max_retries"]) == "5"
