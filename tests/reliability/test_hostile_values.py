"""Hostile values: each is accepted as documented or refused with the library's own error.

Validation matches whole strings (a trailing newline or a control character never passes), a
value of the wrong type gets a ``WowEventError`` rather than a ``TypeError``, and no form of a
Redis URL shows its password.
"""

import json
import math
import re
import unicodedata
from types import SimpleNamespace
from urllib.parse import quote

import pytest
from celery import Celery
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.test_matcher import reference
from tests.web.live import ADMIN, call, live_service
from wowevent_kombu import (
    ConfigurationError,
    Event,
    EventBus,
    InvalidEventError,
    InvalidEventTypeError,
    InvalidPatternError,
    InvalidSubscriberError,
    LogQueryError,
    Settings,
    TopicMatcher,
)
from wowevent_kombu.cli import EXIT_UNAVAILABLE, cli
from wowevent_kombu.core import names
from wowevent_kombu.core.errors import InvalidSchemaError
from wowevent_kombu.core.matcher import validate_pattern
from wowevent_kombu.core.urls import redact_url
from wowevent_kombu.log.positions import parse_when, split_position
from wowevent_kombu.schemas.schema import SemVer
from wowevent_kombu.testing import TestBus
from wowevent_kombu.testing.redisserver import free_port
from wowevent_kombu.web.auth import Tokens
from wowevent_kombu.worker.malformed import malformed_record

SECRET = "s3cret-Pw"
TOKEN = "t0ken"

# The documented grammars, written out independently of the library's own regexes.
WORD = r"[A-Za-z0-9_-]+"
TYPE_GRAMMAR = re.compile(rf"{WORD}(?:\.{WORD})*")
PATTERN_GRAMMAR = re.compile(rf"(?:{WORD}|\*|#)(?:\.(?:{WORD}|\*|#))*")
NAME_GRAMMAR = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


def is_type(value):
    return isinstance(value, str) and len(value) <= 255 and TYPE_GRAMMAR.fullmatch(value)


def is_pattern(value):
    return isinstance(value, str) and len(value) <= 255 and PATTERN_GRAMMAR.fullmatch(value)


def is_name(value):
    return isinstance(value, str) and NAME_GRAMMAR.fullmatch(value) and ".." not in value


def is_attribute(value):
    """CloudEvents' String: no control character, surrogate or noncharacter; not empty here."""

    def allowed(char):
        point = ord(char)
        noncharacter = 0xFDD0 <= point <= 0xFDEF or point & 0xFFFE == 0xFFFE
        return unicodedata.category(char) not in ("Cc", "Cs") and not noncharacter

    return isinstance(value, str) and value != "" and all(allowed(c) for c in value)


@pytest.fixture
def bus():
    return TestBus(Celery("hostile-values", set_as_current=False))


def handler(event):
    return None


# -- 1. validation matches whole strings --------------------------------------------------------


@pytest.mark.parametrize("event_type", ["order.created\n", "order\n.created\n", "order\n.created"])
def test_a_type_ending_in_a_newline_is_refused(bus, event_type):
    with pytest.raises(InvalidEventTypeError, match="may hold only"):
        Event(type=event_type)
    with pytest.raises(InvalidEventTypeError):
        bus.publish(event_type, {})
    assert bus.published == []


@pytest.mark.parametrize("pattern", ["order\n.*", "order.created\n", "#.order\n", "a\n"])
def test_a_pattern_with_a_newline_is_refused(bus, pattern):
    with pytest.raises(InvalidPatternError, match="must be"):
        validate_pattern(pattern)
    with pytest.raises(InvalidPatternError):
        bus.subscriber(pattern, name="billing")(handler)


@pytest.mark.parametrize("name", ["billing\n", "a" * 200 + "\n"])
def test_a_subscriber_name_with_a_newline_declares_no_queue(bus, name):
    with pytest.raises(InvalidSubscriberError, match="must be 1-200 letters"):
        bus.subscriber("order.*", name=name)(handler)
    assert bus.subscribers == {}
    assert not names.valid_subscriber_name(name)
    with pytest.raises(ConfigurationError, match="exchange name"):
        Settings(exchange=name)


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "evt-1\n"), ("source", "billing\n"), ("subject", "order-1\r\n"),
     ("correlation_id", "req\x00"), ("causation_id", "\x85p1"), ("schema_version", "1.0.0\n"),
     ("dataschema", "urn:x\t"), ("subject", "\ud800"), ("source", "svc\ufffe")],
)  # fmt: skip
def test_an_attribute_with_a_control_character_or_surrogate_is_refused(field, value):
    with pytest.raises(InvalidEventError, match=f"event {field} .* holds"):
        Event(type="order.created", **{field: value})


def test_a_cloudevent_with_a_newline_in_an_attribute_is_refused():
    document = Event(type="order.created").to_cloudevent()
    with pytest.raises(InvalidEventError, match="event id"):
        Event.from_json(json.dumps({**document, "id": "evt-1\n"}))


@pytest.mark.parametrize(
    ("parse", "text", "error"),
    [(SemVer.parse, "1.0.0\n", InvalidSchemaError),
     (SemVer.parse, "1\u0661.0.0", InvalidSchemaError),
     (split_position, "1714564800000-0\n", LogQueryError),
     (split_position, "\u0661\u0667-0", LogQueryError),
     (parse_when, "\u0661\u0665m", LogQueryError), (parse_when, "15\tm", LogQueryError)],
    ids=["semver-newline", "semver-arabic-digits", "position-newline", "position-arabic-digits",
         "age-arabic-digits", "age-tab"],
)  # fmt: skip
def test_versions_positions_and_ages_are_ascii_and_whole(parse, text, error):
    with pytest.raises(error):
        parse(text)


def test_a_task_id_with_a_newline_is_not_a_dead_letter_record_id():
    message = SimpleNamespace(properties={}, delivery_info={}, headers={"id": "abc-1\n"},
                              body=b"raw", content_type="application/json")  # fmt: skip
    assert malformed_record(message, "billing", "bad").id.startswith("malformed-")


# -- 2. a wrong type gets the library's own error ----------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "fragment"),
    [(lambda: TopicMatcher([("#", "q")]).match(None), InvalidEventTypeError, "NoneType"),
     (lambda: TopicMatcher([("#", "q")]).match(["a"]), InvalidEventTypeError, "list"),
     (lambda: TopicMatcher().add("order.*", None), InvalidSubscriberError, "NoneType"),
     (lambda: Event(type="a.b", replayed="yes"), InvalidEventError, "replayed"),
     (lambda: Event(type="a.b", id=7), InvalidEventError, "event id must be a string, got int"),
     (lambda: Event.from_json(None), InvalidEventError, "NoneType"),
     (lambda: Event.from_cloudevent({**Event(type="a.b").to_cloudevent(), 1: 2}),
      InvalidEventError, "does not carry: 1"),
     (lambda: Event.from_cloudevent({**Event(type="a.b").to_cloudevent(), "time": 5}),
      InvalidEventError, "RFC 3339 string, got int"),
     (lambda: Settings(broker_url=None), ConfigurationError, "broker_url must be a string"),
     (lambda: Settings(exchange=None), ConfigurationError, "exchange must be a string"),
     (lambda: Settings(publish_timeout="5"), ConfigurationError, "publish_timeout must be a num"),
     (lambda: Settings(publish_timeout=math.nan), ConfigurationError, "above 0 and at most"),
     (lambda: Settings(publish_timeout=1e300), ConfigurationError, "at most 3600 seconds"),
     (lambda: Settings(max_event_bytes=True), ConfigurationError, "must be an integer"),
     (lambda: Settings(sentinel_password=12345), ConfigurationError, r"got int \*\*\*"),
     (lambda: Settings.load({"broker_transport_options": {"visibility_timeout": "soon"}}, {}),
      ConfigurationError, "visibility_timeout"),
     (lambda: Settings.load({"broker_transport_options": {"sentinel_kwargs": "pw"}}, {}),
      ConfigurationError, "sentinel_kwargs must be a dict")],
    ids=["match-none", "match-list", "target-none", "replayed-str", "id-int", "json-none",
         "int-attribute-name", "time-int", "broker-none", "exchange-none", "timeout-str",
         "timeout-nan", "timeout-huge", "bytes-bool", "sentinel-password-int", "visibility-str",
         "sentinel-kwargs-str"],
)  # fmt: skip
def test_a_wrong_type_gets_the_librarys_error_naming_it(call, error, fragment):
    with pytest.raises(error, match=fragment) as caught:
        call()
    assert "12345" not in str(caught.value)


@pytest.mark.parametrize("name", [None, 7, 1.5, ["billing"], {"a": 1}])
def test_a_subscriber_name_that_is_not_a_string_is_refused(bus, name):
    with pytest.raises(InvalidSubscriberError, match="subscriber name"):
        bus.subscriber("order.*", name=name)(handler)
    assert bus.subscribers == {}


@pytest.mark.parametrize("patterns", [None, 5, b"order.*", {"order.*": 1}.keys(), [None]])
def test_patterns_that_are_not_strings_get_the_pattern_error(bus, patterns):
    with pytest.raises(InvalidPatternError, match="must be a string"):
        bus.subscriber(patterns, name="billing")(handler)
    assert bus.subscribers == {}


# -- 5. any value: accepted as documented, or the library's own error --------------------------

WORDS = ["order", "created", "a-b", "x_1", "*", "#", "", " ", "order\n", "\n", "a\x00", "é",
         "\ud800", "\ufffe", "a\r", "\x85", "\u0663"]  # fmt: skip
hostile_text = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),  # surrogates included
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=5).map(".".join),
)
not_text = st.one_of(
    st.none(), st.integers(), st.floats(), st.binary(max_size=4), st.lists(st.text(max_size=2))
)
keys = st.lists(st.sampled_from(["order", "created", "a-b", "x_1"]), min_size=1, max_size=5)


@settings(max_examples=500, deadline=None)
@given(
    event_type=st.one_of(hostile_text, keys.map(".".join), not_text),
    source=st.one_of(hostile_text, not_text),
    event_id=st.one_of(hostile_text, not_text),
    optional=st.one_of(st.none(), hostile_text, not_text),
)
def test_an_event_is_valid_and_round_trips_or_is_refused(event_type, source, event_id, optional):
    attributes = {"subject": optional, "correlation_id": optional, "schema_version": optional}
    valid = (
        is_type(event_type) and is_attribute(source) and is_attribute(event_id)
        and (optional is None or is_attribute(optional))
    )  # fmt: skip
    if not valid:
        with pytest.raises(InvalidEventError):
            Event(type=event_type, source=source, id=event_id, **attributes)
        return
    event = Event(type=event_type, source=source, id=event_id, **attributes)
    assert Event.from_json(event.to_json()) == event


@settings(max_examples=500, deadline=None)
@given(pattern=st.one_of(hostile_text, not_text), key=keys.map(".".join))
def test_a_pattern_is_valid_and_matches_like_amqp_or_is_refused(pattern, key):
    if not is_pattern(pattern):
        with pytest.raises(InvalidPatternError):
            validate_pattern(pattern)
        return
    assert validate_pattern(pattern) == pattern
    matched = TopicMatcher([(pattern, "q")]).match(key)
    assert matched == ({"q"} if reference(pattern, key) else set())


@settings(max_examples=300, deadline=None)
@given(key=st.one_of(hostile_text, not_text))
def test_any_routing_key_matches_or_is_refused(key):
    matcher = TopicMatcher([("#", "all"), ("order.*", "orders")])
    if not isinstance(key, str):
        with pytest.raises(InvalidEventTypeError):
            matcher.match(key)
        return
    assert "all" in matcher.match(key)


@settings(max_examples=300, deadline=None)
@given(name=st.one_of(hostile_text, st.none(), st.integers()))
def test_a_subscriber_name_is_valid_or_refused(name):
    assert names.valid_subscriber_name(name) == bool(is_name(name))
    bus = TestBus(Celery("hostile-names", set_as_current=False))
    if not is_name(name):
        with pytest.raises(InvalidSubscriberError):
            bus.subscriber("order.*", name=name)(handler)
        return
    bus.subscriber("order.*", name=name)(handler)
    assert bus.subscribers[name].queue == names.queue_name(bus.exchange, name)


# -- 3. no URL form shows its password ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "kept"),
    [("redis://127.0.0.1:6397/0?password=s3cret-Pw", "redis://127.0.0.1:6397/0?password="),
     ("redis://h:6379/0?PASSWORD=s3cret-Pw&db=1", "&db=1"),
     ("redis://h/0?%70assword=s3cret-Pw", "redis://h/0?"),
     ("redis://h/0?pass%77ord=s3cret-Pw", "redis://h/0?"),
     ("redis://h/0?password=s3cret-Pw&password=s3cret-Pw2", "redis://h/0?"),
     ("redis://h/0?username=s3cret-Pw&password=x", "redis://h/0?"),
     ("rediss://u:pw@h:6380/0?ssl_cert_reqs=required&ssl_ca_certs=%2Fca.crt"
      "&ssl_keyfile_password=s3cret-Pw", "ssl_cert_reqs=required&ssl_ca_certs=%2Fca.crt"),
     ("sentinel://h1:26379;sentinel://h2:26379/0?password=s3cret-Pw", "sentinel://h1:26379;"),
     ("sentinel://:pw@h1:26379;sentinel://h2?sentinel_password=s3cret-Pw", "@h1:26379;"),
     ("redis://h/0#password=s3cret-Pw", "redis://h/0#"),
     ("redis://:s3cret/-Pw@h/0", "@h/0"), ("redis://:s3cret?-Pw@h/0", "@h/0"),
     ("redis://:s3cret#-Pw@h/0", "@h/0"), ("redis://:s3cret-Pw@h:noport/0", "@h:noport/0"),
     ("user:s3cret-Pw@h:6379", ""), ("redis//:s3cret-Pw@h:6379", ""),
     (f"redis://:{quote(SECRET)}@[::1/0", "[::1/0")],
    ids=["query", "upper-case", "encoded-name", "encoded-letter", "repeated", "username",
         "rediss-ssl-options", "sentinel-second-part", "sentinel-password-param", "fragment",
         "slash-in-password", "question-mark-in-password", "hash-in-password", "bad-port",
         "no-scheme", "typo-scheme", "bad-ipv6"],
)  # fmt: skip
def test_every_url_form_is_redacted(url, kept):
    shown = redact_url(url)
    assert "s3cret" not in shown and "-Pw" not in shown, shown
    assert kept in shown


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0?password=s3cret-Pw",
     "redis://:s3cret-Pw@127.0.0.1:6379/0?password=other-s3cret",
     "redis://127.0.0.1:6379/0?Password=s3cret-Pw", "kafka://h/0?password=s3cret-Pw"],
    ids=["accepted", "given-twice", "wrong-case", "bad-scheme"],
)  # fmt: skip
def test_settings_never_show_a_password(url):
    try:
        shown = repr(Settings(broker_url=url))
    except ConfigurationError as exc:
        shown = str(exc)
    assert "s3cret" not in shown, shown


def test_the_cli_error_for_a_query_password_does_not_echo_it():
    url = f"redis://127.0.0.1:{free_port()}/0?password={SECRET}"  # nothing listens there
    result = CliRunner().invoke(cli, ["--broker", url, "publish", "order.created", "{}"])
    assert result.exit_code == EXIT_UNAVAILABLE, result.output
    assert "redis://:***@127.0.0.1" in result.output and SECRET not in result.output


def admin_publish(bus, document):
    with live_service(bus, tokens=Tokens(admin=ADMIN)) as address:
        status, _, body = call(address, "POST", "/admin/publish", document, token=ADMIN)
    return status, body


def test_the_service_does_not_echo_a_query_password(exchange):
    url = f"redis://127.0.0.1:{free_port()}/0?password={SECRET}"  # nothing listens there
    bus = EventBus(Celery("hostile-service", broker=url, set_as_current=False), exchange=exchange)
    status, body = admin_publish(bus, {"type": "order.created"})
    assert status == 503 and "redis://:***@127.0.0.1" in body["error"], body
    assert SECRET not in json.dumps(body)
    bus.close()


def test_the_service_refuses_a_type_ending_in_a_newline(redis_url, redis_client, exchange):
    bus = EventBus(Celery("hostile-service", broker=redis_url, set_as_current=False),
                   exchange=exchange)  # fmt: skip
    bus.transport.bind(names.queue_name(exchange, "billing"), ["order.*"])
    status, body = admin_publish(bus, {"type": "order.created\n", "data": {}})
    assert status == 422, body
    assert redis_client.llen(names.queue_name(exchange, "billing")) == 0
    assert redis_client.xlen(names.log_key(exchange)) == 0
    bus.close()


# -- 4. a password in the query string authenticates -------------------------------------------


def test_a_query_password_authenticates_the_publisher_and_the_kombu_consumer(private_redis,
                                                                             exchange):  # fmt: skip
    server = private_redis(extra=["--requirepass", SECRET])
    url = f"{server.url}?password={quote(SECRET, safe='')}"
    bus = EventBus(Celery("query-password", broker=url, set_as_current=False), exchange=exchange)
    bus.transport.bind(names.queue_name(exchange, "reader"), ["order.*"])
    sent = bus.publish("order.created", {"n": 1})
    received = []
    assert bus.consume({"order.*": received.append}, group="reader", limit=1, timeout=10) == 1
    assert [event.id for event in received] == [sent.id]
    assert SECRET not in repr(bus.settings)
    bus.close()
