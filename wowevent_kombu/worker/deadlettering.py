"""A bus's dead letters: the failure middleware, the store it writes, where malformed entries go.

The store needs Redis (on RabbitMQ, the bus's store Redis): with another transport, such as
the in-memory test double, nothing is recorded by workers and :meth:`DeadLettering.store`
says why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from wowevent_kombu.brokers.base import Transport
from wowevent_kombu.core.errors import ConfigurationError
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.deadletters.store import DeadLetterStore
from wowevent_kombu.worker.failures import DeadLetterMiddleware


class DeadLettering:
    """One bus's dead-letter parts, made on first use.

    Args:
        enabled: Record failed deliveries (and malformed entries) at all.
        retention: Optional ``max_age`` (seconds) and ``max_records``, applied after each write.
        exchange: The bus's exchange (its keys derive from it).
        transport: Returns the bus's transport.
        settings: Returns the bus's settings.
        redrive_targets: Returns the subscriber names a re-drive may go to.
    """

    def __init__(
        self,
        *,
        enabled: bool,
        retention: Mapping[str, float | int | None] | None,
        exchange: str,
        transport: Callable[[], Transport],
        settings: Callable[[], Settings],
        redrive_targets: Callable[[], Iterable[str]],
    ) -> None:
        self._exchange = exchange
        self._transport = transport
        self._settings = settings
        self._redrive_targets = redrive_targets
        self._store: DeadLetterStore | None = None
        self.middleware: DeadLetterMiddleware | None = (
            DeadLetterMiddleware(self.worker_store, retention=retention) if enabled else None
        )
        """Writes the record of a final failure; ``None`` when dead-lettering is off."""

    def store(self) -> DeadLetterStore:
        """The dead-letter store: list, show, re-drive and purge.

        Raises:
            ConfigurationError: the bus's transport is not Redis.
        """
        if self._store is None:
            transport = self._transport()
            client = getattr(transport, "client", None)
            if client is None:
                raise ConfigurationError(
                    "the dead-letter store needs the Redis transport; this bus uses "
                    f"{type(transport).__name__}"
                )
            self._store = DeadLetterStore(
                client,
                self._exchange,
                known_subscribers=self._redrive_targets,
                send=transport.push_commands if self._settings().amqp else None,
            )
        return self._store

    def worker_store(self) -> DeadLetterStore | None:
        """The store workers write to; ``None`` (nothing recorded) without Redis."""
        if getattr(self._transport(), "client", None) is None:
            return None
        return self.store()

    def malformed_store(self) -> DeadLetterStore | None:
        """Where malformed entries of the subscriber queues go (``None``: nowhere)."""
        return None if self.middleware is None else self.worker_store()
