"""The record of every replay run in Redis: list them, read one, ask a running one to stop.

Each run writes a hash at :func:`~wowevent_kombu.core.names.replay_key` when it starts (its
selection, status and progress, updated in the same transaction as each batch of deliveries).
Records expire with the log's retention. A stop request sets the record's ``stop`` field; the
run reads it with its next batch and stops as if interrupted, resumable by its id.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import redis

from wowevent_kombu.core import names
from wowevent_kombu.core.errors import LogQueryError, UnknownReplayError
from wowevent_kombu.log.replay import STOP_FIELD
from wowevent_kombu.log.replayreport import ReplayReport, report_from_record

__all__ = ["ReplayRun", "ReplayRuns"]

SCAN_COUNT = 500


@dataclasses.dataclass
class ReplayRun:
    """A recorded replay: what it selected, when it ran and how far it got."""

    report: ReplayReport
    selection: dict[str, Any]
    started_at: str | None
    finished_at: str | None
    stopped_at: str | None
    stop_requested: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the report's fields beside the selection and the times."""
        return {
            **self.report.to_dict(),
            "selection": self.selection,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "stopped_at": self.stopped_at,
            "stop_requested": self.stop_requested,
        }


class ReplayRuns:
    """Reads and steers the replay records of one exchange.

    Args:
        client: A Redis client on the bus's store.
        exchange: The bus's exchange.
    """

    def __init__(self, client: redis.Redis, exchange: str) -> None:
        self.client = client
        self.exchange = exchange

    def ids(self) -> list[str]:
        """The ids of every recorded replay (any status), unordered."""
        prefix = names.replay_key(self.exchange, "")
        found: set[str] = set()
        for key in self.client.scan_iter(match=_glob_escape(prefix) + "*", count=SCAN_COUNT):
            text = key.decode() if isinstance(key, bytes) else str(key)
            found.add(text[len(prefix) :])
        return sorted(found)

    def list(self, *, limit: int = 50) -> list[ReplayRun]:
        """The most recently started ``limit`` runs, newest first."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise LogQueryError(f"limit must be a positive integer, got {limit!r}")
        runs = [run for run in (self._load(i) for i in self.ids()) if run is not None]
        runs.sort(key=lambda r: r.started_at or "", reverse=True)
        return runs[:limit]

    def get(self, replay_id: str) -> ReplayRun:
        """One run by id.

        Raises:
            UnknownReplayError: no record has this id (mistyped, or expired with the log).
        """
        run = self._load(replay_id)
        if run is None:
            raise UnknownReplayError(
                f"no replay {replay_id!r} is recorded on exchange {self.exchange!r} (records "
                "expire with the log's retention)",
                replay_id=replay_id,
            )
        return run

    def request_stop(self, replay_id: str) -> ReplayRun:
        """Ask a running replay to stop after its current batch; the run as it is now.

        Asking a run that is not running changes nothing (its status says why).

        Raises:
            UnknownReplayError: no record has this id.
        """
        run = self.get(replay_id)
        if run.report.status == "running":
            self.client.hset(names.replay_key(self.exchange, replay_id), STOP_FIELD, "1")
            run.stop_requested = True
        return run

    def _load(self, replay_id: str) -> ReplayRun | None:
        if not replay_id or any(c in replay_id for c in "*?[]\\") or len(replay_id) > 64:
            return None
        raw: Any = self.client.hgetall(names.replay_key(self.exchange, replay_id))
        record = {k.decode(): v.decode() for k, v in raw.items()}
        if "selection" not in record:
            return None
        selection = json.loads(record["selection"])
        subscribers = [str(s) for s in selection.get("subscribers", [])]
        return ReplayRun(
            report=report_from_record(replay_id, record, subscribers),
            selection=selection,
            started_at=record.get("started_at"),
            finished_at=record.get("finished_at"),
            stopped_at=record.get("stopped_at"),
            stop_requested=bool(record.get(STOP_FIELD)),
        )


def _glob_escape(text: str) -> str:
    """``text`` with Redis glob metacharacters escaped (exchange names may contain them)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
