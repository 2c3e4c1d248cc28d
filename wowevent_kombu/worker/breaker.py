"""The circuit-breaker middleware: count outcomes, hold deliveries back while a breaker is open.

A subscriber with ``circuit_breaker=`` gets :data:`~wowevent_kombu.core.breaker.TASK_FLAG` on its
task. For each of its deliveries, before the handler, Redis is asked whether it may run
(closed: yes; half-open: as one of the trials; open: no); after it, the outcome is counted.

While the breaker is not closed a delivery that may not run, and one whose counted failure
opened the breaker (or saw it open), is handed back to the queue with ``Reject(requeue=True)``:
Celery puts the message back at the head of the subscriber's queue without counting an
attempt, sending a retry or writing a dead letter. A retry (``self.retry``) would count an
attempt and re-send the message, so an outage longer than the retries would still end in
dead letters; a requeue keeps the event exactly as it was, waiting for the breaker to close.
The workers stop consuming the queue within a poll of the breaker's state
(:mod:`wowevent_kombu.worker.breakerwatch`), so the few deliveries already taken are all that
are handed back.

Which failures count follows the subscriber's retry options: an exception in
``dont_autoretry_for`` (and so :class:`~wowevent_kombu.core.errors.Reject` and invalid events)
never counts; with ``autoretry_for`` only those exceptions count; without it every exception
does. Celery's own ``Reject`` and ``Ignore`` do not count. When Redis does not answer, the
breaker stays out of the way: the delivery runs and its outcome is not counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import redis
from celery.exceptions import Ignore, Retry
from celery.exceptions import Reject as CeleryReject

from wowevent_kombu.core.breaker import CLOSED, TASK_FLAG, BreakerState, CircuitBreaker
from wowevent_kombu.core.errors import (
    ConfigurationError,
    EventValidationError,
    InvalidEventError,
    Reject,
    UnknownSubscriberError,
)
from wowevent_kombu.worker.breakerstore import BreakerStore
from wowevent_kombu.worker.failures import DeadLetterMiddleware
from wowevent_kombu.worker.middleware import Middleware

if TYPE_CHECKING:
    from wowevent_kombu.core.event import Event
    from wowevent_kombu.worker.delivery import DeliveryTask

log = logging.getLogger(__name__)

WAIT_PAUSE = 0.1
"""Seconds a held-back delivery waits before going back to the queue, so a worker that has not
yet stopped consuming (or a half-open one whose trials are taken) does not spin on it."""

_TRIAL = "wowevent_breaker_trial"
_NEVER_COUNTED = (CeleryReject, Ignore, Reject, InvalidEventError, EventValidationError)


class BreakerOpen(CeleryReject):  # type: ignore[misc]
    """Hands a delivery back to its queue unchanged because its subscriber's breaker is open.

    A signal to Celery (``Reject(requeue=True)``), not an error: the message is requeued, no
    attempt is counted and no dead letter is written.
    """

    def __init__(self, reason: str | None = None, requeue: bool = True) -> None:
        super().__init__(reason, requeue)


def config_of(task: Any) -> CircuitBreaker | None:
    """The subscriber's breaker settings, ``None`` when it has no breaker."""
    value = getattr(task, TASK_FLAG, None)
    return value if isinstance(value, CircuitBreaker) else None


def counts_as_failure(task: Any, exc: BaseException) -> bool:
    """Whether ``exc`` from the handler counts against the breaker (see the module docstring)."""
    if isinstance(exc, Retry):
        if not isinstance(exc.exc, BaseException):
            return True  # a bare self.retry(): the handler says this attempt failed
        exc = exc.exc
    if isinstance(exc, _NEVER_COUNTED) or not isinstance(exc, Exception):
        return False
    dont = tuple(getattr(task, "dont_autoretry_for", ()) or ())
    if dont and isinstance(exc, dont):
        return False
    auto = tuple(getattr(task, "autoretry_for", ()) or ())
    return isinstance(exc, auto) if auto else True


class BreakerMiddleware(Middleware):
    """Asks the subscriber's breaker before each delivery and tells it each outcome.

    Critical, so the :class:`BreakerOpen` it raises reaches Celery; its own Redis errors are
    logged and swallowed.

    Args:
        store: Returns the bus's breaker store, ``None`` without Redis (called on first use).
        pause: Seconds a held-back delivery waits before it is requeued.
    """

    critical = True

    def __init__(
        self, store: Callable[[], BreakerStore | None], *, pause: float = WAIT_PAUSE
    ) -> None:
        self._store = store
        self._pause = pause

    def before_handle(self, task: DeliveryTask, event: Event) -> None:
        config = config_of(task)
        store = self._store() if config is not None else None
        if config is None or store is None:
            return
        subscriber = task.wowevent_subscriber
        try:
            outcome = store.admit(subscriber, config)
        except redis.RedisError as exc:
            log.warning("circuit breaker of %r not read (%s): the delivery runs", subscriber, exc)
            return
        if outcome.result == "trial":
            setattr(task.request, _TRIAL, True)
        elif outcome.result == "wait":
            time.sleep(self._pause)
            raise BreakerOpen(
                f"circuit breaker of subscriber {subscriber!r} is {outcome.state.state}: "
                f"event {event.id} goes back to the queue unchanged"
            )

    def after_handle(
        self, task: DeliveryTask, event: Event, *, result: Any, exc: BaseException | None
    ) -> None:
        config = config_of(task)
        store = self._store() if config is not None else None
        if config is None or store is None or isinstance(exc, BreakerOpen):
            return
        subscriber = task.wowevent_subscriber
        trial = bool(getattr(task.request, _TRIAL, False))
        counted = exc is None or counts_as_failure(task, exc)
        try:
            if not counted:
                if trial:
                    store.release(subscriber)
                return
            outcome = store.record(subscriber, config, failed=exc is not None, trial=trial)
        except redis.RedisError as error:
            log.warning("circuit breaker of %r not told the outcome: %s", subscriber, error)
            return
        if exc is None or isinstance(exc, Retry) or outcome.state.state == CLOSED:
            return  # a success, a retry already sent by the handler, or an ordinary failure
        raise BreakerOpen(
            f"circuit breaker of subscriber {subscriber!r} is {outcome.state.state}: "
            f"event {event.id} goes back to the queue without counting this attempt "
            f"({type(exc).__name__}: {exc})"
        ) from exc


class Breakers:
    """One bus's breakers: the option of its subscribers and the store its workers share.

    Args:
        exchange: The bus's exchange.
        transport: Returns the bus's transport; breakers need its Redis client (on RabbitMQ,
            the bus's store Redis); without one (the in-memory test bus) they do nothing.
    """

    def __init__(
        self,
        exchange: str,
        transport: Callable[[], Any],
        subscribers: Callable[[], Mapping[str, Any]] = dict,
        bound: Callable[[], Iterable[str]] = tuple,
    ) -> None:
        self._exchange = exchange
        self._transport = transport
        self._subscribers = subscribers
        self._bound = bound
        self._store: BreakerStore | None = None

    def store(self) -> BreakerStore | None:
        """The breaker store, made on first use; ``None`` without Redis."""
        if self._store is None:
            client = getattr(self._transport(), "client", None)
            if client is None:
                return None
            self._store = BreakerStore(client, self._exchange)
        return self._store

    def required_store(self) -> BreakerStore:
        """The breaker store, or :class:`ConfigurationError` saying breakers need Redis."""
        store = self.store()
        if store is None:
            raise ConfigurationError(
                "circuit breakers keep their state in Redis; this bus's transport has none"
            )
        return store

    def states(self) -> list[BreakerState]:
        """Every breaker: those with state in Redis and those configured here, by name."""
        store = self.required_store()
        configured = [n for n, s in self._subscribers().items() if config_of(s.task)]
        chosen = sorted({*store.known(), *configured})
        return list(store.read_many(chosen).values())

    def state(self, subscriber: str) -> BreakerState:
        """One subscriber's breaker (closed when it never had state)."""
        return self.required_store().read(self._check(subscriber))

    def force(self, subscriber: str, action: str) -> BreakerState:
        """Force ``subscriber``'s breaker ``open`` (until closed by hand) or ``close`` it.

        Raises:
            UnknownSubscriberError: the name is neither registered, bound nor a known breaker.
        """
        store = self.required_store()
        return store.force(self._check(subscriber), action).state

    def _check(self, subscriber: str) -> str:
        store = self.required_store()
        if subscriber in self._subscribers() or subscriber in set(self._bound()):
            return subscriber
        if subscriber in store.known():
            return subscriber
        raise UnknownSubscriberError(
            f"no subscriber {subscriber!r} on exchange {self._exchange!r}: see "
            "'wowevent subscribers' for the bound ones",
            subscriber=subscriber,
        )

    def apply(self, options: Mapping[str, Any], middleware: list[Middleware]) -> dict[str, Any]:
        """``options`` with ``circuit_breaker`` turned into the task flag (a new dict).

        The first subscriber with a breaker puts :class:`BreakerMiddleware` in the bus's
        chain, after the hooks already there (an event already handled, or invalid, takes no
        trial) and before the dead-letter middleware, which stays last.
        """
        options = dict(options)
        config = CircuitBreaker.coerce(options.pop("circuit_breaker", None))
        if config is None:
            return options
        options[TASK_FLAG] = config
        if not any(isinstance(m, BreakerMiddleware) for m in middleware):
            at = len(middleware)
            if middleware and isinstance(middleware[-1], DeadLetterMiddleware):
                at -= 1
            middleware.insert(at, BreakerMiddleware(self.store))
        return options
