"""Retry history: the failed attempts of a delivery kept in Redis until it succeeds or dies.

The one owner of the history keys (:func:`wowevent_kombu.core.names.retry_history_key`): the
dead-letter middleware appends each failed attempt before its retry is sent, and reads them all
back into the record when the delivery fails for good. A retry may run in another worker (or
pool child), so the history cannot live in process memory.
"""

from __future__ import annotations

import json

import redis

from wowevent_kombu.core import names
from wowevent_kombu.deadletters.record import Attempt

HISTORY_TTL = 24 * 3600
"""Seconds a delivery's attempt history outlives its last retry. Each retry's countdown must
stay below the visibility timeout (checked at worker start), so a day is far beyond any gap."""


class RetryHistory:
    """The attempt histories of one exchange's deliveries, by task id.

    Args:
        client: Redis client of the bus.
        exchange: The bus's exchange (every key starts with it).
        ttl: Seconds a history is kept after its last append.
    """

    def __init__(self, client: redis.Redis, exchange: str, *, ttl: int = HISTORY_TTL) -> None:
        self._client = client
        self._exchange = exchange
        self._ttl = ttl

    def key(self, task_id: str) -> str:
        """The Redis key of ``task_id``'s history."""
        return names.retry_history_key(self._exchange, task_id)

    def append(self, task_id: str, attempt: Attempt) -> None:
        """Add ``attempt`` to ``task_id``'s history and renew its TTL, in one transaction.

        Raises:
            redis.RedisError: Redis refused it.
        """
        key = self.key(task_id)
        pipe = self._client.pipeline(transaction=True)
        pipe.rpush(key, json.dumps(attempt.to_dict()))
        pipe.expire(key, self._ttl)
        pipe.execute()

    def attempts(self, task_id: str) -> list[Attempt]:
        """``task_id``'s attempts so far, oldest first (empty when none was kept).

        Raises:
            redis.RedisError: Redis could not be read.
        """
        raws = self._client.lrange(self.key(task_id), 0, -1)
        return [Attempt.from_dict(json.loads(raw)) for raw in raws]

    def drop(self, task_id: str) -> None:
        """Forget ``task_id``'s history (its delivery succeeded).

        Raises:
            redis.RedisError: Redis refused it (the history then expires on its own).
        """
        self._client.delete(self.key(task_id))
