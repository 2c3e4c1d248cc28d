"""Topic matching with AMQP semantics: ``*`` is exactly one word, ``#`` zero or more words.

Kombu's Redis transport compiles ``#`` to ``.*?``, so ``agent.#`` does not match ``agent`` there;
RabbitMQ says it does. This matcher follows RabbitMQ. Patterns are stored in a trie of words and a
routing key is matched by walking the trie with a set of live nodes, so the cost grows with the
key's words and the trie's branching, never with the number of bindings, and there is no
backtracking for hostile patterns like ``#.#.#.#`` to exploit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from wowevent_kombu.core.errors import (
    InvalidEventTypeError,
    InvalidPatternError,
    InvalidSubscriberError,
)

MAX_PATTERN_LENGTH = 255
# Matched whole (fullmatch): with re.match, '$' would accept a word ending in a newline.
_LITERAL = re.compile(r"[A-Za-z0-9_\-]+")
_CACHE_LIMIT = 4096


def validate_pattern(pattern: object) -> str:
    """Return ``pattern`` if it is dot-separated words or wildcards, else raise naming the part."""
    if not isinstance(pattern, str):
        raise InvalidPatternError(
            f"pattern must be a string, got {type(pattern).__name__}", pattern=repr(pattern)
        )
    if not pattern:
        raise InvalidPatternError("pattern is empty; use e.g. 'order.*' or '#'", pattern=pattern)
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise InvalidPatternError(
            f"pattern is {len(pattern)} characters; the limit is {MAX_PATTERN_LENGTH}",
            pattern=pattern[:50] + "...",
        )
    for position, word in enumerate(pattern.split("."), start=1):
        if word in ("*", "#"):
            continue
        if not word:
            raise InvalidPatternError(
                f"pattern {pattern!r} has an empty word at position {position}", pattern=pattern
            )
        if _LITERAL.fullmatch(word) is None:
            raise InvalidPatternError(
                f"pattern {pattern!r}: word {position} ({word!r}) must be '*', '#', or letters, "
                "digits, '_' and '-' (a wildcard must be a whole word)",
                pattern=pattern,
            )
    return pattern


class _Node:
    __slots__ = ("children", "hash", "star", "swallows", "targets")

    def __init__(self, *, swallows: bool = False) -> None:
        # A node entered through '#' may swallow any number of further words.
        self.swallows = swallows
        self.children: dict[str, _Node] = {}
        self.star: _Node | None = None
        self.hash: _Node | None = None
        self.targets: set[str] = set()


class TopicMatcher:
    """A set of ``(pattern, target)`` bindings answering "which targets match this key?"."""

    def __init__(self, bindings: Iterable[tuple[str, str]] = ()) -> None:
        self._root = _Node()
        self._bindings: set[tuple[str, str]] = set()
        self._cache: dict[str, frozenset[str]] = {}
        for pattern, target in bindings:
            self.add(pattern, target)

    def __len__(self) -> int:
        return len(self._bindings)

    @property
    def bindings(self) -> frozenset[tuple[str, str]]:
        """Every ``(pattern, target)`` pair held."""
        return frozenset(self._bindings)

    def add(self, pattern: str, target: str) -> None:
        """Bind ``target`` to ``pattern`` (validated; adding twice is a no-op)."""
        validate_pattern(pattern)
        if not isinstance(target, str):
            raise InvalidSubscriberError(
                f"a binding's target must be a subscriber or queue name (a string), "
                f"got {type(target).__name__}"
            )
        if (pattern, target) in self._bindings:
            return
        node = self._root
        for word in pattern.split("."):
            if word == "*":
                node.star = node.star or _Node()
                node = node.star
            elif word == "#":
                node.hash = node.hash or _Node(swallows=True)
                node = node.hash
            else:
                node = node.children.setdefault(word, _Node())
        node.targets.add(target)
        self._bindings.add((pattern, target))
        self._cache.clear()

    def match(self, routing_key: str) -> frozenset[str]:
        """Every target with a pattern matching ``routing_key`` (AMQP topic semantics)."""
        if not isinstance(routing_key, str):
            raise InvalidEventTypeError(
                f"a routing key is an event type (a string), got {type(routing_key).__name__}"
            )
        cached = self._cache.get(routing_key)
        if cached is not None:
            return cached
        result = frozenset(self._walk(routing_key.split(".")))
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[routing_key] = result
        return result

    def _walk(self, words: list[str]) -> set[str]:
        live = _closure({self._root})
        for word in words:
            following: set[_Node] = set()
            for node in live:
                child = node.children.get(word)
                if child is not None:
                    following.add(child)
                if node.star is not None:
                    following.add(node.star)
                if node.swallows:
                    following.add(node)
            if not following:
                return set()
            live = _closure(following)
        targets: set[str] = set()
        for node in live:
            targets |= node.targets
        return targets


def _closure(nodes: set[_Node]) -> set[_Node]:
    """Add every node reachable through '#' edges, since '#' may match zero words."""
    result = set(nodes)
    pending = list(nodes)
    while pending:
        node = pending.pop()
        if node.hash is not None and node.hash not in result:
            result.add(node.hash)
            pending.append(node.hash)
    return result
