"""The binding table: who subscribes to what, kept in Kombu's own Redis SET for the exchange.

Workers declare their queues through Kombu, which writes the same members; the bus writes them
itself at deploy time (``declare``) and bumps a version counter in the same transaction, so a
publisher's cached copy of the table can tell, inside its own publish transaction, that it is
stale.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import redis
from kombu.transport.virtual.exchange import TopicExchange

from wowevent_kombu.core import names
from wowevent_kombu.core.matcher import TopicMatcher, validate_pattern

log = logging.getLogger(__name__)

_TOPIC = TopicExchange(None)


def kombu_regex(pattern: str) -> str:
    """The regex Kombu stores beside a topic pattern (so members match Kombu's byte for byte)."""
    return str(_TOPIC.key_to_pattern(pattern))


@dataclass(frozen=True)
class Binding:
    """One pattern bound to one subscriber queue."""

    pattern: str
    queue: str


@dataclass
class BindingSnapshot:
    """The binding table as read at one version, with its matcher."""

    version: int
    size: int
    bindings: frozenset[Binding]
    matcher: TopicMatcher = field(repr=False)

    @classmethod
    def build(cls, version: int, size: int, bindings: Iterable[Binding]) -> BindingSnapshot:
        frozen = frozenset(bindings)
        matcher = TopicMatcher()
        for binding in frozen:
            try:
                matcher.add(binding.pattern, binding.queue)
            except ValueError:
                log.warning("ignoring malformed binding %r -> %r", binding.pattern, binding.queue)
        return cls(version, size, frozen, matcher)

    @property
    def stamp(self) -> tuple[int, int]:
        """What a publish transaction compares to tell whether this snapshot is current."""
        return (self.version, self.size)

    def queues(self) -> dict[str, list[str]]:
        """Queue name -> its patterns, sorted."""
        out: dict[str, list[str]] = {}
        for binding in sorted(self.bindings, key=lambda b: (b.queue, b.pattern)):
            out.setdefault(binding.queue, []).append(binding.pattern)
        return out


class BindingTable:
    """Reads and writes the exchange's binding table in Redis."""

    def __init__(self, client: redis.Redis, exchange: str) -> None:
        self._client = client
        self.exchange = exchange
        self.table_key = names.binding_table_key(exchange)
        self.version_key = names.binding_version_key(exchange)

    def read(self) -> BindingSnapshot:
        """One consistent read of version, size and members."""
        pipe = self._client.pipeline(transaction=True)
        pipe.get(self.version_key)
        pipe.scard(self.table_key)
        pipe.smembers(self.table_key)
        version, size, members = pipe.execute()
        bindings = []
        for raw in members:
            parsed = names.split_binding_member(_text(raw))
            if parsed is not None:
                bindings.append(Binding(*parsed))
        return BindingSnapshot.build(int(version or 0), int(size), bindings)

    def bind(self, queue: str, patterns: Iterable[str]) -> None:
        """Bind ``queue`` to each pattern (idempotent), bumping the version atomically."""
        members = [
            names.binding_member(p, kombu_regex(validate_pattern(p)), queue) for p in patterns
        ]
        if not members:
            return
        pipe = self._client.pipeline(transaction=True)
        pipe.sadd(self.table_key, *members)
        pipe.incr(self.version_key)
        pipe.execute()

    def unbind(self, queue: str, patterns: Iterable[str] | None = None) -> list[str]:
        """Remove ``queue``'s bindings (all, or only ``patterns``); returns the patterns removed."""
        wanted = None if patterns is None else set(patterns)
        with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(self.table_key)  # type: ignore[no-untyped-call]
                    doomed = []
                    removed = []
                    for raw in pipe.smembers(self.table_key):
                        member = _text(raw)
                        parsed = names.split_binding_member(member)
                        if (
                            parsed
                            and parsed[1] == queue
                            and (wanted is None or parsed[0] in wanted)
                        ):
                            doomed.append(member)
                            removed.append(parsed[0])
                    pipe.multi()
                    if doomed:
                        pipe.srem(self.table_key, *doomed)
                    pipe.incr(self.version_key)
                    pipe.execute()
                    return sorted(removed)
                except redis.WatchError:
                    continue


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
