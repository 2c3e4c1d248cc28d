"""Retry history: appended before each retry, read back whole, dropped on success."""

import time

import redis

from wowevent_kombu.core import names
from wowevent_kombu.deadletters.history import RetryHistory
from wowevent_kombu.deadletters.record import Attempt


def attempt(number: int) -> Attempt:
    return Attempt(
        number=number, exception_type="ValueError", message="boom", traceback="",
        failed_at=time.time(), started_at=None,
    )  # fmt: skip


def test_attempts_come_back_in_order_under_the_exchange_key(
    redis_client: redis.Redis, exchange: str
) -> None:
    history = RetryHistory(redis_client, exchange, ttl=60)
    assert history.attempts("t1") == []
    history.append("t1", attempt(1))
    history.append("t1", attempt(2))
    assert [a.number for a in history.attempts("t1")] == [1, 2]
    key = names.retry_history_key(exchange, "t1")
    assert history.key("t1") == key
    assert 0 < redis_client.ttl(key) <= 60
    history.drop("t1")
    assert not redis_client.exists(key)
