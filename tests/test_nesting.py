"""The nesting limit: the iterative depth walk and its cheap pre-check."""

import pytest

from wowevent_kombu.core.nesting import depth_exceeds, text_may_exceed


def deep(levels):
    value = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "limit", "exceeds"),
    [
        (1, 0, False),
        ("[[[[", 1, False),
        ([], 1, False),
        ([], 0, True),
        ({"a": [1, {"b": None}]}, 3, False),
        ({"a": [1, {"b": None}]}, 2, True),
        ({"a": [1, {"b": {}}]}, 4, False),  # an empty object is a level too
        ({"a": [1, {"b": {}}]}, 3, True),
        ([[], [[[]]]], 4, False),
        ([[], [[[]]]], 3, True),
        (deep(100), 100, False),
        (deep(101), 100, True),
        (deep(100_000), 100, True),
    ],
)
def test_depth_counts_objects_and_arrays(value, limit, exceeds):
    assert depth_exceeds(value, limit) is exceeds


def test_the_pre_check_never_clears_text_that_is_too_deep():
    assert not text_may_exceed('{"a": [1, 2]}', 2)
    assert text_may_exceed("[[[]]]", 2)
    assert text_may_exceed(b"[{[", 2)
    assert not text_may_exceed(b'"[[[[" ', 4)  # brackets in strings only cost a walk
