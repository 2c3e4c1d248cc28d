"""Replay: re-publish logged events as Celery tasks to chosen subscribers, resumably.

A replay reads a selection of the log in publish order and pushes one task message per event
and chosen subscriber whose *current* patterns match (all chosen subscribers with ``force``).
Each message keeps the event id, carries the ``wowevent_replay`` header (handlers see
``event.replayed``) and has its own task id, derived from the event id, the subscriber and the
replay id. Deliveries go out in batches; each batch's pushes and the replay's progress record
are one ``MULTI``/``EXEC``, so an interrupted replay resumes exactly after the last batch sent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import redis

from wowevent_kombu.brokers.redis.atomic import Command, execute_atomic
from wowevent_kombu.core import names, wire
from wowevent_kombu.core.errors import (
    LogQueryError,
    ReplayInterrupted,
    UnknownReplayError,
    UnknownSubscriberError,
)
from wowevent_kombu.core.matcher import TopicMatcher
from wowevent_kombu.log.eventlog import EventLog, RawEntry, Selection
from wowevent_kombu.log.pace import Clock, Pace, Speed, parse_speed
from wowevent_kombu.log.positions import position_pair, position_text, split_position
from wowevent_kombu.log.replayreport import (
    ReplayReport,
    progress_share,
    report_from_record,
    stop_reason,
    time_span,
)

if TYPE_CHECKING:
    from wowevent_kombu.brokers.base import Transport
    from wowevent_kombu.core.settings import Settings

__all__ = ["BATCH", "STOP_FIELD", "ReplayBus", "ReplayReport", "Replayer", "StopRequested"]

log = logging.getLogger(__name__)

BATCH = 1000
"""Events per transaction when replaying at full speed."""

STOP_FIELD = "stop"
"""Field of a replay's record that asks it to stop after its current batch."""


class StopRequested(Exception):
    """An operator asked this replay to stop (its record's ``stop`` field is set)."""


class ReplayBus(Protocol):
    """What a replay needs of the bus (:class:`wowevent_kombu.bus.EventBus` passes itself)."""

    @property
    def exchange(self) -> str:
        """The exchange whose log is replayed."""

    @property
    def settings(self) -> Settings:
        """The bus's settings (a replay's record expires with ``log_max_age``)."""

    @property
    def transport(self) -> Transport:
        """The broker the deliveries go through (:meth:`Transport.push_commands`)."""

    def bindings(self) -> dict[str, list[str]]:
        """Every bound subscriber and its current patterns."""


@dataclasses.dataclass(frozen=True)
class _Target:
    name: str
    queue: str
    matcher: TopicMatcher


class Replayer:
    """Runs replays of one bus's log (``bus.replay`` is the front door)."""

    def __init__(self, bus: ReplayBus, eventlog: EventLog) -> None:
        self.bus = bus
        self.log = eventlog
        self.client = eventlog.client
        self.exchange = bus.exchange
        self.sender = wire.origin()

    def run(
        self,
        *,
        subscribers: Sequence[str] | None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        types: str | Sequence[str] | None = None,
        correlation_id: str | None = None,
        source: str | None = None,
        speed: Speed = "instant",
        dry_run: bool = False,
        force: bool = False,
        from_checkpoint: bool = False,
        resume: str | None = None,
        progress: Callable[[ReplayReport, float], None] | None = None,
    ) -> ReplayReport:
        """Re-publish logged events as Celery tasks to the named subscribers only.

        Each selected event goes to those of ``subscribers`` whose current patterns match its
        type (to all of them with ``force``), keeping its id, marked as a replay
        (``event.replayed``, header ``wowevent_replay``) and with a task id of its own. The
        end of the selection is fixed when the replay starts.

        Args:
            subscribers: Subscriber names; ``None`` for every bound subscriber.
            since: Earliest log time or position (as :meth:`EventLog.read` takes them).
            until: Latest log time or position.
            types: Topic pattern(s) the event types must match.
            correlation_id: Only this correlation (read from its index).
            source: Only events of this source.
            speed: ``"instant"``, a factor of the original pacing (``1.0``, ``10.0``), or a
                fixed rate ``"500/s"``.
            dry_run: Count what would be delivered; send nothing, record nothing.
            force: Deliver to every named subscriber even where its patterns do not match.
            from_checkpoint: Start after the one named subscriber's checkpoint (from the start
                of the log when it has none).
            resume: Continue the interrupted replay with this id (other selection arguments
                are taken from its record).
            progress: Called after each batch with the report so far and the share done.

        Returns:
            The report; an empty selection gives a report of 0 events, not an error.

        Raises:
            LogQueryError: bad times, cursor, speed or an empty subscriber list.
            UnknownSubscriberError: a named subscriber is not bound in Redis.
            UnknownReplayError: ``resume`` names no recorded replay.
            ReplayInterrupted: Ctrl-C; its ``replay_id`` resumes the replay.
        """
        if resume is not None:
            return self._resume(resume, dry_run=dry_run, progress=progress)
        pace = parse_speed(speed)
        targets = self._targets(subscribers)
        cursor = None
        if from_checkpoint:
            if since is not None or len(targets) != 1:
                raise LogQueryError(
                    "from_checkpoint replays one subscriber from its own checkpoint: name exactly "
                    "one subscriber and no 'since'"
                )
            cursor = self.log.checkpoint(targets[0].name)
        chosen = self.log.select(
            since=since, until=until, types=types, correlation_id=correlation_id, source=source,
            cursor=cursor,
        )  # fmt: skip
        if chosen.end is None:
            # Freeze the end now: events published while replaying are not part of it.
            last = self.log.last_position()
            chosen = dataclasses.replace(chosen, end=split_position(last) if last else (0, 0))
        subscriber_names = [t.name for t in targets]
        selection = {
            "subscribers": subscriber_names,
            "start": position_text(chosen.start),
            "end": position_text(chosen.end),
            "after": position_text(chosen.after),
            "types": list(chosen.types),
            "correlation_id": correlation_id,
            "source": source,
            "speed": speed,
            "force": force,
        }
        replay_id = uuid.uuid4().hex[:16]
        report = ReplayReport(replay_id, "dry-run" if dry_run else "running")
        report.delivered = dict.fromkeys(subscriber_names, 0)
        if not dry_run:
            key = names.replay_key(self.exchange, replay_id)
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, mapping={
                "selection": json.dumps(selection), "status": "running",
                "started_at": datetime.now(UTC).isoformat(),
            })  # fmt: skip
            pipe.expire(key, int(self.bus.settings.log_max_age))
            pipe.execute()
        return self._execute(report, chosen, targets, pace, force, dry_run, progress)

    def _resume(
        self,
        replay_id: str,
        *,
        dry_run: bool,
        progress: Callable[[ReplayReport, float], None] | None,
    ) -> ReplayReport:
        key = names.replay_key(self.exchange, replay_id)
        record = self._read(key)
        if "selection" not in record:
            raise UnknownReplayError(
                f"no replay {replay_id!r} is recorded on exchange {self.exchange!r} (records "
                "expire with the log's retention); start a new replay instead",
                replay_id=replay_id,
            )
        selection = json.loads(record["selection"])
        report = report_from_record(replay_id, record, selection["subscribers"])
        if record.get("status") == "done":
            return report
        targets = self._targets(selection["subscribers"])
        after = record.get("position") or selection["after"]
        chosen = Selection(
            start=position_pair(selection["start"]),
            end=position_pair(selection["end"]),
            after=position_pair(after),
            types=tuple(selection["types"]),
            correlation_id=selection["correlation_id"],
            source=selection["source"],
        )
        pace = parse_speed(selection["speed"])
        report.error = None  # an earlier run's failure; this run has its own outcome
        if not dry_run:
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, "status", "running")
            pipe.hdel(key, "error", STOP_FIELD)
            pipe.execute()
        return self._execute(report, chosen, targets, pace, selection["force"], dry_run, progress)

    def _read(self, key: str) -> dict[str, str]:
        found: dict[bytes, bytes] = self.client.hgetall(key)  # type: ignore[assignment]
        return {k.decode(): v.decode() for k, v in found.items()}

    def _targets(self, subscribers: Sequence[str] | None) -> list[_Target]:
        if subscribers is not None and not subscribers:
            raise LogQueryError("name at least one subscriber, or pass None to replay to all")
        bound = self.bus.bindings()
        if subscribers is None:
            subscribers = sorted(n for n in bound if not n.startswith(names.TAIL_PREFIX))
        unknown = [name for name in subscribers if name not in bound]
        if unknown:
            raise UnknownSubscriberError(
                f"no subscriber {', '.join(map(repr, unknown))} is bound on exchange "
                f"{self.exchange!r}; 'wowevent subscribers' lists those that are (declare a new "
                "subscriber first: 'wowevent declare' or start its worker)",
                subscriber=unknown[0],
            )
        return [
            _Target(
                name,
                names.queue_name(self.exchange, name),
                TopicMatcher((p, name) for p in bound[name]),
            )
            for name in dict.fromkeys(subscribers)
        ]

    def _execute(
        self,
        report: ReplayReport,
        chosen: Selection,
        targets: list[_Target],
        pace: Pace,
        force: bool,
        dry_run: bool,
        progress: Callable[[ReplayReport, float], None] | None,
    ) -> ReplayReport:
        began = time.monotonic()
        batch = _Batch()
        clock = Clock(pace, began)
        try:
            span = time_span(chosen, self.log.first_position())
            for raw in self.log.scan(chosen):
                chosen_targets = [t for t in targets if force or t.matcher.match(raw.type)]
                due = clock.due(raw.position) if chosen_targets else None
                if due is not None and due > time.monotonic():
                    self._flush(report, batch, dry_run, progress, span)
                    time.sleep(max(0.0, due - time.monotonic()))
                self._add(batch, raw, chosen_targets, report.replay_id)
                if batch.events >= BATCH:
                    self._flush(report, batch, dry_run, progress, span)
            self._flush(report, batch, dry_run, progress, span, final=True)
        except (KeyboardInterrupt, Exception) as exc:
            # Whatever stopped it (Ctrl-C, Redis going away, a bad entry), the operator gets the
            # id to resume with and the record says why; a dry run has no record to resume.
            report.duration = time.monotonic() - began
            if dry_run:
                raise
            raise self._stopped(report, exc) from exc
        report.duration = time.monotonic() - began
        if not dry_run:
            report.status = "done"
        log.info("replay %s: %s", report.replay_id, report.to_dict())
        return report

    def _stopped(self, report: ReplayReport, exc: BaseException) -> ReplayInterrupted:
        """Record that the replay stopped (``interrupted`` or ``failed``); the error to raise."""
        interrupted = isinstance(exc, KeyboardInterrupt | StopRequested)
        status = "interrupted" if interrupted else "failed"
        reason = None if interrupted else stop_reason(exc)
        key = names.replay_key(self.exchange, report.replay_id)
        fields: dict[Any, str] = {"status": status, "stopped_at": datetime.now(UTC).isoformat()}
        if reason is not None:
            fields["error"] = reason
        unrecorded = ""
        try:
            self.client.hset(key, mapping=fields)
            # Redis has the truth: a batch whose EXEC was sent as the replay stopped committed.
            recorded = report_from_record(report.replay_id, self._read(key), list(report.delivered))
            recorded.duration = report.duration
            report = recorded
        except redis.RedisError as lost:
            report.status, report.error = status, reason
            unrecorded = f" (its record still says 'running': {type(lost).__name__}: {lost})"
        replay_id = report.replay_id
        where = f"after {report.scanned} events (position {report.position or 'start'})"
        if interrupted:
            message = f"replay {replay_id} interrupted {where}{unrecorded}; resume it with "
        else:
            message = (
                f"replay {replay_id} failed {where}: {reason}{unrecorded}; once the cause is "
                "fixed, resume it with "
            )
        return ReplayInterrupted(
            message + f"--resume {replay_id}", replay_id=replay_id, report=report
        )

    def _add(self, batch: _Batch, raw: RawEntry, chosen: list[_Target], replay_id: str) -> None:
        batch.events += 1
        batch.position = raw.position
        if not chosen:
            batch.skipped += 1
            return
        prepared = wire.prepare(raw.json, event_type=raw.type)
        event_id = str(raw.document.get("id"))
        tag = f"replay:{replay_id}"
        now = time.time()
        for target in chosen:
            batch.pushes.setdefault(target.queue, []).append(
                wire.task_message(
                    prepared,
                    task=names.task_name(target.name),
                    task_id=names.task_id(event_id, target.name, tag),
                    queue=target.queue,
                    sender=self.sender,
                    replay=True,
                    resent_at=now,
                )
            )
            batch.delivered[target.name] = batch.delivered.get(target.name, 0) + 1

    def _flush(
        self,
        report: ReplayReport,
        batch: _Batch,
        dry_run: bool,
        progress: Callable[[ReplayReport, float], None] | None,
        span: tuple[int, int],
        *,
        final: bool = False,
    ) -> None:
        if batch.events == 0 and not final:
            return
        if not dry_run:
            key = names.replay_key(self.exchange, report.replay_id)
            # Redis: the pushes join the progress transaction; RabbitMQ: they are sent (and
            # confirmed) first, and the progress recorded after.
            commands: list[Command] = self.bus.transport.push_commands(batch.pushes)
            if batch.position is not None:
                commands.append(("HSET", key, "position", batch.position))
            commands.append(("HINCRBY", key, "scanned", batch.events))
            commands.append(("HINCRBY", key, "skipped", batch.skipped))
            for name, count in batch.delivered.items():
                commands.append(("HINCRBY", key, f"delivered:{name}", count))
            if final:
                finished = datetime.now(UTC).isoformat()
                commands.append(("HSET", key, "status", "done", "finished_at", finished))
            # An operator may ask a running replay to stop from anywhere (the console, another
            # process): the request is read inside the batch's own transaction.
            commands.append(("HGET", key, STOP_FIELD))
            # The deliveries and the progress they make commit together, or not at all.
            stop = execute_atomic(self.client, commands)[-1]
            if stop and not final:
                raise StopRequested(report.replay_id)
        report.scanned += batch.events
        report.skipped += batch.skipped
        for name, count in batch.delivered.items():
            report.delivered[name] = report.delivered.get(name, 0) + count
        report.position = batch.position or report.position
        batch.clear()
        if progress is not None:
            progress(report, progress_share(report.position, span, final))


@dataclasses.dataclass
class _Batch:
    events: int = 0
    skipped: int = 0
    position: str | None = None
    pushes: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    delivered: dict[str, int] = dataclasses.field(default_factory=dict)

    def clear(self) -> None:
        self.events = self.skipped = 0
        self.position = None
        self.pushes = {}
        self.delivered = {}
