"""The guarded Redis transport under its stable path, for ``broker_transport`` settings.

``broker_transport = "wowevent_kombu.redistransport:Transport"`` keeps working; the code lives
in :mod:`wowevent_kombu.brokers.redis.transport`.
"""

from __future__ import annotations

from wowevent_kombu.brokers.redis.transport import SentinelTransport, Transport

__all__ = ["SentinelTransport", "Transport"]
