"""``await bus.apublish(...)``: the bus's publish path for asyncio code, one sender per loop.

Events are built, validated, encoded and size-checked exactly as by ``bus.publish`` (same
errors, same metrics); only the broker call is awaited. On Redis it goes through
:class:`~wowevent_kombu.brokers.redis.apublisher.AsyncRedisTransport`, one per event loop (a
``redis.asyncio`` connection belongs to the loop that made it), created on first use and
closed by ``await bus.aclose()``. Where no native async path exists (RabbitMQ, Sentinel, the
in-memory test double), the blocking publish runs in the loop's default thread pool, so the
loop is still never blocked.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable

from wowevent_kombu.brokers.base import Transport
from wowevent_kombu.brokers.redis.apublisher import AsyncRedisTransport
from wowevent_kombu.brokers.redis.connection import make_async_client
from wowevent_kombu.brokers.redis.publisher import RedisTransport
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.publisher import Publisher

__all__ = ["AsyncPublishing"]


class AsyncPublishing:
    """The async publish path of one bus (``bus.apublish`` / ``bus.apublish_many``).

    Args:
        publisher: The bus's publish path (building, validation, metrics).
        settings: Returns the bus settings.
        transport: Returns the bus's blocking transport (tells which broker it is).
    """

    def __init__(
        self,
        publisher: Publisher,
        settings: Callable[[], Settings],
        transport: Callable[[], Transport],
    ) -> None:
        self._publisher = publisher
        self._settings = settings
        self._transport = transport
        self._per_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncRedisTransport | None
        ] = weakref.WeakKeyDictionary()

    def _for_loop(self) -> AsyncRedisTransport | None:
        loop = asyncio.get_running_loop()
        if loop not in self._per_loop:
            native = None
            if isinstance(self._transport(), RedisTransport):
                client = make_async_client(self._settings())
                if client is not None:
                    native = AsyncRedisTransport(client, self._settings())
            self._per_loop[loop] = native
        return self._per_loop[loop]

    async def publish_many(self, events: Iterable[Event], *, mandatory: bool) -> list[Event]:
        """Validate every event, then log and deliver them all in one awaited broker call."""
        native = self._for_loop()
        if native is not None:
            return await self._publisher.apublish_many(
                events, mandatory=mandatory, send=native.send
            )
        chosen = list(events)
        return await asyncio.to_thread(self._publisher.publish_many, chosen, mandatory=mandatory)

    async def aclose(self) -> None:
        """Close the current loop's connections (other loops close theirs when they end)."""
        loop = asyncio.get_running_loop()
        native = self._per_loop.pop(loop, None)
        if native is not None:
            await native.aclose()
