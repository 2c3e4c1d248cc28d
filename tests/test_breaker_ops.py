"""Operating breakers: ``wowevent breaker``, ``/admin/breakers``, status and Prometheus series."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from click.testing import CliRunner, Result
from prometheus_client import CollectorRegistry, generate_latest

from tests.conftest import ROOT
from tests.web.live import ADMIN, READ, call, live_service
from wowevent_kombu import CircuitBreaker, EventBus
from wowevent_kombu.cli import cli
from wowevent_kombu.cli.observe import status_table
from wowevent_kombu.core.breaker import CLOSED, OPEN
from wowevent_kombu.core.errors import UnknownSubscriberError
from wowevent_kombu.observability.collector import ClusterCollector
from wowevent_kombu.observability.health import HealthRules
from wowevent_kombu.observability.status import ClusterReader
from wowevent_kombu.web.auth import Tokens


@pytest.fixture
def bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    """``guarded`` has a breaker (from the bus's defaults), ``plain`` has none; both bound."""
    made = EventBus(
        Celery("ops", broker=redis_url, set_as_current=False), exchange=exchange,
        subscriber_defaults={"circuit_breaker": CircuitBreaker(min_attempts=5)},
    )  # fmt: skip

    @made.subscriber("order.*", name="guarded")
    def guarded(event: object) -> None: ...

    @made.subscriber("order.*", name="plain", circuit_breaker=None)
    def plain(event: object) -> None: ...

    made.declare()
    yield made
    made.close()


def run(redis_url: str, exchange: str, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--broker", redis_url, "--exchange", exchange, *args])


def test_defaults_give_a_breaker_that_a_subscriber_may_turn_off(bus: EventBus) -> None:
    from wowevent_kombu.worker.breaker import BreakerMiddleware, config_of

    assert config_of(bus.subscribers["guarded"].task) == CircuitBreaker(min_attempts=5)
    assert config_of(bus.subscribers["plain"].task) is None
    kinds = [type(m).__name__ for m in bus.middleware]
    assert kinds.count(BreakerMiddleware.__name__) == 1
    assert kinds[-2:] == ["BreakerMiddleware", "DeadLetterMiddleware"]
    assert [s.subscriber for s in bus.breakers.states()] == ["guarded"]


def test_cli_forces_open_shows_and_closes(bus: EventBus, redis_url: str, exchange: str) -> None:
    opened = run(redis_url, exchange, "--json", "breaker", "open", "plain")
    assert opened.exit_code == 0, opened.output
    assert json.loads(opened.output)["state"] == OPEN
    table = run(redis_url, exchange, "breaker", "status")
    assert table.exit_code == 0, table.output
    assert "plain" in table.output and "forced" in table.output
    listed = json.loads(run(redis_url, exchange, "--json", "breaker", "status").output)
    assert [(b["subscriber"], b["state"]) for b in listed] == [("plain", OPEN)]
    closed = run(redis_url, exchange, "breaker", "close", "plain")
    assert closed.exit_code == 0 and "closed" in closed.output
    assert bus.breakers.state("plain").state == CLOSED
    unknown = run(redis_url, exchange, "breaker", "open", "nobody")
    assert unknown.exit_code == 1 and "nobody" in unknown.output
    with pytest.raises(UnknownSubscriberError):
        bus.breakers.force("nobody", "open")


def test_cli_as_a_real_process(bus: EventBus, redis_url: str, exchange: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "wowevent_kombu.cli", "--broker", redis_url, "--exchange",
         exchange, "--json", "breaker", "open", "guarded"],
        capture_output=True, text=True, timeout=60, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["forced"] is True


def test_status_and_metrics_show_an_open_breaker(
    bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    bus.breakers.force("guarded", "open")
    reader = ClusterReader(redis_client, exchange, HealthRules())
    snapshot = reader.snapshot()
    assert "circuit breaker open: forced open by an operator" in status_table(snapshot)
    subs = {s["subscriber"]: s for s in snapshot.as_dict()["subscribers"]}
    assert subs["guarded"]["breaker"]["state"] == OPEN
    assert subs["plain"]["breaker"] is None
    registry = CollectorRegistry()
    registry.register(ClusterCollector(reader))
    text = generate_latest(registry).decode()
    labels = f'exchange="{exchange}",subscriber="guarded"'
    assert f"wowevent_breaker_state{{{labels}}} 2.0" in text
    counted = f'exchange="{exchange}",state="open",subscriber="guarded"'
    assert f"wowevent_breaker_transitions_total{{{counted}}} 1.0" in text
    assert "wowevent_breaker_open_seconds{" in text
    assert 'subscriber="plain"' not in text.split("wowevent_breaker_state")[1].split("# HELP")[0]


def test_admin_api_lists_opens_and_closes(bus: EventBus) -> None:
    with live_service(bus, tokens=Tokens(admin=ADMIN, read=READ)) as address:
        status, _, body = call(address, "POST", "/admin/breakers/guarded/open", token=ADMIN)
        assert status == 200 and body["state"] == OPEN and body["forced"] is True
        status, _, body = call(address, "GET", "/admin/breakers", token=READ)
        assert status == 200 and [(b["subscriber"], b["state"]) for b in body] == [
            ("guarded", OPEN)
        ]
        status, _, _ = call(address, "POST", "/admin/breakers/guarded/close", token=READ)
        assert status == 403  # the read token may look, not change
        status, _, body = call(address, "POST", "/admin/breakers/guarded/close", token=ADMIN)
        assert status == 200 and body["state"] == CLOSED
        status, _, body = call(address, "POST", "/admin/breakers/nobody/open", token=ADMIN)
        assert status == 404 and "nobody" in body["error"]
        status, _, _ = call(address, "POST", "/admin/breakers/..bad/open", token=ADMIN)
        assert status in (400, 404, 422)
