"""Retry policies as plain Celery task options, and the backoff arithmetic Celery applies to them.

A policy is nothing but ``autoretry_for`` / ``max_retries`` / ``retry_backoff`` /
``retry_backoff_max`` / ``retry_jitter`` with Celery's meaning, so a subscriber can take it
whole (``EventBus(subscriber_defaults=exponential_retries())``) or override any one option.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wowevent_kombu.core.errors import InvalidSubscriberError


def exponential_retries(
    *,
    max_retries: int = 5,
    backoff: int = 1,
    backoff_max: int = 16,
    jitter: bool = False,
    retry_for: Sequence[type[BaseException]] = (Exception,),
) -> dict[str, Any]:
    """Celery options for exponential retries: by default 1 s, 2 s, 4 s, 8 s, 16 s, then dead.

    Args:
        max_retries: Retries after the first attempt; the delivery is dead-lettered after
            ``max_retries + 1`` failed attempts.
        backoff: First delay in whole seconds (Celery rounds ``retry_backoff`` to an integer of
            at least 1); each retry doubles it.
        backoff_max: Cap on one delay in whole seconds.
        jitter: Celery's full jitter: each delay is drawn uniformly from 0 to the computed one.
            Spreads a burst of failures, at the cost of predictable timing.
        retry_for: Exceptions that trigger a retry. ``InvalidEventError``, ``Reject`` and the
            subscriber's ``dont_autoretry_for`` are never retried whatever this says.

    Raises:
        InvalidSubscriberError: a negative count or a delay below one second.
    """
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise InvalidSubscriberError(f"max_retries must be an integer >= 0, got {max_retries!r}")
    for name, value in (("backoff", backoff), ("backoff_max", backoff_max)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidSubscriberError(
                f"{name} must be whole seconds >= 1 (Celery rounds it to an integer), got {value!r}"
            )
    return {
        "autoretry_for": tuple(retry_for),
        "max_retries": max_retries,
        "retry_backoff": backoff,
        "retry_backoff_max": backoff_max,
        "retry_jitter": jitter,
    }


def backoff_delays(max_retries: int, backoff: float, backoff_max: int) -> list[int]:
    """The countdowns Celery's ``autoretry_for`` uses, without jitter, one per retry.

    Mirrors ``celery.app.autoretry``: the factor is ``int(max(1.0, retry_backoff))`` and retry
    ``n`` (counting from 0) waits ``min(retry_backoff_max, factor * 2**n)`` seconds.
    """
    factor = int(max(1.0, backoff))
    return [min(backoff_max, factor * 2**n) for n in range(max_retries)]
