"""wowevent_kombu: an event bus for Celery apps, on Kombu's Redis transport.

Every subscriber runs as its own Celery task; events are routed with AMQP topic semantics by the
publisher, logged and delivered in one Redis transaction.
"""

from __future__ import annotations

from .bus import EventBus
from .deadletter import Attempt, DeadLetter, DeadLetterFilter
from .deadletterstore import DeadLetterStore, Page
from .errors import (
    ConfigurationError,
    DeadLetterError,
    DeadLetterWriteError,
    EventEncodingError,
    EventTooLargeError,
    InvalidEventError,
    InvalidEventTypeError,
    InvalidFilterError,
    InvalidPatternError,
    InvalidSubscriberError,
    PublishError,
    Reject,
    UnknownDeadLetterError,
    UnknownSubscriberError,
    UnroutableEventError,
    WowEventError,
)
from .event import Event
from .failures import DeadLetterMiddleware
from .matcher import TopicMatcher
from .middleware import Middleware, SkipDelivery
from .retrypolicy import backoff_delays, exponential_retries
from .settings import Settings
from .subscriber import Subscriber, SubscriberTask

__all__ = [
    "Attempt",
    "ConfigurationError",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterFilter",
    "DeadLetterMiddleware",
    "DeadLetterStore",
    "DeadLetterWriteError",
    "Event",
    "EventBus",
    "EventEncodingError",
    "EventTooLargeError",
    "InvalidEventError",
    "InvalidEventTypeError",
    "InvalidFilterError",
    "InvalidPatternError",
    "InvalidSubscriberError",
    "Middleware",
    "Page",
    "PublishError",
    "Reject",
    "Settings",
    "SkipDelivery",
    "Subscriber",
    "SubscriberTask",
    "TopicMatcher",
    "UnknownDeadLetterError",
    "UnknownSubscriberError",
    "UnroutableEventError",
    "WowEventError",
    "backoff_delays",
    "exponential_retries",
]
__version__ = "0.1.0"
