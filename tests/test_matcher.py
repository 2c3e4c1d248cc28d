"""The topic matcher against RabbitMQ's documented semantics and a reference implementation."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wowevent_kombu import InvalidPatternError, TopicMatcher
from wowevent_kombu.core.matcher import validate_pattern

# (pattern, routing key, matches?) — RabbitMQ tutorial 5 and the AMQP 0-9-1 topic rules.
TABLE = [
    ("order.*", "order.created", True),
    ("order.*", "order", False),
    ("order.*", "order.created.v2", False),
    ("*.created", "order.created", True),
    ("*.created", "created", False),
    ("*", "order", True),
    ("*", "order.created", False),
    ("#", "order", True),
    ("#", "order.created.v2", True),
    ("agent.#", "agent", True),  # zero words: Kombu's regex says no, AMQP says yes
    ("agent.#", "agent.task.done", True),
    ("agent.#", "agents.task", False),
    ("#.done", "done", True),
    ("#.done", "agent.task.done", True),
    ("#.done", "agent.task.done.late", False),
    ("order.#.done", "order.done", True),
    ("order.#.done", "order.a.b.done", True),
    ("order.#.done", "order.a.b.undone", False),
    ("*.*.x", "a.b.x", True),
    ("*.*.x", "a.x", False),
    ("#.*", "a", True),
    ("#.*", "a.b.c", True),
    ("*.#.*", "a", False),
    ("*.#.*", "a.b", True),
    ("#.#.#", "a.b", True),
    ("quick.orange.rabbit", "quick.orange.rabbit", True),
    ("quick.orange.rabbit", "quick.orange.male.rabbit", False),
    ("*.orange.*", "lazy.orange.elephant", True),
    ("lazy.#", "lazy.orange.male.rabbit", True),
    ("*.*.rabbit", "lazy.orange.male.rabbit", False),
]


@pytest.mark.parametrize(("pattern", "key", "expected"), TABLE)
def test_table(pattern, key, expected):
    assert (TopicMatcher([(pattern, "q")]).match(key) == {"q"}) is expected


def test_many_targets_and_cache():
    m = TopicMatcher([("order.*", "a"), ("order.#", "b"), ("#", "c"), ("payment.*", "d")])
    assert m.match("order.created") == {"a", "b", "c"}
    assert m.match("order.created") == {"a", "b", "c"}  # cached
    m.add("order.created", "e")
    assert m.match("order.created") == {"a", "b", "c", "e"}  # cache invalidated
    assert len(m) == 5


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [("", "empty"), ("order..x", "empty word"), ("or*der", "whole word"), ("a.b c", "word 2"),
     ("x" * 300, "limit"), (None, "string")],
)  # fmt: skip
def test_bad_patterns_name_the_problem(pattern, fragment):
    with pytest.raises(InvalidPatternError, match=fragment):
        validate_pattern(pattern)


def reference(pattern: str, key: str) -> bool:
    """AMQP topic semantics by plain recursion over words (slow, obviously right)."""

    def go(p: list[str], k: list[str]) -> bool:
        if not p:
            return not k
        if p[0] == "#":
            return any(go(p[1:], k[i:]) for i in range(len(k) + 1))
        if not k:
            return False
        return (p[0] == "*" or p[0] == k[0]) and go(p[1:], k[1:])

    return go(pattern.split("."), key.split("."))


words = st.sampled_from(["a", "b", "c"])
patterns = st.lists(st.one_of(words, st.just("*"), st.just("#")), min_size=1, max_size=6).map(
    ".".join
)
keys = st.lists(words, min_size=1, max_size=7).map(".".join)


@settings(max_examples=400, deadline=None)
@given(st.lists(patterns, min_size=1, max_size=6), keys)
def test_agrees_with_reference(pats, key):
    m = TopicMatcher([(p, str(i)) for i, p in enumerate(pats)])
    expected = {str(i) for i, p in enumerate(pats) if reference(p, key)}
    assert m.match(key) == expected


def test_hostile_pattern_is_linear():
    pattern = ".".join(["#"] * 120)
    key = ".".join(["a"] * 200)
    assert TopicMatcher([(pattern, "q")]).match(key) == {"q"}
