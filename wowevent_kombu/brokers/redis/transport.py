"""The guarded Redis transports Celery workers are switched to: ``redis://``, ``rediss://`` and
``sentinel://`` on :class:`~wowevent_kombu.brokers.redis.channel.GuardedChannel`.

``broker_transport = "wowevent_kombu.brokers.redis.transport:Transport"`` (also reachable as
``wowevent_kombu.redistransport:Transport``) is what the bus's worker step sets.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

from wowevent_kombu.brokers.redis.backport import OLD_KOMBU_OPTIONS, restore_sooner
from wowevent_kombu.brokers.redis.channel import (
    BELL_QUEUES_OPTION,
    COMPRESSION_OPTION,
    INFLATE_LIMIT_OPTION,
    GuardedChannel,
)


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    """Kombu's Redis transport using :class:`GuardedChannel` (``redis://`` and ``rediss://``)."""

    Channel = GuardedChannel

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        restore_sooner(self, connection, loop)


class GuardedSentinelChannel(GuardedChannel, kombu_redis.SentinelChannel):  # type: ignore[misc]
    """:class:`GuardedChannel`'s parsing and atomic pops on Kombu's Sentinel channel."""

    # Both bases extend Kombu's option list; the first base's list alone would drop the other's.
    from_transport_options = (
        *kombu_redis.SentinelChannel.from_transport_options,
        BELL_QUEUES_OPTION,
        COMPRESSION_OPTION,
        INFLATE_LIMIT_OPTION,
        *OLD_KOMBU_OPTIONS,
    )


class SentinelTransport(kombu_redis.SentinelTransport):  # type: ignore[misc]
    """Kombu's Sentinel transport using :class:`GuardedSentinelChannel` (``sentinel://``)."""

    Channel = GuardedSentinelChannel

    def register_with_event_loop(self, connection: Any, loop: Any) -> None:
        super().register_with_event_loop(connection, loop)
        restore_sooner(self, connection, loop)
