"""Temporary queues (``wowevent tail``): a lease kept while their consumer runs, and reaping.

A consumer that stops normally, or on SIGINT, SIGTERM or SIGHUP, removes its binding, queue
and bell itself. One killed outright (SIGKILL, a lost host) cannot, so while it runs it keeps
a lease: a key with a time to live that it refreshes, with the same time to live set on its
queue and bell. When the consumer is gone the lease expires, the queue and bell expire with it
if nothing is pushed to them, and :func:`reap` (run by every new temporary consumer and by the
bus's workers) removes the binding, so publishers stop routing events there at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from wowevent_kombu.brokers.base import Transport
from wowevent_kombu.core import names

log = logging.getLogger(__name__)

LEASE_SECONDS = 60.0
"""How long a killed temporary consumer's queue, bell and binding outlive it, at most
(plus the reaping interval)."""

REAP_INTERVAL = 30.0
"""How often a worker looks for temporary queues whose lease expired."""


def hold(
    client: redis.Redis, exchange: str, queue: str, seconds: float, *, expire_lists: bool
) -> None:
    """Take or refresh ``queue``'s lease for ``seconds``; call it well within that interval.

    Args:
        client: The Redis of the binding table.
        exchange: The exchange the queue is bound on.
        queue: The temporary queue.
        seconds: The lease's time to live.
        expire_lists: Also give the queue and its bell that time to live (Redis broker).
    """
    ms = max(1, int(seconds * 1000))
    pipe = client.pipeline(transaction=True)
    pipe.sadd(names.temporary_queues_key(exchange), queue)
    pipe.set(names.lease_key(queue), "1", px=ms)
    if expire_lists:
        pipe.pexpire(queue, ms)
        pipe.pexpire(names.bell_key(queue), ms)
    pipe.execute()


def release(client: redis.Redis, exchange: str, queue: str) -> None:
    """Forget ``queue``'s lease once its binding and lists are removed."""
    pipe = client.pipeline(transaction=True)
    pipe.srem(names.temporary_queues_key(exchange), queue)
    pipe.delete(names.lease_key(queue))
    pipe.execute()


def remove(transport: Transport, client: redis.Redis, exchange: str, queue: str) -> None:
    """Unbind and delete a temporary queue with its bell, then drop its lease."""
    transport.unbind(queue)
    transport.delete_queue(queue)
    release(client, exchange, queue)


def stale(client: redis.Redis, exchange: str) -> list[str]:
    """The exchange's temporary queues whose lease has expired (their consumer is gone)."""
    members = sorted(
        m.decode() if isinstance(m, bytes) else str(m)
        for m in client.smembers(names.temporary_queues_key(exchange))
    )
    if not members:
        return []
    pipe = client.pipeline(transaction=False)
    for queue in members:
        pipe.exists(names.lease_key(queue))
    return [q for q, alive in zip(members, pipe.execute(), strict=True) if not alive]


def reap(transport: Transport, client: redis.Redis, exchange: str) -> Sequence[str]:
    """Remove every temporary queue whose consumer is gone; the queues removed."""
    doomed = stale(client, exchange)
    for queue in doomed:
        remove(transport, client, exchange, queue)
    if doomed:
        log.info("removed %d temporary queue(s) left by killed consumers: %s", len(doomed), doomed)
    return doomed
