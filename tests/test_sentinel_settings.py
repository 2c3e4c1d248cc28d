"""Sentinel broker URLs and WAIT-based publishing: settings, clients and the WAIT round trip."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from redis.sentinel import SentinelConnectionPool

from wowevent_kombu import ConfigurationError, EventBus, ReplicationError, Settings
from wowevent_kombu.brokers.redis.connection import kombu_transport_options, make_client
from wowevent_kombu.core.urls import redact_url, sentinel_hosts

URL = "sentinel://:s3cret@127.0.0.1:26379/2;sentinel://127.0.0.1:26380"


def test_sentinel_url_reads_master_name_and_sentinel_credentials_from_transport_options() -> None:
    conf = {
        "broker_url": URL,
        "broker_transport_options": {
            "master_name": "orders",
            "sentinel_kwargs": {"username": "watcher", "password": "p4ss"},
        },
    }
    settings = Settings.load(conf, {"WOWEVENT_MASTER_NAME": "ignored"})
    assert settings.master_name == "orders"  # where Kombu reads it wins, like broker_url
    assert (settings.sentinel_username, settings.sentinel_password) == ("watcher", "p4ss")
    assert sentinel_hosts(settings.broker_url) == [("127.0.0.1", 26379), ("127.0.0.1", 26380)]
    shown = repr(settings)
    assert "s3cret" not in shown and "p4ss" not in shown and "sentinel_password='***'" in shown


def test_sentinel_settings_from_the_environment_alone() -> None:
    env = {
        "WOWEVENT_BROKER_URL": URL,
        "WOWEVENT_MASTER_NAME": "orders",
        "WOWEVENT_SENTINEL_PASSWORD": "p4ss",
        "WOWEVENT_WAIT_REPLICAS": "1",
        "WOWEVENT_WAIT_TIMEOUT_MS": "250",
    }
    settings = Settings.load({}, env)
    assert settings.master_name == "orders" and settings.sentinel_password == "p4ss"
    assert (settings.wait_replicas, settings.wait_timeout_ms) == (1, 250)
    assert kombu_transport_options(settings) == {
        "visibility_timeout": 3600.0,
        "master_name": "orders",
        "sentinel_kwargs": {"password": "p4ss"},
    }


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"broker_url": URL}, "master_name"),
        ({"broker_url": "sentinel://a:1;redis://b:2", "master_name": "m"}, "every ';'"),
        ({"broker_url": "sentinel://:1", "master_name": "m"}, "sentinel://host"),
        ({"broker_url": "sentinel://a:port", "master_name": "m"}, "bad sentinel URL"),
        ({"wait_replicas": -1}, "wait_replicas"),
        ({"wait_replicas": 1, "wait_timeout_ms": 0}, "WAIT 0 would block forever"),
        ({"wait_replicas": 1, "wait_timeout_ms": 6000, "publish_timeout": 5}, "between 1"),
    ],
)
def test_bad_sentinel_and_wait_settings_are_refused(
    kwargs: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_redaction_covers_every_sentinel_part() -> None:
    url = "sentinel://:a@h1:26379;sentinel://:b@h2:26379"
    assert redact_url(url) == "sentinel://:***@h1:26379;sentinel://:***@h2:26379"


def test_sentinel_client_has_bounded_timeouts_no_retries_and_the_first_parts_credentials() -> None:
    settings = Settings(broker_url=URL, master_name="orders", publish_timeout=1.5)
    client = make_client(settings)
    try:
        pool = client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)
        assert pool.service_name == "orders"
        kwargs = pool.connection_kwargs
        assert (kwargs["db"], kwargs["password"]) == (2, "s3cret")
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 1.5
        calls = []

        def refused() -> None:
            calls.append(1)
            raise redis.ConnectionError("refused")

        # No retries: one call, the error raised (asked by behaviour, as redis-py < 5.3 has no
        # Retry.get_retries()).
        with pytest.raises(redis.ConnectionError):
            kwargs["retry"].call_with_retry(refused, lambda error: None)
        assert calls == [1]
        sentinel = pool.sentinel_manager.sentinels[0]
        assert sentinel.connection_pool.connection_kwargs["socket_timeout"] == 1.5
    finally:
        client.close()


@pytest.mark.parametrize(
    "url",
    [
        "sentinel://:p%40ss%2Fword@127.0.0.1:26379/2;sentinel://127.0.0.1:26380",
        "sentinel://127.0.0.1:26379/2?password=p%40ss%2Fword;sentinel://127.0.0.1:26380",
    ],
    ids=["userinfo", "query"],
)
def test_the_primary_gets_the_decoded_password_of_either_url_form(url: str) -> None:
    client = make_client(Settings(broker_url=url, master_name="orders"))
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["db"], kwargs["password"]) == (2, "p@ss/word")  # as Kombu reads it
    finally:
        client.close()


@pytest.fixture
def waiting_bus(redis_url: str, exchange: str) -> Iterator[EventBus]:
    app = Celery("wait", broker=redis_url, set_as_current=False)
    bus = EventBus(app, exchange=exchange, wait_replicas=1, wait_timeout_ms=50)
    bus.transport.bind(f"{exchange}.sink", ["order.*"])
    yield bus
    bus.close()


def test_wait_replicas_raises_when_no_replica_acknowledges(
    waiting_bus: EventBus, redis_client: redis.Redis, exchange: str
) -> None:
    replicas = int(redis_client.info("replication")["connected_slaves"])
    if replicas:
        pytest.skip("the test Redis has replicas; this test needs a standalone one")
    with pytest.raises(ReplicationError, match="only 0 of 1 replica") as caught:
        waiting_bus.publish("order.created", {"n": 1})
    error = caught.value
    assert error.outcome_unknown and error.acknowledged == 0
    # The publish is on the primary: logged and delivered, only not known to be replicated.
    (event_id,) = error.event_ids
    assert waiting_bus.log.get(event_id) is not None
    assert redis_client.llen(f"{exchange}.sink") == 1


def test_wait_is_sent_only_when_asked(
    redis_url: str, exchange: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wowevent_kombu.brokers.redis import atomic

    sent: list[object] = []
    real = atomic.PinnedTransactions.run_script

    def spy(
        self: object, script: object, keys: object, args: object, *, then: object = ()
    ) -> list[object]:
        sent.append(then)
        return real(self, script, keys, args, then=then)  # type: ignore[arg-type]

    monkeypatch.setattr(atomic.PinnedTransactions, "run_script", spy)
    for replicas in (0, 1):
        app = Celery("spy", broker=redis_url, set_as_current=False)
        bus = EventBus(app, exchange=exchange, wait_replicas=replicas, wait_timeout_ms=20)
        try:
            bus.transport.bind(f"{exchange}.sink", ["order.*"])
            with contextlib.suppress(ReplicationError):
                bus.publish("order.created", {})
        finally:
            bus.close()
    assert sent == [[], [("WAIT", 1, 20)]]
