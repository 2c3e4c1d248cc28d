"""The ``wowevent`` CLI, through click's runner and once as a real subprocess."""

import json
import os
import subprocess
import sys
import threading

import pytest
import redis
from click.testing import CliRunner

from tests.conftest import ROOT, wait_for
from wowevent_kombu.brokers.redis.errors import redis_error
from wowevent_kombu.cli import EXIT_DATAERR, EXIT_UNAVAILABLE, cli
from wowevent_kombu.core import names
from wowevent_kombu.testing.redisserver import free_port


@pytest.fixture
def run(redis_url, exchange):
    runner = CliRunner()

    def invoke(*args, app=None):
        base = ["--broker", redis_url, "--exchange", exchange]
        if app:
            base += ["-A", app]
        env = {"WOWEVENT_TEST_REDIS_URL": redis_url, "WOWEVENT_TEST_EXCHANGE": exchange}
        return runner.invoke(cli, [*base, *args], env=env, catch_exceptions=False)

    return invoke


def test_declare_subscribers_publish_unbind(run, redis_client, exchange):
    result = run("declare", app="tests.apps.shop")
    assert result.exit_code == 0, result.output
    assert "declared billing: order.*" in result.output
    listed = run("--json", "subscribers")
    rows = {r["subscriber"]: r for r in json.loads(listed.output)}
    assert rows["audit"]["patterns"] == ["order.#", "payment.*"]
    published = run("--json", "publish", "order.created", '{"order_id": "1"}', "--subject", "o1")
    assert published.exit_code == 0, published.output
    doc = json.loads(published.output)
    assert doc["type"] == "order.created" and doc["subject"] == "o1"
    assert doc["subscribers"] == ["audit", "billing"]
    text = run("publish", "order.created", '{"order_id": "2"}')
    assert "to 2 subscriber(s): audit, billing" in text.stdout and not text.stderr
    rows = {r["subscriber"]: r for r in json.loads(run("--json", "subscribers").output)}
    assert rows["billing"]["waiting"] == 2 and rows["steady"]["waiting"] == 0
    unbound = run("unbind", "billing")
    assert unbound.exit_code == 0 and "order.*" in unbound.output
    assert "billing" not in run("subscribers").output


def test_bad_input_gets_clear_errors(run, redis_client, exchange):
    result = run("publish", "order..created", "{}")
    assert result.exit_code == EXIT_DATAERR and "empty word" in result.output
    result = run("publish", "order.created", "{not json")
    assert result.exit_code == EXIT_DATAERR and "not valid JSON" in result.output
    result = run("publish", "order.created", '{"x": NaN}')
    assert result.exit_code == EXIT_DATAERR
    result = run("unbind", "ghost")
    assert result.exit_code == 1 and "ghost" in result.output
    result = run("publish", "nobody.here", "{}")
    assert result.exit_code == 0 and "to 0 subscriber(s)" in result.stdout
    assert "warning: no subscriber is bound" in result.stderr and "--mandatory" in result.stderr
    redis_client.delete(names.log_key(exchange))
    result = run("publish", "nobody.here", "{}", "--mandatory")
    assert result.exit_code == 1 and "no subscriber" in result.output
    assert redis_client.xlen(names.log_key(exchange)) == 0


def test_redis_down_is_reported_not_a_traceback(exchange):
    runner = CliRunner()
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = runner.invoke(cli, ["--broker", url, "--exchange", exchange, "publish", "a.b"])
    assert result.exit_code == EXIT_UNAVAILABLE
    assert "Traceback" not in result.output and "failed against" in result.output
    result = runner.invoke(cli, ["--broker", url, "--exchange", exchange, "subscribers"])
    assert result.exit_code == EXIT_UNAVAILABLE


def test_tail_prints_live_events_and_unbinds_on_exit(redis_url, redis_client, exchange):
    """Run as a real subprocess, the way an operator runs it."""
    env = {**os.environ, "WOWEVENT_BROKER_URL": redis_url, "WOWEVENT_EXCHANGE": exchange}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wowevent_kombu.cli", "--json", "tail", "order.#", "--limit", "2",
         "--timeout", "20"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for(lambda: redis_client.scard(names.binding_table_key(exchange)), message="tail binding")
    from celery import Celery

    from wowevent_kombu import EventBus

    bus = EventBus(Celery("p", broker=redis_url, set_as_current=False), exchange=exchange)
    bus.publish("order.created", {"n": 1})
    bus.publish("payment.done", {"n": 2})  # not matched
    bus.publish("order", {"n": 3})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(d["type"], d["data"]["n"]) for d in lines] == [("order.created", 1), ("order", 3)]
    assert redis_client.scard(names.binding_table_key(exchange)) == 0  # unbound on exit
    bus.close()


def test_consume_loop_acks_after_handler(redis_url, redis_client, exchange):
    from celery import Celery

    from wowevent_kombu import EventBus

    bus = EventBus(Celery("c", broker=redis_url, set_as_current=False), exchange=exchange)
    got = []
    done = threading.Event()

    def run_loop():
        bus.consume({"order.*": got.append}, group="script", limit=3, timeout=20)
        done.set()

    thread = threading.Thread(target=run_loop)
    thread.start()
    wait_for(lambda: "script" in bus.bindings(), message="consumer binding")
    for i in range(3):
        bus.publish("order.created", {"i": i})
    thread.join(30)
    assert done.is_set()
    assert [e.data["i"] for e in got] == [0, 1, 2]
    assert redis_client.llen(names.queue_name(exchange, "script")) == 0
    assert bus.bindings()["script"] == ["order.*"]  # a named group stays bound
    bus.close()


def test_celery_subcommand_is_mounted(redis_url, exchange):
    env = {**os.environ, "WOWEVENT_TEST_REDIS_URL": redis_url, "WOWEVENT_TEST_EXCHANGE": exchange,
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "tests.apps.shop", "wowevent", "--json", "declare"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["billing"] == ["order.*"]


@pytest.mark.parametrize(
    ("cause", "doing", "may_have_committed"),
    [(redis.TimeoutError("Timeout reading from socket"), "publishing", True),
     (redis.ConnectionError("Connection closed by server."), "publishing", True),
     (redis.AuthenticationError("invalid username-password pair"), "publishing", False),
     (redis.exceptions.AuthorizationError("not allowed"), "publishing", False),
     (redis.BusyLoadingError("Redis is loading the dataset in memory"), "publishing", False),
     (redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
      "publishing", False),
     (redis.TimeoutError("Timeout reading from socket"), "reading the binding table", False)],
    ids=["timeout", "connection-lost", "auth", "authorization", "loading", "refused",
         "read-timeout"],
)  # fmt: skip
def test_may_have_committed_only_where_a_publish_was_sent(cause, doing, may_have_committed):
    error = redis_error(cause, doing, "redis://127.0.0.1:6379/0", ("e1",))
    text = str(error)
    assert error.outcome_unknown is may_have_committed
    assert ("may have committed" in text) is may_have_committed
    assert ("nothing was written" in text) is not may_have_committed


def test_help_shows_defaults_and_environment_variables():
    from wowevent_kombu.cli import celery_command

    text = CliRunner().invoke(cli, ["--help"], terminal_width=200).output
    for shown in ("WOWEVENT_APP", "WOWEVENT_BROKER_URL", "redis://localhost:6379/0",
                  "WOWEVENT_EXCHANGE", "[default: wowevent]"):  # fmt: skip
        assert shown in text, shown
    under_celery = CliRunner().invoke(celery_command, ["--help"], terminal_width=200).output
    assert "--app" not in under_celery and "--exchange" in under_celery
    tail_help = CliRunner().invoke(cli, ["tail", "--help"], terminal_width=200).output
    assert "WOWEVENT_TAIL_TTL" in tail_help and "SIGTERM" in tail_help
