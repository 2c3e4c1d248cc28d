"""What a delivery hook may use of its task, and the state one delivery's hooks share.

Middleware, metrics and the dead-letter bookkeeping see the subscriber's Celery task only
through :class:`DeliveryTask`, so none of them imports :mod:`wowevent_kombu.worker.subscriber`
(which imports them to run their hooks). What they tell each other about the delivery (the
decoded event, when it started, how it failed, whether it was dead-lettered) is one
:class:`DeliveryContext`, kept on Celery's request of that delivery by :func:`context_of`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.deadletters.record import Attempt

_ATTRIBUTE = "wowevent_delivery"


class DeliveryTask(Protocol):
    """The subscriber's Celery task, as its delivery hooks see it."""

    @property
    def request(self) -> Any:
        """Celery's request of the current delivery (id, retries, kwargs, headers)."""

    @property
    def wowevent_subscriber(self) -> str:
        """The subscriber's name."""


@dataclasses.dataclass
class DeliveryContext:
    """The state one delivery attempt's hooks pass each other.

    It lives as long as Celery's request of the attempt: in the process that ran the handler,
    and, for a lost pool child or a time limit, on the request the worker's main process pushes.

    Attributes:
        event: The event the handler's run decoded (the hooks that run after it reuse it).
        started_at: Epoch seconds when the dead-letter middleware saw the handler start.
        timer: Epoch and ``perf_counter`` seconds when the metrics saw the handler start.
        resent_at: Epoch seconds of the re-publish of a replayed or re-driven delivery.
        delivery_latency: Event time (or ``resent_at``) to handler start, in seconds.
        end_to_end: Event time (or ``resent_at``) to handler done, in seconds.
        failure: The attempt the handler's failure made, kept with its own traceback.
        dead_lettered: The final failure's dead-letter record was written.
        failure_handled: The worker's main process already ran the failure hooks.
        span: The tracing middleware's open delivery span (and its context token).
    """

    event: Event | None = None
    started_at: float | None = None
    timer: tuple[float, float] | None = None
    resent_at: float | None = None
    delivery_latency: float | None = None
    end_to_end: float | None = None
    failure: Attempt | None = None
    dead_lettered: bool = False
    failure_handled: bool = False
    span: Any = None


def context_of(request: Any) -> DeliveryContext:
    """The delivery context kept on Celery's ``request``, made on first use."""
    context = getattr(request, _ATTRIBUTE, None)
    if not isinstance(context, DeliveryContext):
        context = DeliveryContext()
        setattr(request, _ATTRIBUTE, context)
    return context
