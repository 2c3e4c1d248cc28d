"""wowevent_kombu: an event bus for Celery apps, on Kombu's Redis transport.

Every subscriber runs as its own Celery task; events are routed with AMQP topic semantics by the
publisher, logged and delivered in one Redis transaction.
"""

from __future__ import annotations

from wowevent_kombu.bus import EventBus
from wowevent_kombu.core.breaker import BreakerState, CircuitBreaker
from wowevent_kombu.core.errors import (
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
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.findings import Change, Violation
from wowevent_kombu.core.matcher import TopicMatcher
from wowevent_kombu.core.retrypolicy import backoff_delays, exponential_retries
from wowevent_kombu.core.settings import Settings
from wowevent_kombu.deadletters.record import Attempt, DeadLetter, DeadLetterFilter
from wowevent_kombu.deadletters.store import DeadLetterStore, Page
from wowevent_kombu.log.checkpoint import CheckpointMiddleware
from wowevent_kombu.log.eventlog import EventLog, LogEntry
from wowevent_kombu.log.idempotency import IdempotencyMiddleware
from wowevent_kombu.log.replay import ReplayReport
from wowevent_kombu.observability.health import HealthRules
from wowevent_kombu.observability.metrics import BusMetrics, MetricsMiddleware
from wowevent_kombu.observability.telemetry import instrument
from wowevent_kombu.observability.tracing import enable_tracing
from wowevent_kombu.schemas.record import SchemaRecord
from wowevent_kombu.schemas.registry import SchemaRegistry
from wowevent_kombu.schemas.schema import EventSchema
from wowevent_kombu.schemas.validation import SchemaValidation
from wowevent_kombu.worker.breakerstore import BreakerStore
from wowevent_kombu.worker.failures import DeadLetterMiddleware
from wowevent_kombu.worker.middleware import Middleware, SkipDelivery
from wowevent_kombu.worker.subscriber import Subscriber, SubscriberTask

__all__ = [
    "Attempt",
    "BreakerState",
    "BreakerStore",
    "BusMetrics",
    "Change",
    "CheckpointMiddleware",
    "CircuitBreaker",
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
    "enable_tracing",
    "exponential_retries",
    "instrument",
]
__version__ = "0.1.0"
