"""Replays started over HTTP run in a thread of the service; the request gets their id at once.

A replay's arguments are checked, and its record written, by :meth:`EventBus.replay` itself;
the runner waits for that (or for the error that refuses the replay) and answers with the
replay's id while it goes on in the background. Progress, interruption and resumption go
through the replay's record in Redis (:class:`~wowevent_kombu.log.replayruns.ReplayRuns`), so
any replica of the service, and the CLI, see and steer the same runs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wowevent_kombu.core.errors import ReplayInterrupted, WowEventError
from wowevent_kombu.log.replayreport import ReplayReport

if TYPE_CHECKING:
    from wowevent_kombu.bus import EventBus

__all__ = ["ReplayRunner"]

log = logging.getLogger(__name__)

START_TIMEOUT = 30.0
"""Seconds to wait for a replay's first batch before answering that it is still starting."""


class _Start:
    """What the request thread waits for: the replay's id, or the error that refused it."""

    def __init__(self) -> None:
        self.ready = threading.Event()
        self.report: ReplayReport | None = None
        self.error: BaseException | None = None


class ReplayRunner:
    """Runs replays of one bus in background threads.

    Args:
        bus: The bus whose log is replayed.
    """

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()

    def start(self, **arguments: Any) -> ReplayReport:
        """Start ``bus.replay(**arguments)`` in a thread; its report once it has an id.

        Raises:
            WowEventError: the bus refused the replay (unknown subscriber, bad time, ...).
        """
        start = _Start()

        def progress(report: ReplayReport, share: float) -> None:
            if not start.ready.is_set():
                start.report = report
                start.ready.set()

        def run() -> None:
            try:
                report = self.bus.replay(**arguments, progress=progress)
                start.report = start.report or report
            except ReplayInterrupted as exc:
                log.info("replay %s stopped: %s", exc.replay_id, exc)
                start.report = start.report or exc.report
            except BaseException as exc:
                start.error = exc
                if start.ready.is_set():
                    log.exception("replay failed after it started")
            finally:
                start.ready.set()
                with self._lock:
                    self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}

        thread = threading.Thread(target=run, name="wowevent-replay", daemon=True)
        thread.start()
        if not start.ready.wait(START_TIMEOUT) or start.report is None:
            if start.error is not None:
                raise start.error
            raise WowEventError("the replay did not start within 30 s; see the service log")
        with self._lock:
            self._threads[start.report.replay_id] = thread
        return start.report

    def running_here(self) -> list[str]:
        """Ids of the replays running in this process."""
        with self._lock:
            return [k for k, t in self._threads.items() if t.is_alive()]

    def stop_all(self, request_stop: Callable[[str], object], timeout: float = 2.0) -> None:
        """Ask every replay of this process to stop, and wait up to ``timeout`` for them."""
        ids = self.running_here()
        for replay_id in ids:
            try:
                request_stop(replay_id)
            except Exception:
                log.exception("could not ask replay %s to stop", replay_id)
        with self._lock:
            threads = [self._threads[i] for i in ids if i in self._threads]
        for thread in threads:
            thread.join(timeout / max(1, len(threads)))
