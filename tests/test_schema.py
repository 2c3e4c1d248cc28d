"""The fastjsonschema pre-check never accepts what jsonschema refuses (property-based)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wowevent_kombu import EventSchema
from wowevent_kombu.schemas.schema import CompiledSchema

SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "object",
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "email": {"type": "string", "format": "email"},
            "at": {"type": "string", "format": "date-time"},
            "n": {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
            "x": {"type": "number", "multipleOf": 2},
            "tag": {"enum": ["a", 1, True, None]},
            "one": {"const": 1},
            "list": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
            "code": {"type": "string", "pattern": "^[A-Z]{2}$", "maxLength": 2},
        },
        "required": ["id"],
        "additionalProperties": {"type": ["boolean", "null"]},
    },
    {"anyOf": [{"type": "integer"}, {"type": "array", "minItems": 2}], "not": {"const": 3}},
    {"$defs": {"p": {"type": "object", "required": ["a"]}}, "items": {"$ref": "#/$defs/p"}},
    {"if": {"type": "string"}, "then": {"minLength": 2}, "else": {"type": "number"}},
    {"oneOf": [{"type": "number"}, {"type": "integer"}]},
]

U = "6f1b8a52-3c1e-4e4b-9a0e-7a1d2c3b4e5f"
UUIDS = [U, U.upper(), "{" + U + "}", U.replace("-", ""), U[:-4] + "-" + U[-4:], "urn:uuid:" + U,
         U[:-1], U[:8] + "_" + U[9:]]  # fmt: skip
scalars = st.none() | st.booleans() | st.integers(-5, 12) | st.floats(allow_nan=False)
json_values = st.recursive(
    scalars
    | st.sampled_from([*UUIDS, "a", "AB", "a@b.c", "x", "2026-11-27T09:00:00Z",
                       "2026-13-27T09:00:00Z", "id", "one", "tag"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["id", "email", "at", "n", "x", "tag", "one", "list",
                                       "code", "a", "zz"]), children, max_size=6),
    max_leaves=12,
)  # fmt: skip


@pytest.mark.parametrize("document", SCHEMAS, ids=range(len(SCHEMAS)))
@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_fast_path_verdict_equals_jsonschema(document, value):
    schema = EventSchema("thing.happened", "1.0.0", document)
    fast = CompiledSchema(schema, fast=True)
    plain = CompiledSchema(schema, fast=False)
    assert fast.is_valid(value) == plain.is_valid(value)


def test_the_property_test_exercises_the_fast_path():
    assert all(CompiledSchema(EventSchema("t.t", "1.0.0", d)).fast for d in SCHEMAS)
