"""Broker selection: the transport and the retry route for a bus's settings."""

from __future__ import annotations

from kombu import Exchange, Queue

from wowevent_kombu.brokers.amqp import topology as amqptopology
from wowevent_kombu.brokers.amqp.publisher import AmqpTransport
from wowevent_kombu.brokers.base import Transport
from wowevent_kombu.brokers.redis.connection import make_client
from wowevent_kombu.brokers.redis.publisher import RedisTransport
from wowevent_kombu.core.settings import Settings

_ANONYMOUS = Exchange("", type="direct")


def make_transport(settings: Settings) -> Transport:
    """The transport for ``settings``' broker (created without connecting)."""
    if settings.amqp:
        return AmqpTransport(make_client(settings), settings)
    return RedisTransport(make_client(settings), settings)


def pinned_route(settings: Settings, queue: str) -> Queue:
    """Where a retry of ``queue``'s subscriber is sent: that queue only, on any broker."""
    if settings.amqp:
        return amqptopology.pinned_route(settings.exchange, queue)
    return Queue(queue, exchange=_ANONYMOUS, routing_key=queue, no_declare=True)
