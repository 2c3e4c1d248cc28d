"""Replay on a real Redis, read back from the subscriber queues (no worker needed here)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from click.testing import CliRunner

from tests.conftest import wait_for
from wowevent_kombu import (
    Event,
    EventBus,
    LogQueryError,
    ReplayInterrupted,
    UnknownReplayError,
    UnknownSubscriberError,
)
from wowevent_kombu.cli import cli
from wowevent_kombu.core import names, wire
from wowevent_kombu.log.pace import Clock, Pace, parse_speed


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    app = Celery("t", broker=redis_url, set_as_current=False)
    made = EventBus(app, exchange=exchange)

    @made.subscriber("order.*", name="billing")
    def billing(event: Event) -> None: ...

    @made.subscriber(["order.#", "payment.*"], name="audit")
    def audit(event: Event) -> None: ...

    yield made
    made.close()


def queued(client: redis.Redis, bus: EventBus, subscriber: str) -> list[dict[str, Any]]:
    """Messages waiting in a subscriber's queue, oldest first, decoded."""
    raw = client.lrange(names.queue_name(bus.exchange, subscriber), 0, -1)
    return [wire.decode_task_message(m) for m in reversed(raw)]


def event_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["decoded_body"][1]["event"]["id"] for m in messages]


def drain(client: redis.Redis, bus: EventBus) -> None:
    for name in ("billing", "audit"):
        client.delete(names.queue_name(bus.exchange, name))


def test_parse_speed_table() -> None:
    assert parse_speed("instant") == Pace()
    assert parse_speed(1.0) == Pace(factor=1.0)
    assert parse_speed("10x") == Pace(factor=10.0)
    assert parse_speed("2.5") == Pace(factor=2.5)
    assert parse_speed("500/s") == Pace(rate=500.0)
    for bad in ("fast", "0", -1.0, "0/s", "x/s", True, float("nan"), float("inf")):
        with pytest.raises(LogQueryError, match="speed"):
            parse_speed(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("speed", "fragment"),
    [("1e-300", "too slow: the slowest factor is 0.001"), (1e-300, "too slow"),
     ("1e300", "too fast: the fastest factor is 1000000"), ("1e999", "too fast"),
     ("1e-300/s", "too slow: the slowest rate is 0.001/s"), ("1e300/s", "too fast"),
     ("nan/s", "not a speed"), ("inf", "not a speed"), ("\u0661\u0660x", "not a speed")],
)  # fmt: skip
def test_speeds_whose_due_times_overflow_or_never_come_are_refused(
    speed: str | float, fragment: str
) -> None:
    with pytest.raises(LogQueryError, match=fragment):
        parse_speed(speed)


def test_speed_limits_themselves_are_accepted() -> None:
    assert parse_speed("0.001") == Pace(factor=0.001)
    assert parse_speed("1e6x") == Pace(factor=1e6)
    assert parse_speed("1e-3/s") == Pace(rate=0.001)


def test_clock_paces_by_rate_or_by_the_original_gaps() -> None:
    rate = Clock(Pace(rate=10.0), began=100.0)
    assert [rate.due("1-0"), rate.due("9-0"), rate.due("9-1")] == [100.0, 100.1, 100.2]
    twice = Clock(Pace(factor=2.0), began=100.0)
    assert [twice.due(p) for p in ("5000-0", "5500-3", "7000-0")] == [100.0, 100.25, 101.0]
    assert Clock(Pace(), began=100.0).due("5000-0") is None


def test_replay_goes_to_named_subscribers_only_marked_with_own_task_ids(
    bus: EventBus, redis_client: redis.Redis
) -> None:
    events = [bus.publish(t, {"n": i}) for i, t in enumerate(["order.created", "payment.done"] * 5)]
    bus.declare()  # bound after publishing: nothing was delivered originally
    report = bus.replay(["billing"])
    assert report.status == "done"
    assert report.scanned == 10
    assert report.delivered == {"billing": 5}
    assert report.skipped == 5  # payment.* does not match billing's current patterns
    messages = queued(redis_client, bus, "billing")
    assert event_ids(messages) == [e.id for e in events if e.type == "order.created"]
    assert queued(redis_client, bus, "audit") == []
    # Each replay batch rang the bell of the queues it pushed to.
    assert redis_client.llen(names.bell_key(names.queue_name(bus.exchange, "billing"))) == 1
    assert not redis_client.exists(names.bell_key(names.queue_name(bus.exchange, "audit")))
    for message, event in zip(
        messages, [e for e in events if e.type == "order.created"], strict=True
    ):
        headers = message["headers"]
        assert headers[wire.REPLAY_HEADER] is True
        assert headers["task"] == "billing"
        assert headers["id"] == names.task_id(event.id, "billing", f"replay:{report.replay_id}")
        assert headers["id"] != names.task_id(event.id, "billing")
    again = bus.replay(["billing"])
    assert not set(event_ids(queued(redis_client, bus, "billing"))) - {e.id for e in events}
    first_ids = {m["headers"]["id"] for m in messages}
    all_ids = {m["headers"]["id"] for m in queued(redis_client, bus, "billing")}
    assert len(all_ids) == 10
    assert first_ids < all_ids
    assert again.replay_id != report.replay_id


def test_force_and_all_subscribers(bus: EventBus, redis_client: redis.Redis) -> None:
    bus.publish("payment.done", {})
    bus.declare()
    forced = bus.replay(["billing"], force=True)
    assert forced.delivered == {"billing": 1}
    drain(redis_client, bus)
    everyone = bus.replay()
    assert everyone.delivered == {"audit": 1, "billing": 0}


def test_dry_run_counts_and_writes_nothing(bus: EventBus, redis_client: redis.Redis) -> None:
    for _ in range(3):
        bus.publish("order.created", {})
    bus.declare()
    report = bus.replay(["billing", "audit"], dry_run=True)
    assert (report.status, report.total_delivered) == ("dry-run", 6)
    assert queued(redis_client, bus, "billing") == []
    assert not list(redis_client.scan_iter(match=f"{bus.exchange}:replay:*"))


def test_bad_input_is_refused_and_an_empty_selection_reports_zero(bus: EventBus) -> None:
    bus.publish("order.created", {})
    bus.declare()
    with pytest.raises(UnknownSubscriberError, match="nobody"):
        bus.replay(["billing", "nobody"])
    with pytest.raises(LogQueryError, match="at least one subscriber"):
        bus.replay([])
    with pytest.raises(LogQueryError, match="speed"):
        bus.replay(["billing"], speed="warp")
    with pytest.raises(LogQueryError, match="after until"):
        bus.replay(["billing"], since="2000-0", until="1000-0")
    with pytest.raises(UnknownReplayError, match="nope"):
        bus.replay(resume="nope")
    with pytest.raises(LogQueryError, match="exactly one subscriber"):
        bus.replay(["billing", "audit"], from_checkpoint=True)
    empty = bus.replay(["billing"], types="user.*")
    assert (empty.status, empty.scanned, empty.total_delivered) == ("done", 0, 0)


def test_interrupted_replay_resumes_without_gaps_or_duplicates(
    bus: EventBus, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("wowevent_kombu.log.replay.BATCH", 10)
    events = [bus.publish("order.created", {"n": i}) for i in range(35)]
    bus.declare()
    calls = []

    def stop_after_two_batches(report: Any, fraction: float) -> None:
        calls.append(fraction)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(ReplayInterrupted) as caught:
        bus.replay(["billing"], progress=stop_after_two_batches)
    replay_id = caught.value.replay_id
    assert caught.value.report.status == "interrupted"
    assert len(queued(redis_client, bus, "billing")) == 20
    more = [bus.publish("order.created", {"n": "late"}) for _ in range(3)]
    resumed = bus.replay(resume=replay_id)
    assert resumed.replay_id == replay_id
    assert (resumed.status, resumed.scanned, resumed.delivered) == ("done", 35, {"billing": 35})
    messages = [
        m for m in queued(redis_client, bus, "billing") if wire.REPLAY_HEADER in m["headers"]
    ]
    assert event_ids(messages) == [e.id for e in events]  # the end was fixed at the start
    assert not {e.id for e in more} & set(event_ids(messages))
    assert bus.replay(resume=replay_id).total_delivered == 35  # done: nothing more sent
    assert len(queued(redis_client, bus, "billing")) == 35 + len(more)


def test_from_checkpoint_replays_what_came_after_it(
    bus: EventBus, redis_client: redis.Redis
) -> None:
    events = [bus.publish("order.created", {"n": i}) for i in range(6)]
    bus.declare()
    position = bus.log.position_of(events[3].id)
    assert position is not None
    assert bus.log.advance_checkpoint("billing", position)
    earlier = bus.log.position_of(events[1].id)
    assert earlier is not None
    assert not bus.log.advance_checkpoint("billing", earlier)  # never moves back
    report = bus.replay(["billing"], from_checkpoint=True)
    assert event_ids(queued(redis_client, bus, "billing")) == [e.id for e in events[4:]]
    assert report.total_delivered == 2
    drain(redis_client, bus)
    fresh = bus.replay(["audit"], from_checkpoint=True)  # no checkpoint: the whole log
    assert fresh.total_delivered == 6


def test_cli_replay_and_log_commands(bus: EventBus, redis_url: str) -> None:
    event = bus.publish("order.created", {"n": 1}, correlation_id="c9")
    bus.declare()
    runner = CliRunner()
    base = ["--broker", redis_url, "--exchange", bus.exchange]
    done = runner.invoke(cli, [*base, "replay", "-s", "billing", "--speed", "100/s"])
    assert done.exit_code == 0, done.output
    assert "1 deliveries (billing=1)" in done.output
    bad = runner.invoke(cli, [*base, "replay", "-s", "billing", "--since", "soon"])
    assert bad.exit_code == 2
    assert "not a time" in bad.output
    unknown = runner.invoke(cli, [*base, "replay", "-s", "ghost"])
    assert unknown.exit_code == 1
    assert "ghost" in unknown.output
    read = runner.invoke(cli, [*base, "log", "read", "--correlation-id", "c9", "--json"])
    assert read.exit_code == 0, read.output
    assert '"id": "' + event.id in read.output
    got = runner.invoke(cli, [*base, "log", "get", event.id])
    assert got.exit_code == 0
    assert event.id in got.output
    missing = runner.invoke(cli, [*base, "log", "get", "missing"])
    assert missing.exit_code == 1
    assert "not in the log" in missing.output
    stats = runner.invoke(cli, [*base, "--json", "log", "stats"])
    assert stats.exit_code == 0
    assert '"length": 1' in stats.output
    tail = runner.invoke(cli, [*base, "log", "tail", "-n", "1"])
    assert tail.exit_code == 0
    assert event.id in tail.output


def test_ctrl_c_in_the_cli_leaves_a_resumable_record(
    bus: EventBus, redis_client: redis.Redis, redis_url: str
) -> None:
    for offset in range(0, 1500, 500):
        bus.publish_many(
            Event(type="order.created", data={"n": n}) for n in range(offset, offset + 500)
        )
    bus.declare()
    script = str(Path(sys.executable).with_name("wowevent"))
    command = [script, "--broker", redis_url, "--exchange", bus.exchange, "replay",
               "-s", "billing", "--speed", "1000/s"]  # fmt: skip
    # Ctrl-C at a terminal reaches a process whose SIGINT is at its default. A test run started
    # in the background of a non-interactive shell would hand down SIGINT ignored instead.
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    queue = names.queue_name(bus.exchange, "billing")
    wait_for(lambda: redis_client.llen(queue) >= 100, message="the replay to be under way")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    replay_id = err.split("--resume ")[-1].split()[0]
    assert 100 <= redis_client.llen(queue) < 1500
    resumed = bus.replay(resume=replay_id)  # at the recorded speed
    assert resumed.delivered == {"billing": 1500}
    ids = event_ids(queued(redis_client, bus, "billing"))
    assert len(ids) == len(set(ids)) == 1500
