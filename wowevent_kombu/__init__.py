"""wowevent_kombu: an event bus for Celery apps, on Kombu's Redis transport.

Every subscriber runs as its own Celery task; events are routed with AMQP topic semantics by the
publisher, logged and delivered in one Redis transaction.
"""

from __future__ import annotations

from .bus import EventBus
from .errors import (
    ConfigurationError,
    EventEncodingError,
    EventTooLargeError,
    InvalidEventError,
    InvalidEventTypeError,
    InvalidPatternError,
    InvalidSubscriberError,
    PublishError,
    UnknownSubscriberError,
    UnroutableEventError,
    WowEventError,
)
from .event import Event
from .health import HealthRules
from .matcher import TopicMatcher
from .metrics import BusMetrics, MetricsMiddleware
from .middleware import Middleware, SkipDelivery
from .settings import Settings
from .subscriber import Subscriber, SubscriberTask
from .telemetry import instrument

__all__ = [
    "BusMetrics",
    "ConfigurationError",
    "Event",
    "EventBus",
    "EventEncodingError",
    "EventTooLargeError",
    "HealthRules",
    "InvalidEventError",
    "InvalidEventTypeError",
    "InvalidPatternError",
    "InvalidSubscriberError",
    "MetricsMiddleware",
    "Middleware",
    "PublishError",
    "Settings",
    "SkipDelivery",
    "Subscriber",
    "SubscriberTask",
    "TopicMatcher",
    "UnknownSubscriberError",
    "UnroutableEventError",
    "WowEventError",
    "instrument",
]
__version__ = "0.1.0"
