"""wowevent_kombu: an event bus for Celery apps, on Kombu's Redis transport.

Every subscriber runs as its own Celery task; events are routed with AMQP topic semantics by the
publisher, logged and delivered in one Redis transaction.
"""

from __future__ import annotations

from .bus import EventBus
from .compatibility import Change
from .errors import (
    ConfigurationError,
    EventEncodingError,
    EventTooLargeError,
    EventValidationError,
    IncompatibleSchemaError,
    InvalidEventError,
    InvalidEventTypeError,
    InvalidPatternError,
    InvalidSchemaError,
    InvalidSubscriberError,
    PublishError,
    SchemaConflictError,
    SchemaError,
    UnknownSchemaError,
    UnknownSubscriberError,
    UnroutableEventError,
    WowEventError,
)
from .event import Event
from .matcher import TopicMatcher
from .middleware import Middleware, SkipDelivery
from .registry import SchemaRecord, SchemaRegistry
from .schema import EventSchema, Violation
from .settings import Settings
from .subscriber import Subscriber, SubscriberTask
from .validation import SchemaValidation

__all__ = [
    "Change",
    "ConfigurationError",
    "Event",
    "EventBus",
    "EventEncodingError",
    "EventSchema",
    "EventTooLargeError",
    "EventValidationError",
    "IncompatibleSchemaError",
    "InvalidEventError",
    "InvalidEventTypeError",
    "InvalidPatternError",
    "InvalidSchemaError",
    "InvalidSubscriberError",
    "Middleware",
    "PublishError",
    "SchemaConflictError",
    "SchemaError",
    "SchemaRecord",
    "SchemaRegistry",
    "SchemaValidation",
    "Settings",
    "SkipDelivery",
    "Subscriber",
    "SubscriberTask",
    "TopicMatcher",
    "UnknownSchemaError",
    "UnknownSubscriberError",
    "UnroutableEventError",
    "Violation",
    "WowEventError",
]
__version__ = "0.1.0"
