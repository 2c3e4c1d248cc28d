"""wowevent_kombu: an event bus for Celery apps, on Kombu's Redis transport.

Every subscriber runs as its own Celery task; events are routed with AMQP topic semantics by the
publisher, logged and delivered in one Redis transaction.
"""

from __future__ import annotations

from .bus import EventBus
from .checkpoint import CheckpointMiddleware
from .compatibility import Change
from .deadletter import Attempt, DeadLetter, DeadLetterFilter
from .deadletterstore import DeadLetterStore, Page
from .errors import (
    ConfigurationError,
    DeadLetterError,
    DeadLetterWriteError,
    EventEncodingError,
    EventTooLargeError,
    EventValidationError,
    IncompatibleSchemaError,
    InvalidEventError,
    InvalidEventTypeError,
    InvalidFilterError,
    InvalidPatternError,
    InvalidSchemaError,
    InvalidSubscriberError,
    LogQueryError,
    PublishError,
    Reject,
    ReplayInterrupted,
    ReplicationError,
    SchemaConflictError,
    SchemaError,
    UnknownDeadLetterError,
    UnknownReplayError,
    UnknownSchemaError,
    UnknownSubscriberError,
    UnroutableEventError,
    WowEventError,
)
from .event import Event
from .eventlog import EventLog, LogEntry
from .failures import DeadLetterMiddleware
from .health import HealthRules
from .idempotency import IdempotencyMiddleware
from .matcher import TopicMatcher
from .metrics import BusMetrics, MetricsMiddleware
from .middleware import Middleware, SkipDelivery
from .registry import SchemaRecord, SchemaRegistry
from .replay import ReplayReport
from .retrypolicy import backoff_delays, exponential_retries
from .schema import EventSchema, Violation
from .settings import Settings
from .subscriber import Subscriber, SubscriberTask
from .telemetry import instrument
from .validation import SchemaValidation

__all__ = [
    "Attempt",
    "BusMetrics",
    "Change",
    "CheckpointMiddleware",
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
    "EventLog",
    "EventSchema",
    "EventTooLargeError",
    "EventValidationError",
    "HealthRules",
    "IdempotencyMiddleware",
    "IncompatibleSchemaError",
    "InvalidEventError",
    "InvalidEventTypeError",
    "InvalidFilterError",
    "InvalidPatternError",
    "InvalidSchemaError",
    "InvalidSubscriberError",
    "LogEntry",
    "LogQueryError",
    "MetricsMiddleware",
    "Middleware",
    "Page",
    "PublishError",
    "Reject",
    "ReplayInterrupted",
    "ReplayReport",
    "ReplicationError",
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
    "UnknownDeadLetterError",
    "UnknownReplayError",
    "UnknownSchemaError",
    "UnknownSubscriberError",
    "UnroutableEventError",
    "Violation",
    "WowEventError",
    "backoff_delays",
    "exponential_retries",
    "instrument",
]
__version__ = "0.1.0"
