"""wowevent_kombu: an event bus for Celery apps, on Kombu's Redis transport.

Every subscriber runs as its own Celery task; events are routed with AMQP topic semantics by the
publisher, logged and delivered in one Redis transaction.
"""

from __future__ import annotations

from .bus import EventBus
from .checkpoint import CheckpointMiddleware
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
    LogQueryError,
    PublishError,
    Reject,
    ReplayInterrupted,
    UnknownDeadLetterError,
    UnknownReplayError,
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
from .replay import ReplayReport
from .retrypolicy import backoff_delays, exponential_retries
from .settings import Settings
from .subscriber import Subscriber, SubscriberTask
from .telemetry import instrument

__all__ = [
    "Attempt",
    "BusMetrics",
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
    "EventTooLargeError",
    "HealthRules",
    "IdempotencyMiddleware",
    "InvalidEventError",
    "InvalidEventTypeError",
    "InvalidFilterError",
    "InvalidPatternError",
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
    "Settings",
    "SkipDelivery",
    "Subscriber",
    "SubscriberTask",
    "TopicMatcher",
    "UnknownDeadLetterError",
    "UnknownReplayError",
    "UnknownSubscriberError",
    "UnroutableEventError",
    "WowEventError",
    "backoff_delays",
    "exponential_retries",
    "instrument",
]
__version__ = "0.1.0"
