"""The worker consumer's hooks for messages it cannot run, and its per-task strategies.

Celery's consumer reports what it cannot run through four callbacks, each of which logs and then
rejects (drops) the message: ``on_decode_error``, ``on_unknown_message``, ``on_unknown_task`` and
``on_invalid_task``; and it picks each message's strategy by task name from
``consumer.strategies`` at the time the message arrives. Both are replaced here, and only here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.exceptions import InvalidTaskError

Report = Callable[[Any, str], None]
"""Told ``(message, problem)`` before Celery's own callback drops the message; must not raise."""

Check = Callable[[Any, str], str | None]
"""``(message, task name) -> problem``: why the message may not run that task, or ``None``."""

CALLBACKS = ("on_decode_error", "on_unknown_message", "on_unknown_task", "on_invalid_task")
"""The consumer's callbacks for messages it cannot run."""

_GUARDED = "wowevent_guarded_by"


def report_unrunnable(consumer: Any, report: Report) -> None:
    """Call ``report`` in front of each of the consumer's :data:`CALLBACKS`."""
    for name in CALLBACKS:
        setattr(consumer, name, _reporting(name, getattr(consumer, name), report))


def _reporting(name: str, original: Callable[..., Any], report: Report) -> Callable[..., Any]:
    def on_decode_error(message: Any, exc: BaseException) -> Any:
        report(message, f"content refused or undecodable: {exc}")
        return original(message, exc)

    def on_unknown_message(body: Any, message: Any) -> Any:
        report(message, "not a Celery task message (no task name)")
        return original(body, message)

    def on_unknown_task(body: Any, message: Any, exc: BaseException) -> Any:
        headers = getattr(message, "headers", None) or {}
        report(message, f"no task named {headers.get('task')!r} in this worker")
        return original(body, message, exc)

    def on_invalid_task(body: Any, message: Any, exc: BaseException) -> Any:
        report(message, str(exc))
        return original(body, message, exc)

    hooks: dict[str, Callable[..., Any]] = {
        "on_decode_error": on_decode_error,
        "on_unknown_message": on_unknown_message,
        "on_unknown_task": on_unknown_task,
        "on_invalid_task": on_invalid_task,
    }
    return hooks[name]


def check_strategies(strategies: dict[str, Any], check: Check, owner: object) -> None:
    """Make every task's strategy in ``strategies`` run ``check`` first.

    A refusal raises ``InvalidTaskError``, which Celery reports to ``on_invalid_task``. Strategies
    already checked for ``owner`` are left as they are, so a rebuilt table is guarded again and
    a kept one not twice.
    """
    for task, strategy in list(strategies.items()):
        if getattr(strategy, _GUARDED, None) is not owner:
            strategies[task] = _checked(task, strategy, check, owner)


def _checked(
    task: str, strategy: Callable[..., Any], check: Check, owner: object
) -> Callable[..., Any]:
    def checked(message: Any, *args: Any, **kwargs: Any) -> Any:
        problem = check(message, task)
        if problem is not None:
            raise InvalidTaskError(problem)
        return strategy(message, *args, **kwargs)

    setattr(checked, _GUARDED, owner)
    return checked
