"""Decompressing a queue entry's body with a ceiling, before Kombu would do it without one.

Kombu decompresses a message whose ``compression`` header names a codec as it builds the
message, in the worker's main process and in one call: a few hundred bytes of bz2 can
expand to gigabytes there. The guarded Redis channel refuses compression the app did not
enable and inflates the rest here, stopping as soon as the output passes the limit.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from kombu import compression

from wowevent_kombu.core.errors import WowEventError


class InflateError(WowEventError):
    """A compressed body cannot be inflated within its limit (or at all)."""


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


class _Zlib:
    """zlib's decompressor under the ``max_length`` interface of bz2's and lzma's."""

    def __init__(self) -> None:
        self._inner = zlib.decompressobj()
        self.unused_data = b""

    @property
    def eof(self) -> bool:
        return self._inner.eof

    def decompress(self, data: bytes, max_length: int = -1, /) -> bytes:
        out = self._inner.decompress(data, max(max_length, 0))
        self.unused_data = self._inner.unused_data
        return out


def _decoders() -> dict[str, Callable[[], _Decompressor]]:
    found: dict[str, Callable[[], _Decompressor]] = {
        "application/x-gzip": _Zlib,
        "application/x-bz2": bz2.BZ2Decompressor,
        "application/x-lzma": lzma.LZMADecompressor,
    }
    try:  # Python 3.14's module, or its backport (which Kombu also uses for zstd)
        from compression import zstd as _zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            from backports import zstd as _zstd  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            _zstd = None
    if _zstd is not None:
        found["application/zstd"] = _zstd.ZstdDecompressor
    return found


_BOUNDED: dict[str, Callable[[], _Decompressor]] = _decoders()
"""The codecs inflated here, with a ceiling; any other is left to Kombu."""


def content_type(name: str) -> str | None:
    """Kombu's content type for a codec name or alias (``bzip2`` -> ``application/x-bz2``)."""
    try:
        found: Any = compression.get_encoder(name)
    except KeyError:
        return None
    return str(found[1])


def bounded(codec: str) -> bool:
    """Whether :func:`inflate` can inflate ``codec`` (a content type) with a ceiling."""
    return codec in _BOUNDED


def inflate(data: bytes, codec: str, limit: int) -> bytes:
    """``data`` decompressed with ``codec`` (a content type), at most ``limit`` bytes of it.

    Concatenated streams are inflated one after the other, as the one-shot functions do.

    Raises:
        InflateError: the output would pass ``limit``, the data is corrupt or truncated, or
            the codec is not one of :data:`_BOUNDED`.
    """
    factory = _BOUNDED.get(codec)
    if factory is None:
        raise InflateError(f"no bounded decoder for compression {codec!r}")
    parts: list[bytes] = []
    size = 0
    while True:
        decoder = factory()
        try:
            chunk = decoder.decompress(data, limit + 1 - size)
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise InflateError(f"the {codec} body is corrupt: {exc}") from None
        size += len(chunk)
        if size > limit:
            raise InflateError(f"the {codec} body inflates past {limit} bytes (the limit)")
        parts.append(chunk)
        if not decoder.eof:
            raise InflateError(f"the {codec} body is truncated")
        data = decoder.unused_data
        if not data:
            return b"".join(parts)
