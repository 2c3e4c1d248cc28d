"""Structural comparison of two JSON Schemas: how a reader may reject what a writer accepts.

A *writer* schema is the one data was produced with; a *reader* schema the one it is validated
with. :func:`breaking_changes` walks both together (property by property, into array items,
through local ``$ref``s) and lists each change by which the reader may reject a value the writer
accepts. It is conservative: a keyword it does not analyse (``oneOf``, ``if``, ``prefixItems``,
...) must be unchanged, or the difference is reported as one it cannot check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from jsonschema.protocols import Validator

from wowevent_kombu.core.findings import Change
from wowevent_kombu.schemas.schema import EventSchema, canonical_json, validator_class

_TYPES = ("array", "boolean", "null", "number", "object", "string")
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
     "writeOnly", "$schema", "$id", "$defs", "definitions"}
)  # fmt: skip
_OBJECT = frozenset(
    {"properties", "required", "additionalProperties", "patternProperties", "minProperties",
     "maxProperties", "propertyNames", "dependentRequired", "dependentSchemas", "dependencies"}
)  # fmt: skip
_ARRAY = frozenset(
    {"items", "prefixItems", "contains", "minContains", "maxContains", "minItems", "maxItems",
     "uniqueItems"}
)  # fmt: skip
_HANDLED = frozenset(
    {"type", "enum", "const", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
     "multipleOf", "minLength", "maxLength", "pattern", "format", "items", "minItems",
     "maxItems", "uniqueItems", "properties", "required", "additionalProperties",
     "minProperties", "maxProperties"}
)  # fmt: skip


def breaking_changes(writer: EventSchema, reader: EventSchema) -> list[Change]:
    """Ways in which ``reader`` may reject data that ``writer`` accepts."""
    diff = _Diff(writer, reader)
    diff.compare(writer.schema, reader.schema, "$")
    return diff.changes


def _child(path: str, name: str) -> str:
    if name.isidentifier():
        return f"{path}.{name}"
    return f"{path}[{json.dumps(name)}]"


def _normal(node: Any) -> dict[str, Any] | None:
    """A schema as a dict without annotations; ``None`` for the schema that accepts nothing."""
    if node is True:
        return {}
    if node is False:
        return None
    if isinstance(node, Mapping):
        if node.get("not") in ({}, True) and len(node) == 1:
            return None
        return {k: v for k, v in node.items() if k not in _ANNOTATIONS}
    return {"$invalid": node}


def _pointer(root: Any, ref: str) -> Any:
    """What a local ``$ref`` (``#/$defs/x``) points to in ``root``, or ``None``."""
    target = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return None
    return target


def _inline(node: Any, root: Any, depth: int) -> Any:
    """``node`` with local ``$ref``s replaced by their targets, ``depth`` levels deep."""
    if isinstance(node, list):
        return [_inline(item, root, depth) for item in node]
    if not isinstance(node, Mapping):
        return node
    out = {k: _inline(v, root, depth) for k, v in node.items() if k != "$ref"}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = _pointer(root, ref) if ref.startswith("#") and depth > 0 else None
        out["$ref"] = ref if target is None else _inline(target, root, depth - 1)
    return out


def _types(node: Mapping[str, Any]) -> set[str]:
    declared = node.get("type")
    if declared is None:
        return set(_TYPES)
    return {declared} if isinstance(declared, str) else set(declared)


def _accepts_type(reader: set[str], kind: str) -> bool:
    return kind in reader or (kind == "integer" and "number" in reader)


def _bound(node: Mapping[str, Any], inclusive: str, exclusive: str) -> tuple[Any, bool] | None:
    found: list[tuple[Any, bool]] = []
    if isinstance(node.get(inclusive), int | float) and not isinstance(node[inclusive], bool):
        found.append((node[inclusive], False))
    if isinstance(node.get(exclusive), int | float) and not isinstance(node[exclusive], bool):
        found.append((node[exclusive], True))
    if not found:
        return None
    if inclusive == "minimum":
        return max(found)  # the tighter lower bound; exclusive wins a tie
    return min(found, key=lambda b: (b[0], not b[1]))


class _Diff:
    def __init__(self, writer: EventSchema, reader: EventSchema) -> None:
        self.writer_root = writer.schema
        self.reader_root = reader.schema
        self.w = writer.version
        self.r = reader.version
        cls = validator_class(reader.schema)
        self.reader_validator: Validator = cls(reader.schema, format_checker=cls.FORMAT_CHECKER)
        self.changes: list[Change] = []
        self._active: set[tuple[int, int]] = set()

    def add(self, path: str, kind: str, text: str) -> None:
        self.changes.append(Change(path, kind, text.format(w=self.w, r=self.r)))

    def deref(self, node: Any, root: Mapping[str, Any]) -> Any:
        seen = 0
        while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
            if set(node) - _ANNOTATIONS - {"$ref"} or not node["$ref"].startswith("#"):
                return node  # siblings or a remote target: compared as written
            target = _pointer(root, node["$ref"])
            if target is None:
                return node
            node = target
            seen += 1
            if seen > 50:
                return node
        return node

    def collect(self, writer: Any, reader: Any, path: str) -> list[Change]:
        """The changes found under one pair of subschemas, kept apart from the rest."""
        saved, self.changes = self.changes, []
        try:
            self.compare(writer, reader, path)
            return self.changes
        finally:
            self.changes = saved

    def unsupported(self, path: str, keyword: str, because: str = "") -> None:
        reason = f" (with '{because}', the object/array part must not change)" if because else ""
        self.add(
            path,
            "unsupported-change",
            f"'{keyword}' differs between {{w}} and {{r}}{reason}; changes under '{keyword}' "
            "are not analysed, so they are refused (register with compatibility='none' if the "
            "change is intended)",
        )

    def same(self, writer: Any, reader: Any) -> bool:
        """Equal as written and with every local ``$ref`` replaced by what it points to."""
        if canonical_json(writer) != canonical_json(reader):
            return False
        if '"$ref"' not in canonical_json(writer):
            return True
        inlined_w = _inline(writer, self.writer_root, 8)
        inlined_r = _inline(reader, self.reader_root, 8)
        return canonical_json(inlined_w) == canonical_json(inlined_r)

    def compare(self, writer: Any, reader: Any, path: str) -> None:
        writer = self.deref(writer, self.writer_root)
        reader = self.deref(reader, self.reader_root)
        key = (id(writer), id(reader))
        if key in self._active:
            return  # a recursive schema: assume the cycle holds (co-inductive reading)
        self._active.add(key)
        try:
            self._compare(writer, reader, _normal(writer), _normal(reader), path)
        finally:
            self._active.discard(key)

    def _compare(
        self,
        raw_w: Any,
        raw_r: Any,
        w: dict[str, Any] | None,
        r: dict[str, Any] | None,
        path: str,
    ) -> None:
        if w is None or r == {}:
            return
        if r is None:
            self.add(path, "schema-false", "{r} accepts no value here; {w} accepts some")
            return
        if "enum" in w or "const" in w:
            values = list(w["enum"]) if "enum" in w else [w["const"]]
            if "const" in w:
                values = [v for v in values if v == w["const"]] or [w["const"]]
            check = self.reader_validator.evolve(schema=raw_r)
            refused = [v for v in values if not check.is_valid(v)]
            if refused:
                shown = ", ".join(json.dumps(v) for v in refused)
                self.add(path, "enum-narrowed", f"{{r}} refuses {shown}, which {{w}} allows")
            return
        for keyword in sorted((set(w) | set(r)) - _HANDLED):
            if not self.same(w.get(keyword), r.get(keyword)):
                self.unsupported(path, keyword)
        # unevaluated* depend on which names/positions the other keywords evaluated: with them,
        # the whole object (or array) part must stay as it was.
        for marker, group in (("unevaluatedProperties", _OBJECT), ("unevaluatedItems", _ARRAY)):
            if marker in w or marker in r:
                for keyword in sorted(group & (set(w) | set(r))):
                    if not self.same(w.get(keyword), r.get(keyword)):
                        self.unsupported(path, keyword, because=marker)
                w = {k: v for k, v in w.items() if k not in group}
                r = {k: v for k, v in r.items() if k not in group}
        if "enum" in r or "const" in r:
            self.add(path, "enum-added", "{r} restricts the value to an enum/const; {w} did not")
            return
        writer_types = _types(w)
        if "type" in r:
            reader_types = _types(r)
            lost = sorted(t for t in writer_types if not _accepts_type(reader_types, t))
            if lost:
                what = "any type" if "type" not in w else ", ".join(lost)
                self.add(
                    path,
                    "type-narrowed",
                    f"{{r}} allows only type {'/'.join(sorted(reader_types))}; {{w}} allows {what}",
                )
            writer_types = {t for t in writer_types if _accepts_type(reader_types, t)}
        if writer_types & {"number", "integer"}:
            self._numbers(w, r, path)
        if "string" in writer_types:
            self._limit(w, r, path, "minLength", "maxLength", "length")
            for keyword in ("pattern", "format"):
                if keyword in r and w.get(keyword) != r[keyword]:
                    self.add(
                        path,
                        f"{keyword}-changed",
                        f"{{r}} requires {keyword} {r[keyword]!r}; {{w}} has "
                        + (repr(w[keyword]) if keyword in w else "none"),
                    )
        if "array" in writer_types:
            self._limit(w, r, path, "minItems", "maxItems", "item count")
            if r.get("uniqueItems") is True and w.get("uniqueItems") is not True:
                self.add(path, "unique-items-added", "{r} requires unique items; {w} does not")
            if "items" in r or "items" in w:
                self.compare(w.get("items", True), r.get("items", True), f"{path}[*]")
        if "object" in writer_types:
            self._objects(w, r, path)

    def _numbers(self, w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> None:
        bounds = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
        if any(isinstance(n.get(k), bool) for n in (w, r) for k in bounds):
            # Draft 4's boolean exclusive* modify minimum/maximum: compared as written.
            for keyword in bounds:
                if w.get(keyword) != r.get(keyword):
                    self.unsupported(path, keyword)
            return
        for inclusive, exclusive, word in (
            ("minimum", "exclusiveMinimum", "lower"),
            ("maximum", "exclusiveMaximum", "upper"),
        ):
            rb = _bound(r, inclusive, exclusive)
            if rb is None:
                continue
            wb = _bound(w, inclusive, exclusive)
            ok = wb is not None and (
                (wb[0] > rb[0] if word == "lower" else wb[0] < rb[0])
                or (wb[0] == rb[0] and (wb[1] or not rb[1]))
            )
            if not ok:
                shown = f"{'exclusive ' if rb[1] else ''}{word} bound {rb[0]}"
                had = f"{'exclusive ' if wb[1] else ''}{wb[0]}" if wb else "none"
                self.add(path, "bound-narrowed", f"{{r}} has {shown}; {{w}} has {had}")
        if "multipleOf" in r:
            wm = w.get("multipleOf")
            ok = wm is not None and (
                (Fraction(str(wm)) / Fraction(str(r["multipleOf"]))).denominator == 1
            )
            if not ok:
                self.add(
                    path,
                    "multiple-of-changed",
                    f"{{r}} requires multiples of {r['multipleOf']}; {{w}} has "
                    + (f"multiples of {wm}" if wm is not None else "none"),
                )

    def _limit(
        self, w: Mapping[str, Any], r: Mapping[str, Any], path: str, low: str, high: str, what: str
    ) -> None:
        if r.get(low, 0) > w.get(low, 0):
            self.add(path, "bound-narrowed", f"{{r}} has {low} {r[low]}; {{w}} has {w.get(low, 0)}")
        if high in r and (high not in w or w[high] > r[high]):
            self.add(
                path,
                "bound-narrowed",
                f"{{r}} has {high} {r[high]}; {{w}} has {w.get(high, 'no ' + what + ' limit')}",
            )

    def _nothing(self, node: Any, root: Mapping[str, Any]) -> bool:
        return _normal(self.deref(node, root)) is None

    def _objects(self, w: Mapping[str, Any], r: Mapping[str, Any], path: str) -> None:
        self._limit(w, r, path, "minProperties", "maxProperties", "property count")
        w_props: Mapping[str, Any] = w.get("properties", {})
        r_props: Mapping[str, Any] = r.get("properties", {})
        w_extra = w.get("additionalProperties", True)
        r_extra = r.get("additionalProperties", True)
        w_required = set(w.get("required", ()))
        for name in sorted(set(r.get("required", ())) - w_required):
            self.add(
                _child(path, name),
                "required-added",
                f"{{r}} requires property {name!r}; {{w}} does not, so its data may lack it",
            )
        for name in sorted(set(w_props) | set(r_props)):
            where = _child(path, name)
            writer_side = _applicable(name, w)
            reader_side = _applicable(name, r)
            if any(self._nothing(s, self.writer_root) for s in writer_side):
                continue  # the writer never produces this property
            if name not in r_props and any(self._nothing(s, self.reader_root) for s in reader_side):
                self.add(
                    where,
                    "property-refused",
                    f"{{r}} refuses property {name!r} (additionalProperties is false), "
                    "which {w} allows",
                )
                continue
            for reader_schema in reader_side:
                # Writer data meets every writer schema here; one of them implying the reader's
                # schema is enough.
                tries = [self.collect(s, reader_schema, where) for s in writer_side]
                if all(tries):
                    self._report_property(name, where, name in w_props, tries[0])
        if "patternProperties" in w or "patternProperties" in r:
            return  # undeclared names: patternProperties must be unchanged (checked above)
        w_closed = self._nothing(w_extra, self.writer_root)
        if self._nothing(r_extra, self.reader_root) and not w_closed:
            self.add(
                f"{path}.*",
                "additional-properties-narrowed",
                "{r} refuses undeclared properties (additionalProperties is false); {w} allows "
                "them",
            )
        elif not w_closed and ("additionalProperties" in r or "additionalProperties" in w):
            self.compare(w_extra, r_extra, f"{path}.*")

    def _report_property(
        self, name: str, where: str, writer_declares: bool, found: list[Change]
    ) -> None:
        if writer_declares:
            self.changes.extend(found)
            return
        self.add(
            where,
            "property-constrained",
            f"{{r}} declares property {name!r} with constraints; {{w}} does not declare it "
            "but lets it through (additionalProperties or patternProperties), so its data may "
            "carry other values there: " + "; ".join(c.description for c in found),
        )


def _applicable(name: str, node: Mapping[str, Any]) -> list[Any]:
    """The subschemas an object schema applies to the value of property ``name``."""
    found = []
    if name in node.get("properties", {}):
        found.append(node["properties"][name])
    for pattern, schema in node.get("patternProperties", {}).items():
        try:
            matches = re.search(pattern, name) is not None
        except re.error:
            matches = True  # unknown to Python's re: assume it applies (the safe reading)
        if matches:
            found.append(schema)
    return found or [node.get("additionalProperties", True)]
