"""How deeply JSON values nest: one limit, checked at publish and again at consume.

A prefork worker hands each task to its pool child with ``pickle``, which recurses once per
level: a value nested a few hundred levels deep encodes as JSON fine but cannot be pickled, and
Celery treats that as an unrecoverable worker error. Events are therefore limited to
:data:`MAX_DEPTH` levels of data, far below any recursion limit and far above what a domain
event needs.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 100
"""Most levels of objects and arrays an event's ``data`` may nest (``{"a": [1]}`` is 2)."""

ENVELOPE_LEVELS = 3
"""Levels a task body adds around an event's data: ``[args, {"event": {"data": ...}}, embed]``."""


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` (decoded JSON) nests objects and arrays more than ``limit`` levels.

    Iterative, so it answers for values of any depth without recursing, and it stops at the
    first path that goes past the limit.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, level = pending.pop()
        if isinstance(current, dict):
            children: Any = current.values()
        elif isinstance(current, list | tuple):
            children = current
        else:
            continue
        if level > limit:
            return True
        pending.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return False


def text_may_exceed(text: str | bytes, limit: int) -> bool:
    """Cheap pre-check on encoded JSON: ``False`` when it cannot nest more than ``limit`` levels.

    Every level opens with ``[`` or ``{``, so text with at most ``limit`` of them (strings
    included) cannot be deeper; only text with more needs :func:`depth_exceeds`.
    """
    if isinstance(text, bytes):
        return text.count(b"[") + text.count(b"{") > limit
    return text.count("[") + text.count("{") > limit
