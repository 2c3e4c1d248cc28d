"""RabbitMQ: turning one routed event message into the right subscriber's task.

RabbitMQ's topic exchange copies an event message, unchanged, into every matching subscriber
queue, so the message cannot name the subscriber's task itself. It names the bus's *dispatch
task* instead (:func:`~wowevent_kombu.core.names.dispatch_task_name`), a Celery task that never
runs: its strategy looks up the queue the message arrived on (from the consumer tag of the
delivery), renames the message to that subscriber's task with the subscriber's own task id,
and hands it to that task's strategy. From there on it is an ordinary delivery of the
subscriber's task: Flower, ``celery inspect``, rate limits, retries and acks all see the
subscriber's name.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from celery import Celery, Task
from celery.exceptions import InvalidTaskError

from wowevent_kombu.brokers.amqp.publisher import EVENT_ID_HEADER
from wowevent_kombu.core import names

log = logging.getLogger(__name__)


class ConsumedQueues:
    """The queue a delivery arrived on, from its consumer tag (RabbitMQ names no queue).

    Kombu's consumer keeps queue name -> consumer tag for the queues it consumes; the inverse
    is cached and rebuilt when a tag is not in it (after a reconnect, tags are new).
    """

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self._tags: dict[str, str] = {}

    def of(self, message: Any) -> str | None:
        """The queue ``message`` was delivered from, or ``None`` when it is not known."""
        tag = (getattr(message, "delivery_info", None) or {}).get("consumer_tag")
        if tag is None:
            return None
        tag = str(tag)
        if tag not in self._tags:
            task_consumer = getattr(self._consumer, "task_consumer", None)
            active = getattr(task_consumer, "_active_tags", None) or {}
            self._tags = {str(t): q for q, t in active.items()}
        return self._tags.get(tag)


class DispatchTask(Task):  # type: ignore[misc]
    """The routed-message task: its strategy renames each message to a subscriber task."""

    wowevent_queues: Callable[[], Mapping[str, str]] = dict

    def start_strategy(self, app: Celery, consumer: Any, **kwargs: Any) -> Any:
        subscribers_of = self.wowevent_queues
        queues = ConsumedQueues(consumer)

        def dispatch(message: Any, *args: Any, **options: Any) -> Any:
            queue = queues.of(message)
            subscriber = subscribers_of().get(queue or "")
            headers = message.headers
            event_id = headers.get(EVENT_ID_HEADER)
            if subscriber is None:
                raise InvalidTaskError(
                    f"routed event message on queue {queue!r}, which is no subscriber queue "
                    "of this worker; it is dropped"
                )
            if not isinstance(event_id, str) or not event_id:
                raise InvalidTaskError(
                    f"routed message on queue {queue!r} carries no {EVENT_ID_HEADER!r} "
                    "header: it was not published by this bus; it is dropped"
                )
            task = names.task_name(subscriber)
            task_id = names.task_id(event_id, subscriber)
            headers["task"] = task
            headers["id"] = headers["root_id"] = task_id
            message.properties["correlation_id"] = task_id
            return consumer.strategies[task](message, *args, **options)

        return dispatch

    def run(self, *args: Any, **kwargs: Any) -> Any:
        raise InvalidTaskError(
            f"{self.name} only renames routed messages in the worker; it is never called"
        )


def register_dispatch_task(
    app: Celery, exchange: str, queues_to_subscribers: Callable[[], Mapping[str, str]]
) -> None:
    """Register the dispatch task of ``exchange`` on ``app`` (once)."""
    name = names.dispatch_task_name(exchange)
    if name in app.tasks:
        return
    task = type(
        "Dispatch",
        (DispatchTask,),
        {
            "name": name,
            "wowevent_queues": staticmethod(queues_to_subscribers),
            "ignore_result": True,
            "__module__": __name__,
        },
    )
    app.register_task(task())
