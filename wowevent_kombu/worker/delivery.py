"""What a delivery hook may use of the subscriber task it runs for: a leaf that hooks depend on.

Middleware, metrics and the dead-letter bookkeeping see the subscriber's Celery task only
through :class:`DeliveryTask`, so none of them imports :mod:`wowevent_kombu.worker.subscriber`
(which imports them to run their hooks).
"""

from __future__ import annotations

from typing import Any, Protocol


class DeliveryTask(Protocol):
    """The subscriber's Celery task, as its delivery hooks see it."""

    @property
    def request(self) -> Any:
        """Celery's request of the current delivery (id, retries, kwargs, headers)."""

    @property
    def wowevent_subscriber(self) -> str:
        """The subscriber's name."""
