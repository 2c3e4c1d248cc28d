"""``wowevent dlq``: click's runner against real Redis, and once as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest
import redis
from celery import Celery
from click.testing import CliRunner, Result

from tests.conftest import ROOT
from tests.test_deadletter import make
from wowevent_kombu import EventBus, InvalidFilterError
from wowevent_kombu.cli import cli
from wowevent_kombu.cli.types import parse_time
from wowevent_kombu.core import names
from wowevent_kombu.core.event import Event


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    """A bus whose ``billing`` subscriber is bound in Redis, with three records."""
    bus = EventBus(Celery("t", broker=redis_url, set_as_current=False), exchange=exchange)

    @bus.subscriber("order.*", name="billing")
    def billing(event: Event) -> None: ...

    bus.declare()
    store = bus.dead_letters
    store.write(make(1, at=1000.0))
    store.write(make(2, at=2000.0, reason="rejected"))
    store.write(make(3, at=3000.0, subscriber="ghost"))
    yield bus
    bus.close()


Run = Callable[..., Result]


@pytest.fixture
def run(redis_url: str, exchange: str) -> Run:
    """``wowevent --broker <test redis> --exchange <test exchange> ARGS...`` in-process."""
    runner = CliRunner()

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, ["--broker", redis_url, "--exchange", exchange, *args])

    return invoke


def test_list_as_table_and_json_with_filters_and_cursor(bus: EventBus, run: Run) -> None:
    table = run("dlq", "list")
    assert table.exit_code == 0, table.output
    assert "rec-00001" in table.output
    assert "RuntimeError: second" in table.output
    assert "ghost" in table.output

    data = json.loads(run("--json", "dlq", "list", "--reason", "rejected").output)
    assert json.loads(run("dlq", "list", "--reason", "rejected", "--json").output) == data
    assert [r["id"] for r in data["records"]] == ["rec-00002"]
    assert data["records"][0]["attempts"] == 2

    first = json.loads(run("--json", "dlq", "list", "--limit", "2").output)
    assert len(first["records"]) == 2
    rest = json.loads(run("--json", "dlq", "list", "--cursor", first["cursor"]).output)
    assert [r["id"] for r in rest["records"]] == ["rec-00003"]
    assert rest["cursor"] is None

    timed = json.loads(run("--json", "dlq", "list", "--since", "1500", "--until", "2500").output)
    assert [r["id"] for r in timed["records"]] == ["rec-00002"]


def test_show_prints_every_attempt_and_unknown_ids_exit_1(bus: EventBus, run: Run) -> None:
    shown = run("dlq", "show", "rec-00001")
    assert shown.exit_code == 0
    assert "--- attempt 2" in shown.output
    assert "Traceback..." in shown.output
    assert '"n": 1' in shown.output
    missing = run("dlq", "show", "nope")
    assert missing.exit_code == 1
    assert "no dead-letter record 'nope'" in missing.output


def test_retry_dry_run_then_real_and_refusals_change_nothing(
    bus: EventBus, run: Run, redis_client: redis.Redis, exchange: str
) -> None:
    queue = names.queue_name(exchange, "billing")
    ghost = run("dlq", "retry", "rec-00001", "rec-00003")
    assert ghost.exit_code == 1
    assert "ghost are no longer bound" in ghost.output
    everything = run("dlq", "retry", "--all")
    assert everything.exit_code == 1
    assert bus.dead_letters.count() == 3
    assert redis_client.llen(queue) == 0

    dry = run("dlq", "retry", "--all", "--subscriber", "billing", "--dry-run")
    assert dry.exit_code == 0
    assert "would re-drive 2 record(s)" in dry.output
    assert bus.dead_letters.count() == 3

    done = json.loads(run("--json", "dlq", "retry", "--all", "--subscriber", "billing").output)
    assert sorted(done["retried"]) == ["rec-00001", "rec-00002"]
    assert redis_client.llen(queue) == 2
    assert bus.dead_letters.count() == 1


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["retry"], "needs record ids, or --all"),
        (["retry", "rec-00001", "--all"], "not both"),
        (["retry", "--all", "--since", "last tuesday"], "is not ISO 8601"),
        (["list", "--reason", "bored"], "Invalid value for '--reason'"),
        (["list", "--cursor", "x"], "malformed cursor"),
        (["purge", "--all"], "add --yes"),
    ],
)
def test_bad_usage_exits_2_and_changes_nothing(
    bus: EventBus, run: Run, args: list[str], fragment: str
) -> None:
    result = run("dlq", *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert bus.dead_letters.count() == 3


def test_purge_and_stats(bus: EventBus, run: Run) -> None:
    stats = json.loads(run("--json", "dlq", "stats").output)
    assert stats["total"] == 3
    assert stats["by_subscriber"] == {"billing": 2, "ghost": 1}
    assert stats["by_reason"]["rejected"] == 1

    dry = run("dlq", "purge", "--all", "--subscriber", "ghost", "--dry-run")
    assert "would purge 1 record(s)" in dry.output
    assert bus.dead_letters.count() == 3
    assert run("dlq", "purge", "--all", "--subscriber", "ghost", "--yes").exit_code == 0
    assert run("dlq", "purge", "rec-00001", "--yes").exit_code == 0
    assert [r.id for r in bus.dead_letters.list().records] == ["rec-00002"]
    assert run("dlq", "purge", "rec-00001", "--yes").exit_code == 1


def test_parse_time_forms() -> None:
    assert parse_time("90", now=1000.0) == 90.0
    assert parse_time("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_time("1970-01-01T00:01:00") == 60.0
    assert parse_time("1970-01-01T01:01:00+01:00") == 60.0
    assert parse_time(None) is None
    with pytest.raises(InvalidFilterError):
        parse_time("soon")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("nan", "not epoch seconds"), ("inf", "not epoch seconds"), ("-1", "not epoch seconds"),
     ("1e300", "not epoch seconds"), ("253402300800", "not epoch seconds"),
     ("999999d", "before 1970"), ("0001-01-01T00:00", "before 1970"),
     ("9999-12-31T23:59:59-01:00", "after 9999"), ("\u0661\u0662\u0663", "not ISO 8601")],
)  # fmt: skip
def test_parse_time_refuses_times_outside_1970_to_9999(text: str, fragment: str) -> None:
    with pytest.raises(InvalidFilterError, match=fragment):
        parse_time(text, now=10_000.0)


def test_celery_mounted_command_in_a_real_process(
    bus: EventBus, redis_url: str, exchange: str
) -> None:
    env = {
        **os.environ,
        "WOWEVENT_TEST_REDIS_URL": redis_url,
        "WOWEVENT_TEST_EXCHANGE": exchange,
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tests.apps.dlq", "wowevent", "--json",
         "dlq", "list", "--subscriber", "billing"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in json.loads(done.stdout)["records"]] == ["rec-00001", "rec-00002"]


def test_redis_down_is_exit_69() -> None:
    result = CliRunner().invoke(cli, ["--broker", "redis://127.0.0.1:1/0", "dlq", "stats"])
    assert result.exit_code == 69
    assert "Redis is unavailable" in result.output
