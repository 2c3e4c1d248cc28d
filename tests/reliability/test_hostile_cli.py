"""Hostile CLI values: one line naming the option, exit 2, nothing written; and a replay that
fails mid-way leaves a record saying why, with the id to resume it printed."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from click.testing import CliRunner, Result

from tests.conftest import wait_for
from tests.test_deadletter import make
from wowevent_kombu import Event, EventBus
from wowevent_kombu.cli import EXIT_UNAVAILABLE, EXIT_USAGE, cli
from wowevent_kombu.core import names, wire
from wowevent_kombu.testing.redisserver import free_port

SECRET = "s3cret"


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    """A bound ``billing`` subscriber, three logged events and two dead letters: every hostile
    command below would deliver, re-drive or delete something if it ran."""
    made = EventBus(Celery("hostile-cli", broker=redis_url, set_as_current=False),
                    exchange=exchange)  # fmt: skip

    @made.subscriber("order.*", name="billing")
    def billing(event: Event) -> None: ...

    made.declare()
    for n in range(3):
        made.publish("order.created", {"n": n})
    made.dead_letters.write(make(1, at=1000.0))
    made.dead_letters.write(make(2, at=2000.0))
    yield made
    made.close()


def snapshot(client: redis.Redis, exchange: str) -> dict[bytes, bytes | None]:
    """Every key of the test's bus with its serialised value."""
    keys = [*client.scan_iter(match=f"{exchange}*", count=1000), f"_kombu.binding.{exchange}"]
    return {k if isinstance(k, bytes) else k.encode(): client.dump(k) for k in keys}


def invoke(redis_url: str, exchange: str, args: list[str]) -> Result:
    return CliRunner().invoke(cli, ["--broker", redis_url, "--exchange", exchange, *args])


SINCE_UNTIL = ["999999d", "99999999999d", "1e300", "-1", "inf", "nan", "0001-01-01T00:00",
               "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]  # fmt: skip
SPEEDS = ["1e-300", "0", "-1", "nan", "inf", "1e300", "1e-300/s", "0/s", "nan/s", "1e300/s"]
HOSTILE = [
    *[(["replay", "-s", "billing", "--speed", v], "--speed") for v in SPEEDS],
    *[(["replay", "-s", "billing", opt, v], opt) for opt in ("--since", "--until")
      for v in SINCE_UNTIL],
    (["replay", "-s", "billing", "--since", "99999999999999999999"], "--since"),
    *[(["log", "read", opt, v], opt) for opt in ("--since", "--until") for v in SINCE_UNTIL],
    (["log", "read", "--since", "18446744073709551616-0"], "--since"),
    (["log", "read", "--cursor", "99999999999999999999"], "--cursor"),
    (["log", "read", "--limit", "0"], "--limit"),
    (["log", "tail", "-n", "99999999999999999999999"], "--count"),
    (["log", "tail", "-n", "0"], "--count"),
    *[(["dlq", "list", opt, v], opt) for opt in ("--since", "--until") for v in SINCE_UNTIL],
    (["dlq", "list", "--cursor", "nan|rec-00001"], "--cursor"),
    (["dlq", "list", "--limit", "0"], "--limit"),
    (["dlq", "retry", "--all", "--since", "nan"], "--since"),
    (["dlq", "retry", "--all", "--until", "99999999999d"], "--until"),
    (["dlq", "purge", "--all", "--yes", "--until", "inf"], "--until"),
    (["dlq", "purge", "--all", "--yes", "--since", "0001-01-01T00:00"], "--since"),
    *[(["status", "--window", v], "--window") for v in ("nan", "inf", "-inf", "0", "1e300")],
    (["tail", "order.*", "--timeout", "nan"], "--timeout"),
    (["tail", "order.*", "--timeout", "-1"], "--timeout"),
    (["tail", "order.*", "--limit", "0"], "--limit"),
    (["serve", "--port", "70000"], "--port"),
    *[(["--broker", url, "subscribers"], "--broker") for url in (
        "redis://127.0.0.1:abc/0", "redis://[::1/0", "redis://[zz::1]:6379/0",
        f"redis://:{SECRET}@127.0.0.1:abc/0", f"redis://:{SECRET}@[::1/0", "redis://h:99999/0",
        "sentinel://127.0.0.1:26379;sentinel://127.0.0.1:x", "ftp://127.0.0.1/0")],
    (["--broker", "redis://127.0.0.1:abc/0", "publish", "order.created", "{}"], "--broker"),
    (["--broker", "redis://127.0.0.1:abc/0", "schemas", "list"], "--broker"),
    (["--store", f"redis://:{SECRET}@[::1/0", "log", "stats"], "--store"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "option"), HOSTILE, ids=[" ".join(a) for a, _ in HOSTILE])
def test_hostile_value_is_one_usage_line_naming_the_option(
    bus: EventBus, redis_client: redis.Redis, redis_url: str, exchange: str,
    args: list[str], option: str,
) -> None:  # fmt: skip
    before = snapshot(redis_client, exchange)
    result = invoke(redis_url, exchange, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == EXIT_USAGE, result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith(f"error: {option}: "), result.output
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    # Nothing half-written: no delivery, no replay record, no dead letter re-driven or purged.
    assert snapshot(redis_client, exchange) == before


def test_the_option_named_says_where_an_environment_value_came_from(
    redis_url: str, exchange: str
) -> None:
    result = CliRunner().invoke(cli, ["--exchange", exchange, "subscribers"],
                                env={"WOWEVENT_BROKER_URL": "redis://[::1/0"})  # fmt: skip
    assert result.exit_code == EXIT_USAGE
    assert result.output.startswith("error: --broker (from WOWEVENT_BROKER_URL): ")


@pytest.mark.parametrize(
    "args",
    [["publish", "order.created", "{}"], ["subscribers"], ["log", "read"], ["replay"],
     ["dlq", "list"], ["status"], ["schemas", "list"]],
    ids=lambda a: " ".join(a),
)  # fmt: skip
def test_a_password_in_the_url_query_is_never_printed(exchange: str, args: list[str]) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0?password={SECRET}"
    result = CliRunner().invoke(cli, ["--broker", url, "--exchange", exchange, *args])
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "Traceback" not in result.output
    assert SECRET not in result.output


# -- nothing written: no "Redis may have committed it" --------------------------------------

MAY_HAVE_COMMITTED = "may have committed"


def test_refused_connections_do_not_say_redis_may_have_committed(private_redis, exchange):
    server = private_redis(extra=["--requirepass", SECRET])
    refused = f"redis://127.0.0.1:{free_port()}/0"
    for url in (f"redis://:wrong@127.0.0.1:{server.port}/0", server.url, refused):
        result = CliRunner().invoke(cli, ["--broker", url, "--exchange", exchange,
                                          "publish", "order.created", "{}"])  # fmt: skip
        assert result.exit_code == EXIT_UNAVAILABLE, result.output
        assert "nothing was written" in result.output, result.output
        assert MAY_HAVE_COMMITTED not in result.output
    assert redis.Redis(port=server.port, password=SECRET).dbsize() == 0


def test_a_redis_still_loading_does_not_say_it_may_have_committed(private_redis, exchange):
    server = private_redis(extra=["--enable-debug-command", "local"])
    client = redis.Redis.from_url(server.url)
    pipe = client.pipeline(transaction=False)
    for n in range(20_000):
        pipe.set(f"{exchange}:filler:{n}", "x")
    pipe.execute()
    client.config_set("key-load-delay", 100)  # microseconds per key: a load of ~2 s
    client.config_set("loading-process-events-interval-bytes", 1024)
    reload = threading.Thread(target=lambda: redis.Redis.from_url(
        server.url, socket_timeout=60).execute_command("DEBUG", "RELOAD"))  # fmt: skip
    reload.start()

    def loading() -> bool:
        try:
            client.ping()
        except redis.BusyLoadingError:
            return True
        return False

    wait_for(loading, message="Redis to be loading its data")
    result = CliRunner().invoke(cli, ["--broker", server.url, "--exchange", exchange,
                                      "publish", "order.created", "{}"])  # fmt: skip
    reload.join()
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "BusyLoadingError" in result.output
    assert "still loading" in result.output
    assert MAY_HAVE_COMMITTED not in result.output
    assert client.xlen(names.log_key(exchange)) == 0


# -- a replay failing mid-way -----------------------------------------------------------------

EVENTS = 1500


def replay_setup(url: str, exchange: str) -> EventBus:
    made = EventBus(Celery("replayer", broker=url, set_as_current=False), exchange=exchange)

    @made.subscriber("order.*", name="billing")
    def billing(event: Event) -> None: ...

    for offset in range(0, EVENTS, 500):
        made.publish_many(
            Event(type="order.created", data={"n": n}) for n in range(offset, offset + 500)
        )
    made.declare()
    return made


def start_replay(url: str, exchange: str) -> subprocess.Popen[str]:
    script = str(Path(sys.executable).with_name("wowevent"))
    return subprocess.Popen(
        [script, "--broker", url, "--exchange", exchange, "replay", "-s", "billing",
         "--speed", "1000/s"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def replayed_ids(client: redis.Redis, exchange: str) -> list[str]:
    raw = client.lrange(names.queue_name(exchange, "billing"), 0, -1)
    return [wire.decode_task_message(m)["decoded_body"][1]["event"]["id"] for m in raw]


def test_a_replay_refused_mid_way_is_recorded_failed_and_resumes(private_redis, tmp_path,
                                                                 exchange):  # fmt: skip
    acl = tmp_path / "users.acl"
    acl.write_text(f"user default on >{SECRET} ~* &* +@all\nuser replayer on >pw ~* &* +@all\n")
    server = private_redis(extra=["--aclfile", str(acl)])
    admin = redis.Redis(port=server.port, password=SECRET)
    url = f"redis://replayer:pw@127.0.0.1:{server.port}/0"
    bus = replay_setup(url, exchange)
    queue = names.queue_name(exchange, "billing")
    proc = start_replay(url, exchange)
    wait_for(lambda: admin.llen(queue) >= 100, message="the replay to be under way")
    admin.execute_command("ACL", "SETUSER", "replayer", "-lpush")  # its next batch is refused
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_UNAVAILABLE, (out, err)
    assert "Traceback" not in out + err
    assert "failed after" in err and "no permissions to run the 'lpush' command" in err
    replay_id = err.split("--resume ")[-1].split()[0]
    record = {k.decode(): v.decode() for k, v in
              admin.hgetall(names.replay_key(exchange, replay_id)).items()}  # fmt: skip
    assert record["status"] == "failed"
    assert record["error"].startswith("NoPermissionError: ")
    delivered = admin.llen(queue)
    assert 100 <= delivered < EVENTS
    assert int(record["delivered:billing"]) == delivered  # the record matches the queue
    admin.execute_command("ACL", "SETUSER", "replayer", "+lpush")
    resumed = bus.replay(resume=replay_id)
    assert (resumed.status, resumed.delivered, resumed.error) == ("done", {"billing": EVENTS}, None)
    ids = replayed_ids(admin, exchange)
    assert len(ids) == len(set(ids)) == EVENTS
    bus.close()


def test_a_replay_whose_redis_goes_away_prints_the_id_to_resume(private_redis, exchange):
    server = private_redis(appendonly=True, appendfsync="always")
    client = redis.Redis.from_url(server.url)
    bus = replay_setup(server.url, exchange)
    queue = names.queue_name(exchange, "billing")
    proc = start_replay(server.url, exchange)
    wait_for(lambda: client.llen(queue) >= 100, message="the replay to be under way")
    server.stop(kill=True)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_UNAVAILABLE, (out, err)
    assert "Traceback" not in out + err
    assert "failed after" in err and "ConnectionError" in err
    assert "its record still says 'running'" in err  # Redis is gone: it cannot say more
    replay_id = err.split("--resume ")[-1].split()[0]
    server.start()  # same port and data: every committed batch is in the AOF
    resumed = bus.replay(resume=replay_id)
    assert (resumed.status, resumed.delivered) == ("done", {"billing": EVENTS})
    ids = replayed_ids(client, exchange)
    assert len(ids) == len(set(ids)) == EVENTS
    bus.close()
