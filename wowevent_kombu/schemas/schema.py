"""One event schema: a type, a semantic version and a JSON Schema document, compiled once.

A compiled schema answers "is this data valid?" on the hot path and, only when it is not, lists
every violation. The verdict always comes from ``jsonschema`` (the draft declared in ``$schema``,
Draft 2020-12 when absent, format assertions on). When the document uses only keywords whose
meaning ``fastjsonschema`` shares, a ``fastjsonschema`` function answers first: its "valid" is
taken, its "invalid" is re-checked by ``jsonschema``, so the fast path can make validation
cheaper but never more lenient than ``jsonschema``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import total_ordering
from pathlib import Path
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema import Draft202012Validator, validators
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for

from wowevent_kombu.core.errors import InvalidEventTypeError, InvalidSchemaError
from wowevent_kombu.core.event import encode_json, validate_event_type
from wowevent_kombu.core.findings import Violation

_SEMVER = re.compile(
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
    r"(?:\.(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*))*))?"
    r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?\Z"
)

DEFAULT_DRAFT = Draft202012Validator
"""The JSON Schema draft used when a document declares no ``$schema``."""


@total_ordering
@dataclasses.dataclass(frozen=True)
class SemVer:
    """A semantic version (semver.org 2.0.0), ordered by precedence; build metadata is ignored."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()
    text: str = dataclasses.field(default="", compare=False)

    @classmethod
    def parse(cls, text: object) -> SemVer:
        """Parse ``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``.

        Raises:
            InvalidSchemaError: ``text`` is not a semantic version.
        """
        match = _SEMVER.match(text) if isinstance(text, str) else None
        if match is None:
            raise InvalidSchemaError(
                f"schema version {text!r} is not a semantic version; use MAJOR.MINOR.PATCH, "
                "e.g. '1.0.0' or '2.1.0-rc.1'"
            )
        pre = tuple(int(p) if p.isdigit() else p for p in (match[4] or "").split(".") if p)
        return cls(int(match[1]), int(match[2]), int(match[3]), pre, text)  # type: ignore[arg-type]

    def _key(self) -> tuple[Any, ...]:
        # A release sorts after its pre-releases; numeric identifiers sort before alphanumeric.
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, not self.prerelease, pre)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SemVer):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __str__(self) -> str:
        return self.text


def canonical_json(document: Any) -> str:
    """Key-sorted compact JSON: two documents are the same schema iff these strings are equal."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def validator_class(document: Mapping[str, Any]) -> type[Validator]:
    """The ``jsonschema`` validator class for the draft ``document`` declares.

    Raises:
        InvalidSchemaError: ``$schema`` names a draft ``jsonschema`` does not know.
    """
    if "$schema" not in document:
        return DEFAULT_DRAFT
    cls: type[Validator] | None = validator_for(document, default=None)  # type: ignore[arg-type]
    if cls is None:
        raise InvalidSchemaError(
            f"$schema {document['$schema']!r} is not a JSON Schema draft this library knows; "
            "use https://json-schema.org/draft/2020-12/schema or omit $schema"
        )
    return cls


@dataclasses.dataclass(frozen=True, eq=False)
class EventSchema:
    """The JSON Schema that the ``data`` of events of one type follows, at one version.

    Args:
        type: The event type, e.g. ``order.created``.
        version: Semantic version of this schema (``1.0.0``).
        schema: A JSON Schema document (a dict); Draft 2020-12 unless ``$schema`` says another.

    Raises:
        InvalidSchemaError: the type, version or document is unusable; raised on construction,
            so nothing invalid ever reaches the registry.
    """

    type: str
    version: str
    schema: Mapping[str, Any]

    def __post_init__(self) -> None:
        try:
            validate_event_type(self.type)
        except InvalidEventTypeError as exc:
            raise InvalidSchemaError(f"schema type is not a valid event type: {exc}") from exc
        SemVer.parse(self.version)
        where = f"schema {self.type} {self.version}"
        if not isinstance(self.schema, Mapping):
            raise InvalidSchemaError(
                f"{where}: the document must be a JSON object, got {type(self.schema).__name__}"
            )
        try:
            # A private copy: the caller mutating its dict later cannot change a registered schema.
            document = json.loads(encode_json(self.schema))
        except ValueError as exc:
            raise InvalidSchemaError(f"{where}: the document is not JSON: {exc}") from exc
        object.__setattr__(self, "schema", document)
        cls = validator_class(document)
        try:
            cls.check_schema(document)
        except jsonschema.SchemaError as exc:
            path = exc.json_path if hasattr(exc, "json_path") else "$"
            raise InvalidSchemaError(
                f"{where} is not a valid JSON Schema: at {path}: {exc.message}"
            ) from exc

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EventSchema):
            return NotImplemented
        return (self.type, SemVer.parse(self.version), self.fingerprint) == (
            other.type,
            SemVer.parse(other.version),
            other.fingerprint,
        )

    __hash__ = None  # type: ignore[assignment]

    @property
    def semver(self) -> SemVer:
        """The version, parsed."""
        return SemVer.parse(self.version)

    @property
    def fingerprint(self) -> str:
        """The document in canonical JSON (what "the same document" means on re-registration)."""
        return canonical_json(self.schema)

    @classmethod
    def from_file(
        cls, path: str | Path, *, type: str | None = None, version: str | None = None
    ) -> EventSchema:
        """Read a schema file.

        Either an envelope ``{"type": ..., "version": ..., "schema": {...}}``, or a bare JSON
        Schema stored as ``<type>/<version>.json`` (the layout :meth:`SchemaRegistry.load_dir`
        reads). ``type`` and ``version`` override what the file or its path say.

        Raises:
            InvalidSchemaError: unreadable file, not JSON, or type/version not determinable.
        """
        file = Path(path)
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise InvalidSchemaError(f"cannot read schema file {file}: {exc}") from exc
        if isinstance(document, dict) and {"type", "version", "schema"} <= set(document):
            return cls(type or document["type"], version or document["version"], document["schema"])
        chosen_type = type or file.parent.name
        chosen_version = version or file.stem
        if not _SEMVER.match(chosen_version):
            raise InvalidSchemaError(
                f"{file}: cannot tell the version; name the file <version>.json inside a folder "
                "named after the event type, or use the envelope "
                '{"type": ..., "version": ..., "schema": {...}}'
            )
        return cls(chosen_type, chosen_version, document)


def describe_violations(violations: list[Violation], limit: int = 20) -> str:
    """The violations as one line each (at most ``limit``, then a count of the rest)."""
    shown = [f"  {v}" for v in violations[:limit]]
    if len(violations) > limit:
        shown.append(f"  ... and {len(violations) - limit} more")
    return "\n".join(shown)


# Keywords whose meaning is the same in Draft 7 (what fastjsonschema implements) and in 2019-09 /
# 2020-12, given that formats are checked by jsonschema's own functions in both.
_FAST_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "properties", "required", "additionalProperties",
        "patternProperties", "propertyNames", "minProperties", "maxProperties", "items",
        "minItems", "maxItems", "uniqueItems", "contains", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength", "maxLength",
        "pattern", "format", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "$ref",
        "$defs", "definitions", "title", "description", "default", "examples", "$comment",
        "deprecated", "readOnly", "writeOnly",
    }
)  # fmt: skip
_ANNOTATIONS = frozenset(
    {"title", "description", "default", "examples", "$comment", "deprecated", "readOnly",
     "writeOnly"}
)  # fmt: skip
_SCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "definitions")
_SCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf")
_SCHEMA_KEYWORDS = (
    "additionalProperties", "propertyNames", "items", "contains", "not", "if", "then", "else",
)  # fmt: skip
_DRAFT7 = "http://json-schema.org/draft-07/schema#"
_CANONICAL_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def _fast_compatible(node: Any, formats: Mapping[str, Any], *, root: bool = False) -> bool:
    if isinstance(node, bool):
        return True
    if not isinstance(node, Mapping):
        return False
    for key in node:
        if key not in _FAST_KEYWORDS and not (root and key == "$schema"):
            return False
    ref = node.get("$ref")
    if ref is not None and (not str(ref).startswith("#") or set(node) - _ANNOTATIONS - {"$ref"}):
        return False  # Draft 7 ignores $ref siblings; 2020-12 applies them.
    if "format" in node and node["format"] not in formats:
        return False
    if "items" in node and not isinstance(node["items"], Mapping | bool):
        return False  # the array form means prefixItems in 2020-12
    if "multipleOf" in node and not isinstance(node["multipleOf"], int):
        return False  # jsonschema's float arithmetic refuses 0.3 as a multiple of 0.1
    children: list[Any] = [node[k] for k in _SCHEMA_KEYWORDS if k in node]
    for key in _SCHEMA_MAP_KEYWORDS:
        if key in node:
            children.extend(node[key].values())
    for key in _SCHEMA_LIST_KEYWORDS:
        children.extend(node.get(key, ()))
    return all(_fast_compatible(child, formats) for child in children)


def _is_array(checker: Any, instance: Any) -> bool:
    return isinstance(instance, list | tuple)


@functools.cache
def _wire_types(cls: type[Validator]) -> type[Validator]:
    """``cls`` seeing a tuple as an array: it goes on the wire as a JSON array."""
    type_checker = cls.TYPE_CHECKER.redefine("array", _is_array)
    extended: type[Validator] = validators.extend(cls, type_checker=type_checker)  # type: ignore[no-untyped-call]
    return extended


def _fast_document(cls: type[Validator], document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The document as fastjsonschema should read it, or ``None`` for drafts it cannot run."""
    if cls in (jsonschema.Draft4Validator, jsonschema.Draft6Validator, jsonschema.Draft7Validator):
        return dict(document)
    if cls in (jsonschema.Draft201909Validator, DEFAULT_DRAFT):
        return {**document, "$schema": _DRAFT7}
    return None


def _fast_formats(checker: jsonschema.FormatChecker) -> dict[str, Callable[[Any], bool]]:
    """jsonschema's own format functions, with ``FormatChecker.conforms``'s meaning."""

    def check(func: Callable[[Any], Any], raises: Any) -> Callable[[Any], bool]:
        def conforms(value: Any) -> bool:
            try:
                return bool(func(value))
            except raises:
                return False

        return conforms

    formats = {name: check(func, raises) for name, (func, raises) in checker.checkers.items()}
    if "uuid" in formats:
        # Every string this accepts, jsonschema's uuid check accepts too (it parses with
        # uuid.UUID, several times slower); anything else falls back to jsonschema's verdict.
        formats["uuid"] = lambda value: _CANONICAL_UUID.fullmatch(value) is not None
    return formats


class CompiledSchema:
    """An :class:`EventSchema` compiled for repeated validation (compile once, reuse per event).

    Attributes:
        schema: What was compiled.
        fast: Whether the ``fastjsonschema`` pre-check is in use for this document.
    """

    def __init__(self, schema: EventSchema, *, fast: bool = True) -> None:
        self.schema = schema
        cls = validator_class(schema.schema)
        checker = cls.FORMAT_CHECKER
        self._validator: Validator = _wire_types(cls)(schema.schema, format_checker=checker)
        self._fast: Callable[[Any], Any] | None = None
        if fast:
            formats = _fast_formats(checker)
            document = _fast_document(cls, schema.schema)
            if document is not None and _fast_compatible(document, formats, root=True):
                try:
                    self._fast = fastjsonschema.compile(
                        document, formats=formats, use_default=False
                    )
                except Exception:  # its code generator has bugs; jsonschema alone then
                    self._fast = None
        self.fast = self._fast is not None

    def is_valid(self, data: Any) -> bool:
        """Whether ``data`` follows the schema (``jsonschema``'s verdict)."""
        if self._fast is not None:
            try:
                self._fast(data)
            except Exception:  # noqa: S110 - "invalid" is re-checked: jsonschema has the last word
                pass
            else:
                return True
        return bool(self._validator.is_valid(data))

    def violations(self, data: Any) -> list[Violation]:
        """Every violation in ``data`` (empty when valid), ordered by path."""
        if self.is_valid(data):
            return []
        return sorted(self._iter(data), key=lambda v: (v.path, v.keyword, v.message))

    def _iter(self, data: Any) -> Iterator[Violation]:
        for error in self._validator.iter_errors(data):
            yield Violation(
                path=error.json_path,
                message=error.message,
                keyword=str(error.validator),
                schema_path="/" + "/".join(str(p) for p in error.absolute_schema_path),
            )
