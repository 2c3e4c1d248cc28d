"""Subscribers: a handler, its patterns and its own Celery task, queue and retry pinning."""

from __future__ import annotations

import dataclasses
import inspect
import math
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from celery import Celery, Task
from celery.exceptions import InvalidTaskError
from kombu import Exchange, Queue, binding
from kombu.exceptions import ContentDisallowed

from wowevent_kombu.core import names
from wowevent_kombu.core.errors import (
    DeadLetterWriteError,
    InvalidEventError,
    InvalidPatternError,
    InvalidSubscriberError,
    Reject,
)
from wowevent_kombu.core.event import Event
from wowevent_kombu.core.matcher import validate_pattern
from wowevent_kombu.core.nesting import ENVELOPE_LEVELS, MAX_DEPTH, depth_exceeds, text_may_exceed
from wowevent_kombu.core.wire import EVENT_KWARG, REPLAY_HEADER
from wowevent_kombu.worker.breaker import BreakerOpen
from wowevent_kombu.worker.coroutines import run_coroutine
from wowevent_kombu.worker.delivery import context_of
from wowevent_kombu.worker.middleware import Middleware, SkipDelivery, run_hooks
from wowevent_kombu.worker.request import SubscriberRequest

Handler = Callable[..., Any]

SUBSCRIBER_DEFAULTS: Mapping[str, Any] = {
    "acks_late": True,
    "retry_on_worker_lost": True,
    "ignore_result": True,
    "serializer": "json",
}
"""Where subscribers differ from Celery's task defaults: a delivery is acknowledged only after
the handler ran, and a killed pool child counts as a retry instead of losing the event."""

# Options that the bus itself owns and a caller may not override.
_RESERVED = frozenset({"name", "base", "queue", "exchange", "routing_key", "shared", "lazy"})
_ANONYMOUS = Exchange("", type="direct")
JSON_CONTENT_TYPE = "application/json"


class SubscriberTask(Task):  # type: ignore[misc]
    """Base class of every subscriber's Celery task.

    Celery re-sends a retry to the exchange the delivery came from; for a topic publish that
    would deliver one subscriber's retry to every subscriber. Deliveries from this bus come
    through the anonymous exchange, and retries are pinned to the subscriber's own queue here,
    so retries, redeliveries and re-drives stay with the subscriber that needs them.
    """

    Request = SubscriberRequest
    wowevent_queue: str = ""
    wowevent_pinned_route: Callable[[str], Queue] | None = None
    """Where a retry goes: the anonymous exchange on Redis; the bus sets the route for
    brokers that need another (RabbitMQ: the pinned exchange)."""
    wowevent_subscriber: str = ""
    wowevent_middleware: Sequence[Middleware] = ()

    def wowevent_event(self, kwargs: Mapping[str, Any] | None) -> Event | None:
        """The delivery's event, or ``None`` when the message did not carry a valid one.

        The handler's run decoded it already and left it on the request; it is decoded again
        only where that run did not happen in this process (a lost pool child, a time limit).
        """
        cached = context_of(self.request).event
        if cached is not None:
            return cached
        try:
            replayed = bool(getattr(self.request, REPLAY_HEADER, False))
            return Event.from_cloudevent((kwargs or {})[EVENT_KWARG], replayed=replayed)
        except (InvalidEventError, KeyError, TypeError):
            return None

    def start_strategy(self, app: Celery, consumer: Any, **kwargs: Any) -> Any:
        """Celery's strategy for this task, refusing foreign content and malformed bodies first.

        A content type other than JSON raises ``ContentDisallowed`` before the body is decoded, so a
        pickled body is never unpickled; a body that is not ``[args, {"event": {...}}, embed]``, or
        whose event nests deeper than publish allows, raises ``InvalidTaskError`` (Celery would
        otherwise fail to unpack it, or the prefork pool to pickle it, in the worker's main process
        and stop the worker). Celery then reports the message as invalid and drops it, after
        :mod:`wowevent_kombu.worker.malformed` has dead-lettered it.
        """
        strategy = super().start_strategy(app, consumer, **kwargs)
        subscriber = self.wowevent_subscriber

        def json_only(message: Any, *args: Any, **options: Any) -> Any:
            content_type = getattr(message, "content_type", None)
            if content_type != JSON_CONTENT_TYPE:
                raise ContentDisallowed(
                    f"subscriber {subscriber!r} accepts {JSON_CONTENT_TYPE} only, "
                    f"got content type {content_type!r}"
                )
            problem = body_problem(message.payload)  # decoded once; Celery reuses it
            if problem is None and text_may_exceed(message.body, _BODY_DEPTH):
                problem = depth_problem(message.payload)
            if problem is not None:
                raise InvalidTaskError(f"subscriber {subscriber!r}: {problem}")
            return strategy(message, *args, **options)

        return json_only

    def on_success(self, retval: Any, task_id: str, args: Any, kwargs: Any) -> None:
        if not self.wowevent_middleware:
            return
        run_hooks(
            self.wowevent_middleware, "on_success", self, self.wowevent_event(kwargs), retval,
            reverse=True,
        )  # fmt: skip

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: Any = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Any:
        """Celery's ``retry``, with the ``before_retry`` hooks run before the retry is sent.

        Celery runs ``on_retry`` only after the retry message is out, when another worker may
        already have run it; what the next attempt needs (the attempt history of the
        dead-letter record) is written first.
        """
        request = self.request
        limit = self.max_retries if max_retries is None else max_retries
        if not request.called_directly and (limit is None or request.retries < limit):
            current = exc if exc is not None else sys.exc_info()[1]
            self.wowevent_before_retry(request.kwargs, current, None)
        return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)

    def wowevent_before_retry(
        self, kwargs: Mapping[str, Any] | None, exc: BaseException | None, einfo: Any
    ) -> None:
        """Run the middleware's ``before_retry`` hooks for the current request."""
        if not self.wowevent_middleware:
            return
        run_hooks(
            self.wowevent_middleware, "before_retry", self, self.wowevent_event(kwargs), exc,
            einfo, reverse=True,
        )  # fmt: skip

    def on_retry(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if not self.wowevent_middleware:
            return
        run_hooks(
            self.wowevent_middleware, "on_retry", self, self.wowevent_event(kwargs), exc, einfo,
            reverse=True,
        )  # fmt: skip

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        if not self.wowevent_middleware:
            return
        if context_of(self.request).failure_handled:
            return  # the worker's main process already ran the hooks (see SubscriberRequest)
        if isinstance(exc, DeadLetterWriteError):
            # Celery's trace calls on_failure again with the error our own hook raised. Raising
            # it once more would escape the trace: with the solo and threads pools that stops
            # the worker. Returning lets the trace report it as the delivery's failure, and
            # SubscriberRequest.on_failure requeues the delivery.
            return
        run_hooks(
            self.wowevent_middleware, "on_failure", self, self.wowevent_event(kwargs), exc, einfo,
            reverse=True,
        )  # fmt: skip

    def apply_async(self, args: Any = None, kwargs: Any = None, **options: Any) -> Any:
        """Celery's ``apply_async``, with retry delays a quorum queue can honour.

        On RabbitMQ quorum queues Celery delays a message natively, in whole seconds, and
        refuses (dropping the retry) a countdown that rounds down to 0 s. A delay under one
        second is rounded up to one second there: never earlier than asked, never lost.
        """
        countdown, eta = options.get("countdown"), options.get("eta")
        if (countdown or eta) and self._delays_in_whole_seconds():
            if eta is not None:
                when = eta if isinstance(eta, datetime) else datetime.fromisoformat(str(eta))
                now = datetime.now(when.tzinfo or UTC) if when.tzinfo else datetime.now()
                countdown = (when - now).total_seconds()
                options.pop("eta")
            if countdown is not None and countdown > 0:
                options["countdown"] = max(1, math.ceil(countdown))
        return super().apply_async(args, kwargs, **options)

    def _delays_in_whole_seconds(self) -> bool:
        route = self.wowevent_pinned_route
        if route is None:
            return False
        arguments = route(self.wowevent_queue).queue_arguments or {}
        return bool(arguments.get("x-queue-type") == "quorum")

    def signature_from_request(
        self,
        request: Any = None,
        args: Any = None,
        kwargs: Any = None,
        queue: Any = None,
        **extra_options: Any,
    ) -> Any:
        route = self.wowevent_pinned_route
        if route is not None:
            own = route(self.wowevent_queue)
        else:
            own = Queue(
                self.wowevent_queue,
                exchange=_ANONYMOUS,
                routing_key=self.wowevent_queue,
                no_declare=True,
            )
        return super().signature_from_request(request, args, kwargs, queue=own, **extra_options)


_BODY_DEPTH = MAX_DEPTH + ENVELOPE_LEVELS


def depth_problem(body: Any) -> str | None:
    """What is wrong with a task body whose event nests deeper than publish allows, if it does.

    The bus refuses such events at publish; one pushed past it would be refused by the
    prefork pool's pickling as an unrecoverable worker error.
    """
    if depth_exceeds(body, _BODY_DEPTH):
        return (
            f"the event's data nests more than {MAX_DEPTH} levels of objects and arrays "
            "(wowevent_kombu.core.nesting.MAX_DEPTH)"
        )
    return None


def body_problem(body: Any) -> str | None:
    """What is wrong with a decoded task body for a subscriber, or ``None`` when it is usable."""
    if not isinstance(body, list | tuple) or len(body) != 3:
        return "the task body is not [args, kwargs, embed]"
    args, kwargs, embed = body
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return "the task body's args are not a list or its kwargs not an object"
    if embed is not None and not isinstance(embed, dict):
        return "the task body's embed is not an object"
    if not isinstance(kwargs.get(EVENT_KWARG), dict):
        return f"the task body carries no {EVENT_KWARG!r} object"
    return None


@dataclasses.dataclass(frozen=True)
class Subscriber:
    """One registered subscriber.

    Attributes:
        name: Unique on the bus; also the Celery task name.
        patterns: Topic patterns (AMQP semantics).
        queue: The Redis list its deliveries wait in.
        handler: The user's function.
        task: The Celery task that runs the handler.
    """

    name: str
    patterns: tuple[str, ...]
    queue: str
    handler: Handler
    task: SubscriberTask = dataclasses.field(repr=False)

    def kombu_queue(self, exchange: Exchange) -> Queue:
        """The queue as the worker declares it: bound to the topic exchange once per pattern."""
        first, *rest = self.patterns
        queue = Queue(self.queue, exchange=exchange, routing_key=first)
        # Assigned after construction: Kombu drops a queue's own exchange when bindings are
        # passed in, and Celery needs that exchange to list the queue.
        queue.bindings = {binding(exchange, routing_key=p) for p in rest}
        return queue


def check_name(name: object) -> str:
    """Return ``name`` if it can name a subscriber, else raise naming the rule."""
    if not names.valid_subscriber_name(name):
        raise InvalidSubscriberError(
            f"subscriber name {name!r} must be 1-200 letters, digits, '_', '-' or single dots",
            subscriber=name if isinstance(name, str) else None,
        )
    return name  # type: ignore[return-value]


def normalise_patterns(patterns: str | Sequence[str], *, subscriber: str) -> tuple[str, ...]:
    """Validate patterns; a single string is one pattern."""
    if isinstance(patterns, str):
        items = [patterns]
    elif isinstance(patterns, list | tuple | set | frozenset):
        items = list(patterns)
    else:
        raise InvalidPatternError(
            f"subscriber {subscriber!r}: patterns must be a string or a list of strings, "
            f"got {type(patterns).__name__}",
            pattern=repr(patterns)[:100],
        )
    if not items:
        raise InvalidSubscriberError(
            f"subscriber {subscriber!r} has no patterns; give at least one, e.g. 'order.*'",
            subscriber=subscriber,
        )
    return tuple(dict.fromkeys(validate_pattern(p) for p in items))


def register(
    app: Celery,
    handler: Handler,
    *,
    name: str,
    patterns: tuple[str, ...],
    queue: str,
    bind: bool,
    options: Mapping[str, Any],
    middleware: Sequence[Middleware] = (),
    pinned_route: Callable[[str], Queue] | None = None,
) -> Subscriber:
    """Create the subscriber's Celery task on ``app`` and describe it."""
    check_name(name)
    reserved = _RESERVED & set(options)
    if reserved:
        raise InvalidSubscriberError(
            f"subscriber {name!r}: option(s) {', '.join(sorted(reserved))} are set by the bus",
            subscriber=name,
        )
    if not callable(handler):
        raise InvalidSubscriberError(
            f"subscriber {name!r}: handler is not callable", subscriber=name
        )
    task_options = {**SUBSCRIBER_DEFAULTS, **options}
    # An event that is not a valid CloudEvent will never become one, and a handler that raises
    # Reject has said it must not be retried: both go straight to the dead-letter store. A
    # delivery held back by its circuit breaker is requeued, never retried.
    task_options["dont_autoretry_for"] = (
        *tuple(task_options.get("dont_autoretry_for") or ()),
        InvalidEventError,
        Reject,
        BreakerOpen,
    )

    def run(task: SubscriberTask, **kwargs: Any) -> Any:
        document = kwargs.get(EVENT_KWARG)
        replayed = bool(getattr(task.request, REPLAY_HEADER, False))
        event = Event.from_cloudevent(document, replayed=replayed)  # type: ignore[arg-type]
        context_of(task.request).event = event  # for the success/retry/failure hooks
        chain = task.wowevent_middleware
        try:
            run_hooks(chain, "before_handle", task, event)
        except SkipDelivery:
            return None
        try:
            result = handler(task, event) if bind else handler(event)
            if inspect.iscoroutine(result):
                result = run_coroutine(result, subscriber=name)
        except BaseException as exc:
            run_hooks(chain, "after_handle", task, event, result=None, exc=exc, reverse=True)
            raise
        run_hooks(chain, "after_handle", task, event, result=result, exc=None, reverse=True)
        return result

    handler_name = getattr(handler, "__name__", "")
    # Celery compiles a signature checker from this name: it must be an identifier.
    run.__name__ = handler_name if handler_name.isidentifier() else "handler"
    run.__doc__ = handler.__doc__
    run.__module__ = getattr(handler, "__module__", __name__)
    task = app.task(
        run,
        name=names.task_name(name),
        base=SubscriberTask,
        bind=True,
        shared=False,
        lazy=False,
        wowevent_queue=queue,
        wowevent_pinned_route=pinned_route,
        wowevent_subscriber=name,
        wowevent_middleware=middleware,
        **task_options,
    )
    return Subscriber(name=name, patterns=patterns, queue=queue, handler=handler, task=task)
