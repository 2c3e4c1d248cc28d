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
from .matcher import TopicMatcher
from .middleware import Middleware, SkipDelivery
from .settings import Settings
from .subscriber import Subscriber, SubscriberTask

__all__ = [
    "ConfigurationError",
    "Event",
    "EventBus",
    "EventEncodingError",
    "EventTooLargeError",
    "InvalidEventError",
    "InvalidEventTypeError",
    "InvalidPatternError",
    "InvalidSubscriberError",
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
]
__version__ = "0.1.0"
