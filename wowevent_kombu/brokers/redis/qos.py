"""Kombu's Redis QoS for the guarded channel: no second unacked write for what the pop recorded."""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual

from wowevent_kombu.brokers import compat
from wowevent_kombu.brokers.redis.backport import restore_throttle


class AtomicQoS(kombu_redis.QoS):  # type: ignore[misc]
    """Kombu's Redis QoS, without the second unacked write for deliveries the pop recorded."""

    def append(self, message: Any, delivery_tag: str) -> None:
        if self.channel.recorded_by_pop(delivery_tag):
            virtual.QoS.append(self, message, delivery_tag)  # only the in-memory bookkeeping
        else:
            super().append(message, delivery_tag)

    def ack(self, delivery_tag: str) -> None:
        self.channel.forget(delivery_tag)
        virtual.QoS.ack(self, delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        if requeue:
            super().reject(delivery_tag, requeue=True)
        else:
            self.ack(delivery_tag)  # what Kombu's reject without requeue does

    def restore_visible(
        self, start: int = 0, num: int = 10, interval: int = compat.OLD_KOMBU_RESTORE_THROTTLE
    ) -> None:
        super().restore_visible(start, num, restore_throttle(self.channel, interval))
