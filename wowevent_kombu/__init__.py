"""wowevent_kombu: an event bus for Celery apps, on Kombu's Redis transport.

Every subscriber runs as its own Celery task; events are routed with AMQP topic semantics by the
publisher, logged and delivered in one Redis transaction.
"""

from __future__ import annotations

from .bus import EventBus
from .checkpoint import CheckpointMiddleware
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
    LogQueryError,
    PublishError,
    ReplayInterrupted,
    SchemaConflictError,
    SchemaError,
    UnknownReplayError,
    UnknownSchemaError,
    UnknownSubscriberError,
    UnroutableEventError,
    WowEventError,
)
from .event import Event
from .eventlog import EventLog, LogEntry
from .health import HealthRules
from .idempotency import IdempotencyMiddleware
from .matcher import TopicMatcher
from .metrics import BusMetrics, MetricsMiddleware
from .middleware import Middleware, SkipDelivery
from .registry import SchemaRecord, SchemaRegistry
from .replay import ReplayReport
from .schema import EventSchema, Violation
from .settings import Settings
from .subscriber import Subscriber, SubscriberTask
from .telemetry import instrument
from .validation import SchemaValidation

__all__ = [
    "BusMetrics",
    "Change",
    "CheckpointMiddleware",
    "ConfigurationError",
    "Event",
    "EventBus",
    "EventEncodingError",
    "EventLog",
    "EventSchema",
    "EventTooLargeError",
    "EventValidationError",
    "HealthRules",
    "IdempotencyMiddleware",
    "IncompatibleSchemaError",
    "InvalidEventError",
    "InvalidEventTypeError",
    "InvalidPatternError",
    "InvalidSchemaError",
    "InvalidSubscriberError",
    "LogEntry",
    "LogQueryError",
    "MetricsMiddleware",
    "Middleware",
    "PublishError",
    "ReplayInterrupted",
    "ReplayReport",
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
    "UnknownReplayError",
    "UnknownSchemaError",
    "UnknownSubscriberError",
    "UnroutableEventError",
    "Violation",
    "WowEventError",
    "instrument",
]
__version__ = "0.1.0"
