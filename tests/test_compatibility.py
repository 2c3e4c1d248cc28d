"""Table tests of the compatibility rules: each row a schema change and its verdict per mode."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from wowevent_kombu import EventSchema, InvalidSchemaError
from wowevent_kombu.schemas.compatibility import MODES, breaking_changes, check_compatibility

BASE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"enum": ["EUR", "USD"]},
        "email": {"type": "string"},
        "lines": {
            "type": "array",
            "items": {"type": "object", "properties": {"sku": {"type": "string"}}},
        },
    },
    "required": ["id"],
}


def closed(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "additionalProperties": False}


def edit(schema: dict[str, Any], *path_and_value: Any, drop: bool = False) -> dict[str, Any]:
    """A copy of ``schema`` with the value at ``path`` replaced (or removed with drop=True)."""
    out = copy.deepcopy(schema)
    *path, last = path_and_value if drop else path_and_value[:-1]
    node = out
    for key in path:
        node = node[key]
    if drop:
        del node[last]
    else:
        node[last] = path_and_value[-1]
    return out


def add_prop(schema: dict[str, Any], name: str, sub: Any, required: bool = False) -> dict[str, Any]:
    out = edit(schema, "properties", name, sub)
    if required:
        out["required"] = [*out["required"], name]
    return out


OPEN = BASE
CLOSED = closed(BASE)
REF_ANY = {"anyOf": [{"$ref": "#/$defs/money"}, {"type": "null"}],
           "$defs": {"money": {"type": "number"}}}  # fmt: skip
PATTERNED = {**CLOSED, "patternProperties": {"^x_": {"type": "string"}}}
UNEVALUATED = {**edit(BASE, "required", []), "unevaluatedProperties": False}
DRAFT4 = {"$schema": "http://json-schema.org/draft-04/schema#", "type": "number", "minimum": 0}

# (change, old, new, backward ok, forward ok, kind(s) of breaking change reported when refused)
ROWS = [
    ("only annotations change", OPEN, {**OPEN, "title": "Order", "description": "x"},
     True, True, None),
    ("add optional property, open model", OPEN, add_prop(OPEN, "note", {"type": "string"}),
     False, True, "property-constrained"),
    ("add optional property, closed model", CLOSED, add_prop(CLOSED, "note", {"type": "string"}),
     True, False, "property-refused"),
    ("add optional unconstrained property, open model", OPEN, add_prop(OPEN, "note", {}),
     True, True, None),
    ("add required property, open model", OPEN,
     add_prop(OPEN, "note", {"type": "string"}, required=True), False, True, "required-added"),
    ("add required property, closed model", CLOSED,
     add_prop(CLOSED, "note", {"type": "string"}, required=True), False, False,
     "required-added|property-refused"),
    ("remove optional property, open model", OPEN, edit(OPEN, "properties", "amount", drop=True),
     True, False, "property-constrained"),
    ("remove optional property, closed model", CLOSED,
     edit(CLOSED, "properties", "amount", drop=True), False, True, "property-refused"),
    ("remove required property, open model", OPEN,
     {**edit(OPEN, "properties", "id", drop=True), "required": []}, True, False, "required-added"),
    ("make optional property required", OPEN, {**OPEN, "required": ["id", "amount"]},
     False, True, "required-added"),
    ("make required property optional", OPEN, {**OPEN, "required": []},
     True, False, "required-added"),
    ("widen type number -> number|string", OPEN,
     edit(OPEN, "properties", "amount", "type", ["number", "string"]),
     True, False, "type-narrowed"),
    ("narrow type number -> integer", OPEN, edit(OPEN, "properties", "amount", "type", "integer"),
     False, True, "type-narrowed"),
    ("widen enum (add a value)", OPEN,
     edit(OPEN, "properties", "currency", "enum", ["EUR", "USD", "GBP"]),
     True, False, "enum-narrowed"),
    ("narrow enum (remove a value)", OPEN,
     edit(OPEN, "properties", "currency", "enum", ["EUR"]), False, True, "enum-narrowed"),
    ("enum added to a free string", OPEN,
     edit(OPEN, "properties", "email", {"enum": ["a@b.c"]}), False, True, "enum-added"),
    ("additionalProperties true -> false", OPEN, CLOSED,
     False, True, "additional-properties-narrowed"),
    ("additionalProperties false -> true", CLOSED, OPEN,
     True, False, "additional-properties-narrowed"),
    ("tighten minimum 0 -> 1", OPEN, edit(OPEN, "properties", "amount", "minimum", 1),
     False, True, "bound-narrowed"),
    ("minimum -> exclusiveMinimum at the same value", OPEN,
     edit(edit(OPEN, "properties", "amount", "minimum", drop=True),
          "properties", "amount", "exclusiveMinimum", 0), False, True, "bound-narrowed"),
    ("remove minimum", OPEN, edit(OPEN, "properties", "amount", "minimum", drop=True),
     True, False, "bound-narrowed"),
    ("add maxLength", OPEN, edit(OPEN, "properties", "id", "maxLength", 36),
     False, True, "bound-narrowed"),
    ("add format", OPEN, edit(OPEN, "properties", "email", "format", "email"),
     False, True, "format-changed"),
    ("add pattern", OPEN, edit(OPEN, "properties", "id", "pattern", "^o-"),
     False, True, "pattern-changed"),
    ("nested: array item gains a required property", OPEN,
     edit(OPEN, "properties", "lines", "items", "required", ["sku"]),
     False, True, "required-added"),
    ("add uniqueItems", OPEN, edit(OPEN, "properties", "lines", "uniqueItems", True),
     False, True, "unique-items-added"),
    ("unanalysed keyword changes (oneOf)", OPEN,
     {**OPEN, "oneOf": [{"required": ["amount"]}, {"required": ["email"]}]},
     False, False, "unsupported-change"),
    ("same shape through $ref", OPEN,
     {**edit(OPEN, "properties", "amount", {"$ref": "#/$defs/money"}),
      "$defs": {"money": {"type": "number", "minimum": 0}}}, True, True, None),
    ("$ref target narrowed", OPEN,
     {**edit(OPEN, "properties", "amount", {"$ref": "#/$defs/money"}),
      "$defs": {"money": {"type": "integer", "minimum": 0}}}, False, True, "type-narrowed"),
    ("$ref target changed under an unanalysed keyword", REF_ANY,
     {**REF_ANY, "$defs": {"money": {"type": "string"}}}, False, False, "unsupported-change"),
    ("property added, matching patternProperties, other type", PATTERNED,
     # forward holds: the new x_rate must be an integer and (by the pattern) a string, so
     # valid new data never has it.
     add_prop(PATTERNED, "x_rate", {"type": "integer"}), False, True, "property-constrained"),
    ("property added, matching patternProperties, same type", PATTERNED,
     add_prop(PATTERNED, "x_rate", {"type": "string", "maxLength": 3}), False, True,
     "property-constrained"),
    ("property dropped under unevaluatedProperties: false", UNEVALUATED,
     edit(UNEVALUATED, "properties", "amount", drop=True), False, False, "unsupported-change"),
    ("draft 4 boolean exclusiveMinimum added", DRAFT4, {**DRAFT4, "exclusiveMinimum": True},
     False, False, "unsupported-change"),
]  # fmt: skip


def verdict(mode: str, old: dict[str, Any], new: dict[str, Any]) -> list[Any]:
    return check_compatibility(
        mode,
        EventSchema("order.created", "2.0.0", new),
        [EventSchema("order.created", "1.0.0", old)],
    )


@pytest.mark.parametrize(("change", "old", "new", "backward", "forward", "kind"), ROWS,
                         ids=[row[0] for row in ROWS])  # fmt: skip
def test_compatibility_table(change, old, new, backward, forward, kind):
    expected = {
        "none": True,
        "backward": backward,
        "forward": forward,
        "full": backward and forward,
        "backward_transitive": backward,
        "forward_transitive": forward,
        "full_transitive": backward and forward,
    }
    for mode in MODES:
        changes = verdict(mode, old, new)
        assert (not changes) is expected[mode], (change, mode, [str(c) for c in changes])
        if changes:
            found = {c.kind for c in changes}
            assert set(kind.split("|")) & found, (change, mode, [str(c) for c in changes])
            for c in changes:
                assert c.against == "1.0.0"
                assert c.direction in mode or mode.startswith("full")


def test_changes_name_the_path_and_both_versions():
    new = add_prop(OPEN, "note", {"type": "string"}, required=True)
    [required] = [c for c in verdict("backward", OPEN, new) if c.kind == "required-added"]
    assert required.path == "$.note"
    assert "2.0.0 requires property 'note'" in required.description
    assert "1.0.0" in required.description
    nested = verdict(
        "backward", OPEN, edit(OPEN, "properties", "lines", "items", "required", ["sku"])
    )
    assert [c.path for c in nested] == ["$.lines[*].sku"]


def test_transitive_modes_check_every_earlier_version():
    # v2 was registered with 'none' and dropped a currency; v3 is backward compatible with v2
    # only. Plain backward compares with the latest earlier version; the transitive mode with all.
    v1 = EventSchema("order.created", "1.0.0", OPEN)
    v2 = EventSchema(
        "order.created", "2.0.0", edit(OPEN, "properties", "currency", "enum", ["EUR"])
    )
    v3 = EventSchema("order.created", "3.0.0", v2.schema | {"title": "v3"})
    assert check_compatibility("backward", v3, [v1, v2]) == []
    changes = check_compatibility("backward_transitive", v3, [v1, v2])
    assert [(c.against, c.kind) for c in changes] == [("1.0.0", "enum-narrowed")]
    assert '"USD"' in changes[0].description


def test_recursive_schema_does_not_loop():
    tree = {"$defs": {"node": {"type": "object", "properties": {
        "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
        "$ref": "#/$defs/node"}  # fmt: skip
    schema = EventSchema("tree.changed", "1.0.0", tree)
    assert breaking_changes(schema, schema) == []


def test_unknown_mode_is_refused_with_the_list():
    with pytest.raises(InvalidSchemaError, match="backward_transitive"):
        verdict("sideways", OPEN, OPEN)
