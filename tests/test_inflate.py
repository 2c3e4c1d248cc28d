"""Bounded inflation of compressed bodies, codec by codec."""

import bz2
import lzma
import zlib

import pytest

from wowevent_kombu.brokers.redis.inflate import InflateError, bounded, content_type, inflate

CODECS = {
    "application/x-gzip": zlib.compress,
    "application/x-bz2": bz2.compress,
    "application/x-lzma": lzma.compress,
}


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_inflates_within_the_limit_and_stops_past_it(codec):
    compress = CODECS[codec]
    assert inflate(compress(b"x" * 1000), codec, 1000) == b"x" * 1000
    with pytest.raises(InflateError, match="inflates past 999 bytes"):
        inflate(compress(b"x" * 1000), codec, 999)
    with pytest.raises(InflateError, match=r"truncated|corrupt"):
        inflate(compress(b"x" * 1000)[:-5], codec, 1000)
    with pytest.raises(InflateError, match="corrupt"):
        inflate(b"\x00garbage" * 4, codec, 1000)


@pytest.mark.parametrize("codec", ["application/x-bz2", "application/x-lzma"])
def test_concatenated_streams_inflate_as_the_one_shot_functions_do(codec):
    compress = CODECS[codec]
    assert inflate(compress(b"ab") + compress(b"cd"), codec, 4) == b"abcd"
    with pytest.raises(InflateError, match="inflates past 3"):
        inflate(compress(b"ab") + compress(b"cd"), codec, 3)


def test_a_bomb_costs_the_limit_not_its_size():
    bomb = bz2.compress(b"\0" * 50_000_000)
    with pytest.raises(InflateError, match="inflates past 65536 bytes"):
        inflate(bomb, "application/x-bz2", 65536)


def test_codec_names_and_aliases():
    assert content_type("bzip2") == content_type("application/x-bz2") == "application/x-bz2"
    assert content_type("zlib") == content_type("gzip") == "application/x-gzip"
    assert content_type("rot13") is None
    assert bounded("application/x-gzip")
    assert not bounded("application/x-brotli")
    with pytest.raises(InflateError, match="no bounded decoder"):
        inflate(b"", "application/x-brotli", 10)
