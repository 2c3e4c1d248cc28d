"""Hooks around every delivery a subscriber task runs: the extension point of the bus.

Dead-lettering, metrics, idempotency and checkpoints are middleware. Hooks run in registration
order before the handler and in reverse order after it. A hook that raises is logged and
skipped, unless its middleware is ``critical`` (a dead-letter write that fails must stop the
delivery from being acknowledged, so the event is redelivered rather than lost).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.delivery import DeliveryTask

log = logging.getLogger(__name__)


class SkipDelivery(Exception):
    """Raised by ``before_handle`` to acknowledge a delivery without running the handler."""


class Middleware:
    """Base class of delivery hooks; every hook is a no-op unless overridden.

    ``task`` is the subscriber's Celery task, seen as a
    :class:`~wowevent_kombu.worker.delivery.DeliveryTask` (``task.request`` holds retries, id,
    headers; ``task.wowevent_subscriber`` is the subscriber name).
    """

    critical: bool = False

    def before_handle(self, task: DeliveryTask, event: Event) -> None:
        """The event was decoded; the handler is about to run. May raise :class:`SkipDelivery`."""

    def after_handle(
        self, task: DeliveryTask, event: Event, *, result: Any, exc: BaseException | None
    ) -> None:
        """The handler returned ``result`` or raised ``exc`` (before Celery decides to retry)."""

    def on_success(self, task: DeliveryTask, event: Event | None, result: Any) -> None:
        """Celery recorded success."""

    def before_retry(
        self, task: DeliveryTask, event: Event | None, exc: BaseException | None, einfo: Any
    ) -> None:
        """A retry of this delivery is about to be sent; it does not exist yet.

        What a later attempt must find (the history of this one) belongs here: once the retry
        is sent, another worker may run it, and fail it for good, before ``on_retry`` runs.
        """

    def on_retry(
        self, task: DeliveryTask, event: Event | None, exc: BaseException, einfo: Any
    ) -> None:
        """Celery sent a retry of this delivery (to the subscriber's own queue)."""

    def on_failure(
        self, task: DeliveryTask, event: Event | None, exc: BaseException, einfo: Any
    ) -> None:
        """The delivery failed for good (retries exhausted or not retryable); not yet acked."""


def run_hooks(
    middleware: Sequence[Middleware], hook: str, *args: Any, reverse: bool = False, **kwargs: Any
) -> None:
    """Call ``hook`` on each middleware; non-critical failures are logged, not raised."""
    ordered = reversed(middleware) if reverse else middleware
    for item in ordered:
        try:
            getattr(item, hook)(*args, **kwargs)
        except SkipDelivery:
            raise
        except Exception:
            if item.critical:
                raise
            log.exception("middleware %s.%s failed", type(item).__name__, hook)
