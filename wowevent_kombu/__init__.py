"""wowevent_kombu: an event bus for Celery apps, on Kombu's Redis transport.

Every subscriber runs as its own Celery task; events are routed with AMQP topic semantics by the
publisher, logged and delivered in one Redis transaction.
"""

from __future__ import annotations

from .bus import EventBus
from .checkpoint import CheckpointMiddleware
from .errors import (
    ConfigurationError,
    EventEncodingError,
    EventTooLargeError,
    InvalidEventError,
    InvalidEventTypeError,
    InvalidPatternError,
    InvalidSubscriberError,
    LogQueryError,
    PublishError,
    ReplayInterrupted,
    UnknownReplayError,
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
from .replay import ReplayReport
from .settings import Settings
from .subscriber import Subscriber, SubscriberTask
from .telemetry import instrument

__all__ = [
    "BusMetrics",
    "CheckpointMiddleware",
    "ConfigurationError",
    "Event",
    "EventBus",
    "EventEncodingError",
    "EventLog",
    "EventTooLargeError",
    "HealthRules",
    "IdempotencyMiddleware",
    "InvalidEventError",
    "InvalidEventTypeError",
    "InvalidPatternError",
    "InvalidSubscriberError",
    "LogEntry",
    "LogQueryError",
    "MetricsMiddleware",
    "Middleware",
    "PublishError",
    "ReplayInterrupted",
    "ReplayReport",
    "Settings",
    "SkipDelivery",
    "Subscriber",
    "SubscriberTask",
    "TopicMatcher",
    "UnknownReplayError",
    "UnknownSubscriberError",
    "UnroutableEventError",
    "WowEventError",
    "instrument",
]
__version__ = "0.1.0"
