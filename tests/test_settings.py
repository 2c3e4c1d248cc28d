"""Settings are read in one place, validated, and never show a password."""

import pytest
from celery import Celery

from wowevent_kombu import ConfigurationError, EventBus, Settings
from wowevent_kombu.core.urls import credentials_in_userinfo, redact_url
from wowevent_kombu.worker.steps import check_worker_config


def test_precedence_explicit_env_conf():
    conf = {"broker_url": "redis://conf:6379/1",
            "broker_transport_options": {"visibility_timeout": 120}}  # fmt: skip
    env = {"WOWEVENT_BROKER_URL": "redis://env:6379/2", "WOWEVENT_PUBLISH_TIMEOUT": "2.5"}
    s = Settings.load(conf, env, max_event_bytes=1000)
    assert s.broker_url == "redis://conf:6379/1"  # the app's broker wins: workers consume there
    assert s.publish_timeout == 2.5 and s.max_event_bytes == 1000 and s.visibility_timeout == 120
    assert Settings.load({}, env).broker_url == "redis://env:6379/2"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [({"broker_url": "kafka://x"}, "scheme"), ({"exchange": "a:b"}, "exchange"),
     ({"broker_url": "amqp://x"}, "store_url"),
     ({"broker_url": "amqp://x", "store_url": "amqp://y"}, "not a Redis URL"),
     ({"publish_timeout": 0}, "above 0"), ({"max_event_bytes": 0}, "at least 1")],
)  # fmt: skip
def test_bad_settings_are_refused(kwargs, fragment):
    with pytest.raises(ConfigurationError, match=fragment):
        Settings(**kwargs)


def test_bad_env_value_names_the_variable():
    with pytest.raises(ConfigurationError, match="WOWEVENT_PUBLISH_TIMEOUT"):
        Settings.load({}, {"WOWEVENT_PUBLISH_TIMEOUT": "soon"})


def test_global_keyprefix_is_refused():
    with pytest.raises(ConfigurationError, match="global_keyprefix"):
        Settings.load({"broker_transport_options": {"global_keyprefix": "x"}}, {})


def test_passwords_are_redacted():
    assert redact_url("redis://user:pw@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("rediss://:pw@host/0") == "rediss://:***@host/0"
    assert "pw" not in repr(Settings(broker_url="redis://u:pw@h:1/0"))


def test_startup_check_compares_retry_delay_with_visibility():
    app = Celery("chk", set_as_current=False)
    bus = EventBus(app, exchange="chk")

    @bus.subscriber("a.*", name="slowretry", retry_backoff=True, retry_backoff_max=600,
                    time_limit=30)  # fmt: skip
    def handler(event):
        pass

    assert check_worker_config(app, 3600, bus.subscribers.values()) == []
    with pytest.raises(ConfigurationError, match="slowretry"):
        check_worker_config(app, 600, bus.subscribers.values())
    app.conf.accept_content = ["json", "pickle"]
    with pytest.raises(ConfigurationError, match="JSON only"):
        check_worker_config(app, 3600, bus.subscribers.values())


def test_startup_check_counts_the_workers_own_time_limit():
    """`celery worker --time-limit` limits every task without its own limit: it counts too."""
    app = Celery("chk", set_as_current=False)
    bus = EventBus(app, exchange="chk")

    @bus.subscriber("a.*", name="nolimit", max_retries=3, default_retry_delay=10)
    def handler(event):
        pass

    assert "no time_limit" in check_worker_config(app, 3600, bus.subscribers.values())[0]
    assert check_worker_config(app, 3600, bus.subscribers.values(), 120) == []
    with pytest.raises(ConfigurationError, match="nolimit"):
        check_worker_config(app, 3600, bus.subscribers.values(), 3595)


def test_rabbitmq_broker_keeps_its_state_in_the_store_redis():
    s = Settings.load(
        {"broker_url": "amqp://guest:secret@rabbit//", "wowevent_store_url": "redis://:pw@r/3"}, {}
    )
    assert s.amqp and s.redis_url == "redis://:pw@r/3"
    assert "secret" not in repr(s) and "pw" not in repr(s)
    env = {"WOWEVENT_STORE_URL": "redis://env/1"}
    assert Settings.load({"broker_url": "amqp://r//"}, env).redis_url == "redis://env/1"
    redis_only = Settings(broker_url="redis://a/0")
    assert not redis_only.amqp and redis_only.redis_url == "redis://a/0"


@pytest.mark.parametrize(
    ("url", "expected"),
    [("redis://h:6379/0?password=pw", "redis://:pw@h:6379/0"),
     ("redis://h/0?username=bob&password=p%40ss&db=2", "redis://bob:p%40ss@h/0?db=2"),
     ("redis://bob@h/0?password=a+b", "redis://bob:a%20b@h/0"),
     ("redis://:pw@h/0?password=pw", "redis://:pw@h/0"),
     ("unix:///tmp/redis.sock?password=pw", "unix://:pw@/tmp/redis.sock"),
     ("sentinel://a:26379?password=pw;sentinel://b:26379", "sentinel://:pw@a:26379;sentinel://b:26379"),
     ("rediss://h/0?ssl_cert_reqs=required", "rediss://h/0?ssl_cert_reqs=required"),
     ("redis://u:pw@h/0", "redis://u:pw@h/0")],
)  # fmt: skip
def test_credentials_move_from_the_query_string_to_the_userinfo(url, expected):
    assert credentials_in_userinfo(url) == expected
    assert Settings(broker_url=url, master_name="m").broker_url == expected


@pytest.mark.parametrize(
    "url",
    ["redis://h/0?password=pw", "redis://h/0?username=bob&password=p%40ss%2Fx",
     "redis://bob@h:6380/3?password=a+b&socket_timeout=2"],
)  # fmt: skip
def test_kombu_reads_the_credentials_redis_py_reads_from_the_original(url):
    """Kombu fails on credentials in the query string; the rewritten URL says the same."""
    from kombu.utils.url import parse_url as kombu_parse
    from redis.connection import parse_url as redis_parse

    original, rewritten = redis_parse(url), credentials_in_userinfo(url)
    assert redis_parse(rewritten) == original
    kombu = kombu_parse(rewritten)
    assert (kombu["userid"], kombu["password"]) == (original.get("username"), original["password"])


@pytest.mark.parametrize(
    ("url", "fragment"),
    [("redis://:one@h/0?password=two", "more than once"),
     ("redis://h/0?password=one&password=two", "more than once"),
     ("redis://h/0?PASSWORD=one", "'PASSWORD' is not read as intended"),
     ("redis://h/0?userid=bob", "'userid' is not read as intended")],
)  # fmt: skip
def test_ambiguous_credentials_are_refused_without_showing_them(url, fragment):
    with pytest.raises(ConfigurationError, match=fragment) as caught:
        Settings(broker_url=url)
    assert "one" not in str(caught.value) and "two" not in str(caught.value)
    assert "redis://username:password@host:port/db" in str(caught.value)


def test_the_metrics_port_and_exchange_come_from_settings_only() -> None:
    env = {"WOWEVENT_METRICS_PORT": "0", "WOWEVENT_METRICS_ADDR": "127.0.0.2"}
    loaded = Settings.load({}, env)
    assert (loaded.metrics_port, loaded.metrics_addr) == (0, "127.0.0.2")
    assert Settings.load({}, {}).metrics_port is None
    for bad in ("abc", "70000", "-1"):
        with pytest.raises(ConfigurationError, match=r"METRICS_PORT|metrics_port"):
            Settings.load({}, {"WOWEVENT_METRICS_PORT": bad})
    assert Settings.resolve_exchange(None, {"WOWEVENT_EXCHANGE": "shop"}) == "shop"
    assert Settings.resolve_exchange("given", {"WOWEVENT_EXCHANGE": "shop"}) == "given"
    assert Settings.resolve_exchange(None, {}) == Settings().exchange


def test_a_rabbitmq_broker_without_a_store_names_the_knob_that_exists():
    from celery import Celery

    from wowevent_kombu import ConfigurationError, EventBus

    app = Celery("r", broker="amqp://guest:guest@127.0.0.1:5672//", set_as_current=False)
    with pytest.raises(ConfigurationError, match=r"app\.conf\.wowevent_store_url") as caught:
        EventBus(app).settings  # noqa: B018 - reading the settings is the check
    assert "WOWEVENT_STORE_URL" in str(caught.value)
    app.conf.wowevent_store_url = "redis://127.0.0.1:6379/0"
    assert EventBus(app).settings.store_url == "redis://127.0.0.1:6379/0"
