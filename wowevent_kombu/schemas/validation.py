"""Consume-time schema validation: a delivery middleware that refuses invalid events.

Publishers that bypass the library, or a schema that changed between publish and consume, can put
data on a queue that the handler does not expect. This middleware checks each event against the
schema version it names (the latest when it names none) before the handler runs. An invalid event
raises :class:`~wowevent_kombu.core.errors.EventValidationError`, an ``InvalidEventError``, which
subscriber tasks never retry: the delivery fails once, is logged with every violation, and the
failure hooks of later middleware (a dead-letter store, metrics) see the error and its
``violations``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from wowevent_kombu.core.errors import EventValidationError
from wowevent_kombu.schemas.schema import describe_violations
from wowevent_kombu.worker.middleware import Middleware

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.schemas.registry import SchemaRegistry
    from wowevent_kombu.worker.delivery import DeliveryTask

log = logging.getLogger(__name__)


class SchemaValidation(Middleware):
    """Validate each delivered event against its schema before the handler runs.

    Args:
        registry: Where the schemas are (shared with the publishers).
        require: Refuse events whose type has no schema at all.

    It is ``critical``: when the registry cannot be read (Redis down), the Redis error is raised
    rather than the handler run on unchecked data; the subscriber's ``autoretry_for`` decides
    whether that is retried.
    """

    critical = True

    def __init__(self, registry: SchemaRegistry, *, require: bool = False) -> None:
        self.registry = registry
        self.require = require

    def __repr__(self) -> str:
        return f"<SchemaValidation registry={self.registry!r} require={self.require}>"

    def before_handle(self, task: DeliveryTask, event: Event) -> None:
        try:
            self.registry.validate(event, require=self.require)
        except EventValidationError as exc:
            log.error(
                "subscriber %s refused event %s of type %s (schema version %s); not retried:\n%s",
                task.wowevent_subscriber,
                event.id,
                event.type,
                exc.schema_version or "none",
                describe_violations(list(exc.violations)) or f"  {exc}",
            )
            raise
