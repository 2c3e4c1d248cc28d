"""The guarded Redis channel's entry parsing, and when workers are switched to it."""

import base64
import bz2
import json
import ssl
import zlib

import pytest
from celery import Celery

from wowevent_kombu.brokers.redis.channel import (
    BELL_QUEUES_OPTION,
    COMPRESSION_OPTION,
    INFLATE_LIMIT_OPTION,
)
from wowevent_kombu.brokers.redis.entries import (
    MALFORMED_HEADER,
    QUARANTINE_CONTENT_TYPE,
    SOURCE_QUEUE,
    Compression,
    envelope_problem,
    parse_entry,
)
from wowevent_kombu.core import wire
from wowevent_kombu.worker.steps import GUARDED_TRANSPORT, install_guarded_transport


def test_a_real_message_passes_through_stamped_with_its_queue():
    prepared = wire.prepare('{"id":"1"}', event_type="a.b")
    raw = wire.task_message(prepared, task="t", task_id="i", queue="q", sender="s")
    payload = parse_entry(raw.encode(), "x.q")
    assert payload["headers"]["task"] == "t"
    assert payload["properties"][SOURCE_QUEUE] == "x.q"
    assert envelope_problem(json.loads(raw)) is None


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"not json", "not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100_000, "not JSON"),
        (b"[1]", "but a list"),
        (b'{"a": 1}', "no 'properties'"),
        (b'{"properties": {"delivery_tag": 5}}', "delivery_tag"),
        (b'{"properties": {"delivery_tag": "t", "delivery_info": {}}}', "delivery_info"),
        (b'{"headers": [], "properties": {"delivery_tag": "t", "delivery_info": '
         b'{"exchange": "", "routing_key": "q"}}}', "headers"),
        (b'{"body": "%%", "properties": {"delivery_tag": "t", "body_encoding": "base64", '
         b'"delivery_info": {"exchange": "", "routing_key": "q"}}}', "base64"),
        (b'{"properties": {"delivery_tag": "t", "body_encoding": "rot13", '
         b'"delivery_info": {"exchange": "", "routing_key": "q"}}}', "body_encoding"),
    ],
)  # fmt: skip
def test_unusable_entries_are_quarantined_with_their_raw_bytes(raw, problem):
    payload = parse_entry(raw, "x.q")
    assert payload["content-type"] == QUARANTINE_CONTENT_TYPE
    assert problem in payload["headers"][MALFORMED_HEADER]
    assert base64.b64decode(payload["body"]) == raw
    assert payload["properties"]["delivery_info"] == {"exchange": "", "routing_key": "x.q"}
    assert payload["properties"][SOURCE_QUEUE] == "x.q"


def app(url, **conf):
    celery = Celery("t", broker=url, set_as_current=False)
    celery.conf.update(conf)
    return celery


def test_workers_of_redis_brokers_get_the_guarded_transport():
    redis_app = app("redis://localhost:6379/0")
    assert install_guarded_transport(redis_app)
    assert redis_app.conf.broker_transport == GUARDED_TRANSPORT
    assert not install_guarded_transport(app("memory://"))


def test_bell_queues_accumulate_in_the_transport_options():
    from wowevent_kombu.worker.steps import enable_bells

    redis_app = app("redis://localhost:6379/0", broker_transport_options={"visibility_timeout": 9})
    enable_bells(redis_app, ["x.b", "x.a"])
    enable_bells(redis_app, ["y.a", "x.a"])
    options = redis_app.conf.broker_transport_options
    assert options == {"visibility_timeout": 9, BELL_QUEUES_OPTION: ["x.a", "x.b", "y.a"]}


def test_workers_of_sentinel_brokers_get_the_guarded_sentinel_transport():
    from kombu.transport.redis import SentinelChannel

    from wowevent_kombu.brokers.redis.channel import GuardedChannel
    from wowevent_kombu.brokers.redis.transport import SentinelTransport
    from wowevent_kombu.worker.steps import GUARDED_SENTINEL_TRANSPORT

    sentinel_app = app("sentinel://127.0.0.1:26379;sentinel://127.0.0.1:26380")
    assert install_guarded_transport(sentinel_app)
    assert sentinel_app.conf.broker_transport == GUARDED_SENTINEL_TRANSPORT
    assert issubclass(SentinelTransport.Channel, GuardedChannel)
    assert issubclass(SentinelTransport.Channel, SentinelChannel)
    # Both the Sentinel options and the bell queues reach the channel.
    options = SentinelTransport.Channel.from_transport_options
    assert {"master_name", "sentinel_kwargs", "visibility_timeout", BELL_QUEUES_OPTION} <= set(
        options
    )
    chosen = app("sentinel://127.0.0.1:26379", broker_transport="sentinel")
    assert install_guarded_transport(chosen)


def test_a_transport_chosen_on_purpose_is_left_alone(caplog):
    chosen = app("redis://localhost:6379/0", broker_transport="myproject.transport:Custom")
    assert not install_guarded_transport(chosen)
    assert chosen.conf.broker_transport == "myproject.transport:Custom"
    assert "can stop this worker" in caplog.text


def test_rediss_keeps_its_tls_options_or_kombus_default(caplog):
    verified = app("rediss://localhost:6380/0?ssl_cert_reqs=required&ssl_ca_certs=/ca.crt")
    assert install_guarded_transport(verified)
    assert not verified.conf.broker_use_ssl
    bare = app("rediss://localhost:6380/0")
    assert install_guarded_transport(bare)
    assert bare.conf.broker_use_ssl == {"ssl_cert_reqs": ssl.CERT_NONE}
    assert "not verified" in caplog.text


def compressed_entry(body: bytes, codec: str) -> bytes:
    prepared = wire.PreparedEvent(body=base64.b64encode(body).decode(), kwargsrepr='""')
    message = json.loads(wire.task_message(prepared, task="t", task_id="i", queue="q",
                                           sender="s"))  # fmt: skip
    message["headers"]["compression"] = codec
    return json.dumps(message).encode()


SUBSCRIBER = Compression(frozenset({"application/x-bz2"}), 1000)


@pytest.mark.parametrize(
    ("codec", "body", "rules", "problem"),
    [
        ("application/x-bz2", bz2.compress(b"\0" * 10**6), Compression(frozenset()),
         "does not accept"),
        ("application/x-gzip", zlib.compress(b"[]"), SUBSCRIBER, "does not accept"),
        ("zlib", zlib.compress(b"[]"), SUBSCRIBER, "does not accept"),
        ("application/x-bz2", bz2.compress(b"\0" * 10**6), SUBSCRIBER, "inflates past 1000 bytes"),
        ("application/x-bz2", b"not bz2 at all", SUBSCRIBER, "corrupt"),
        ("application/x-bz2", bz2.compress(b"[]")[:-4], SUBSCRIBER, "truncated"),
        ("rot13", b"[]", Compression(), "no codec this worker knows"),
        ("application/x-gzip", zlib.compress(b"\0" * 10**6), Compression(limit=10**5),
         "inflates past 100000 bytes"),
    ],
    ids=["not-enabled", "other-codec", "alias", "bomb", "corrupt", "truncated", "unknown",
         "other-queue-limit"],
)  # fmt: skip
def test_compressed_entries_are_refused_before_kombu_inflates_them(codec, body, rules, problem):
    raw = compressed_entry(body, codec)
    payload = parse_entry(raw, "x.q", rules)
    assert payload["content-type"] == QUARANTINE_CONTENT_TYPE
    assert problem in payload["headers"][MALFORMED_HEADER]
    assert base64.b64decode(payload["body"]) == raw  # the raw entry, never its inflation


@pytest.mark.parametrize("codec", ["application/x-bz2", "bzip2"])
def test_an_accepted_compressed_body_is_inflated_once_here(codec):
    payload = parse_entry(compressed_entry(bz2.compress(b"[[], {}, {}]"), codec), "x.q", SUBSCRIBER)
    assert base64.b64decode(payload["body"]) == b"[[], {}, {}]"
    assert "compression" not in payload["headers"]  # Kombu has nothing left to inflate
    assert payload["properties"][SOURCE_QUEUE] == "x.q"


def test_the_subscriber_queues_take_only_the_apps_own_compression():
    from wowevent_kombu.worker.steps import inflate_limit, limit_compression

    plain = app("redis://localhost:6379/0")
    limit_compression(plain, 1000)
    options = plain.conf.broker_transport_options
    assert options == {COMPRESSION_OPTION: [], INFLATE_LIMIT_OPTION: inflate_limit(1000)}
    zipped = app("redis://localhost:6379/0", task_compression="gzip")
    limit_compression(zipped, 1000)
    assert zipped.conf.broker_transport_options[COMPRESSION_OPTION] == ["application/x-gzip"]
    assert inflate_limit(256 * 1024) > 6 * 256 * 1024  # room for an ASCII-escaped event
