"""What the worker's bootsteps and the plain consumer loop need of the bus: a protocol.

:class:`~wowevent_kombu.bus.EventBus` passes itself in; typing against this view instead keeps
:mod:`wowevent_kombu.worker` from importing the façade that imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from kombu import Exchange

    from wowevent_kombu.brokers.base import Transport
    from wowevent_kombu.core.settings import Settings
    from wowevent_kombu.worker.subscriber import Subscriber


class BusView(Protocol):
    """The bus's attributes the worker side reads."""

    @property
    def exchange(self) -> str:
        """The bus's exchange: every queue and key name derives from it."""

    @property
    def settings(self) -> Settings:
        """The bus's settings (broker URL, broker kind, limits)."""

    @property
    def transport(self) -> Transport:
        """The broker transport: bindings and queues."""

    @property
    def kombu_exchange(self) -> Exchange:
        """The topic exchange subscriber queues are bound to (Redis)."""

    @property
    def subscribers(self) -> Mapping[str, Subscriber]:
        """Subscribers registered on this bus in this process, by name."""

    def declare(self) -> dict[str, tuple[str, ...]]:
        """Bind every registered subscriber's queue to its patterns."""

    def queues_to_subscribers(self) -> dict[str, str]:
        """``{queue: subscriber name}`` of the registered subscribers."""
