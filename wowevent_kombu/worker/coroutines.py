"""``async def`` handlers: run each delivery's coroutine on an event loop kept per thread.

A Celery task is a plain function, run by a pool process (prefork, solo) or a pool thread
(threads). An ``async def`` subscriber's handler returns a coroutine; it is run to completion
here, on an event loop that lives as long as the thread (one per pool thread, one per prefork
child: a loop inherited across ``fork`` is never reused), so connection pools an async client
keeps on the loop survive from one delivery to the next. Starting a loop per delivery would
cost more than a no-op handler and close those pools every time.

Whatever stops the coroutine from outside (Celery's soft time limit raises inside the loop's
wait) cancels it, and its cleanup (``finally``, ``async with``) runs before the exception goes
on to the retry and dead-letter hooks.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any

from wowevent_kombu.core.errors import InvalidSubscriberError

__all__ = ["run_coroutine"]

CANCEL_GRACE = 5.0
"""Seconds a cancelled handler may spend in its cleanup before it is abandoned."""

_local = threading.local()


def _loop() -> asyncio.AbstractEventLoop:
    loop: asyncio.AbstractEventLoop | None = getattr(_local, "loop", None)
    if loop is None or loop.is_closed() or getattr(_local, "pid", None) != os.getpid():
        loop = asyncio.new_event_loop()
        _local.loop, _local.pid = loop, os.getpid()
    return loop


def run_coroutine(coroutine: Coroutine[Any, Any, Any], *, subscriber: str) -> Any:
    """Run a handler's coroutine to completion on this thread's loop; its result.

    Raises:
        InvalidSubscriberError: called from a thread whose own event loop is running (an
            ``async`` caller must ``await`` the handler itself).
        Whatever the coroutine raises.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        coroutine.close()
        raise InvalidSubscriberError(
            f"subscriber {subscriber!r} is async and was called from a running event loop; "
            "await its handler there instead of calling the task",
            subscriber=subscriber,
        )
    loop = _loop()
    task = loop.create_task(coroutine)
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():
            task.cancel()
            loop.run_until_complete(asyncio.wait([task], timeout=CANCEL_GRACE))
        raise
