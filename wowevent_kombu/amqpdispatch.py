"""RabbitMQ: turning one routed event message into the right subscriber's task.

RabbitMQ's topic exchange copies an event message, unchanged, into every matching subscriber
queue, so the message cannot name the subscriber's task itself. It names the bus's *dispatch
task* instead (:func:`~wowevent_kombu.names.dispatch_task_name`), a Celery task that never
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

from . import names
from .amqptransport import EVENT_ID_HEADER

log = logging.getLogger(__name__)


class DispatchTask(Task):  # type: ignore[misc]
    """The routed-message task: its strategy renames each message to a subscriber task."""

    wowevent_queues: Callable[[], Mapping[str, str]] = dict

    def start_strategy(self, app: Celery, consumer: Any, **kwargs: Any) -> Any:
        subscribers_of = self.wowevent_queues
        tags: dict[str, str] = {}

        def queue_of(message: Any) -> str | None:
            tag = str((message.delivery_info or {}).get("consumer_tag"))
            if tag not in tags:
                # Kombu keeps queue name -> consumer tag for the queues it consumes.
                active = getattr(consumer.task_consumer, "_active_tags", {})
                tags.clear()
                tags.update({t: q for q, t in active.items()})
            return tags.get(tag)

        def dispatch(message: Any, *args: Any, **options: Any) -> Any:
            queue = queue_of(message)
            subscriber = subscribers_of().get(queue or "")
            headers = message.headers
            event_id = headers.get(EVENT_ID_HEADER)
            if subscriber is None or not isinstance(event_id, str):
                raise InvalidTaskError(
                    f"routed event message on queue {queue!r} names no subscriber of this "
                    f"worker (event id {event_id!r}); it is dropped"
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
