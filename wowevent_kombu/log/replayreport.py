"""What a replay did: its report, as returned and as recorded in Redis, and how far it got."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from wowevent_kombu.log.eventlog import Selection
from wowevent_kombu.log.positions import split_position


@dataclasses.dataclass
class ReplayReport:
    """What a replay did (or, with ``dry_run``, would do).

    Attributes:
        replay_id: Resume an interrupted replay with it.
        status: ``done``, ``interrupted`` (Ctrl-C), ``failed`` (see ``error``) or ``dry-run``;
            ``running`` in Redis while it runs, or when it stopped with Redis unreachable.
        scanned: Events of the selection read from the log.
        delivered: Deliveries per chosen subscriber.
        skipped: Scanned events that no chosen subscriber's current patterns match.
        duration: Seconds spent (this run only, when resumed).
        position: The last log position whose deliveries were sent.
        error: Why a ``failed`` replay stopped (exception type and message).
    """

    replay_id: str
    status: str
    scanned: int = 0
    delivered: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: int = 0
    duration: float = 0.0
    position: str | None = None
    error: str | None = None

    @property
    def total_delivered(self) -> int:
        """Deliveries summed over subscribers."""
        return sum(self.delivered.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {**dataclasses.asdict(self), "total_delivered": self.total_delivered}


def report_from_record(replay_id: str, record: Mapping[str, str], subs: list[str]) -> ReplayReport:
    """The report a replay's Redis record (its ``replay_key`` hash, decoded) gives."""
    return ReplayReport(
        replay_id,
        record.get("status", "running"),
        scanned=int(record.get("scanned", 0)),
        delivered={s: int(record.get(f"delivered:{s}", 0)) for s in subs},
        skipped=int(record.get("skipped", 0)),
        position=record.get("position") or None,
        error=record.get("error") or None,
    )


def stop_reason(exc: BaseException) -> str:
    """``Type: message`` of an exception, on one line and at most 300 characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 300 else text[:297] + "..."


def time_span(chosen: Selection, first: str | None) -> tuple[int, int]:
    """The selection's ``(first, last)`` milliseconds, given the log's ``first`` position."""
    oldest = split_position(first) if first else (0, 0)
    low = max(chosen.start or (0, 0), chosen.after or (0, 0), oldest)[0]
    return low, (chosen.end or (low, 0))[0]


def progress_share(position: str | None, span: tuple[int, int], final: bool) -> float:
    """Share of the selection's time span covered so far (for progress bars)."""
    if final:
        return 1.0
    if position is None:
        return 0.0
    low, high = span
    if low == 0:
        return 0.0
    ms = split_position(position)[0]
    return min(1.0, max(0.0, (ms - low) / max(1, high - low)))
