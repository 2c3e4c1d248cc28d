"""Compatibility rules between schema versions, named as Confluent Schema Registry names them.

A *writer* schema is the one data was produced with; a *reader* schema is the one it is
validated with. The reader is compatible with the writer when every instance the writer accepts
is accepted by the reader. :func:`breaking_changes` lists the structural changes by which a
reader may reject such an instance; each mode picks who reads whom:

- ``backward``: the new version reads data written with the latest earlier one;
- ``forward``: the latest earlier version reads data written with the new one;
- ``full``: both; ``none``: nothing is checked;
- ``*_transitive``: the same against every earlier version, not only the latest.

:func:`admit` adds the registry's own rules to the mode's: a registered version never changes,
and versions are added in increasing order.

The analysis (:mod:`wowevent_kombu.schemas.diff`) is conservative: a keyword it does not analyse
(``oneOf``, ``if``, ``prefixItems``, a changed ``patternProperties``, ...) must be unchanged,
or the change is reported as one that cannot be checked. ``docs/schemas.md`` lists every rule
with examples.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from wowevent_kombu.core.errors import (
    IncompatibleSchemaError,
    InvalidSchemaError,
    SchemaConflictError,
)
from wowevent_kombu.core.findings import Change
from wowevent_kombu.schemas.diff import breaking_changes
from wowevent_kombu.schemas.schema import EventSchema

__all__ = [
    "DEFAULT_MODE",
    "MODES",
    "Change",
    "admit",
    "breaking_changes",
    "check_compatibility",
    "validate_mode",
]

MODES = (
    "none",
    "backward",
    "forward",
    "full",
    "backward_transitive",
    "forward_transitive",
    "full_transitive",
)
"""Accepted values of ``compatibility=``."""

DEFAULT_MODE = "backward"
"""The mode used when ``register`` is not told one (Confluent's default too)."""


def validate_mode(mode: str) -> str:
    """Return ``mode`` if it is a compatibility mode, else raise naming the accepted ones."""
    if mode not in MODES:
        raise InvalidSchemaError(
            f"compatibility mode {mode!r} is unknown; use one of {', '.join(MODES)}"
        )
    return mode


def check_compatibility(
    mode: str, new: EventSchema, existing: Sequence[EventSchema]
) -> list[Change]:
    """The changes that make ``new`` unacceptable under ``mode`` (empty: accepted).

    Args:
        mode: One of :data:`MODES`.
        new: The version being registered.
        existing: The versions already registered for the type (any order).
    """
    validate_mode(mode)
    if mode == "none" or not existing:
        return []
    base, _, transitive = mode.partition("_")
    ordered = sorted(existing, key=lambda s: s.semver)
    against = ordered if transitive else ordered[-1:]
    changes: list[Change] = []
    for old in against:
        pairs = []
        if base in ("backward", "full"):
            pairs.append(("backward", old, new))
        if base in ("forward", "full"):
            pairs.append(("forward", new, old))
        for direction, writer, reader in pairs:
            changes += [
                dataclasses.replace(c, direction=direction, against=old.version)
                for c in breaking_changes(writer, reader)
            ]
    return changes


def admit(new: EventSchema, existing: Sequence[EventSchema], mode: str) -> bool:
    """Whether ``new`` may join the registered versions ``existing`` under ``mode``.

    Returns:
        True when it may be stored, False when it is already registered with the same document.

    Raises:
        InvalidSchemaError: unknown compatibility mode.
        SchemaConflictError: the version exists with another document, or is not newer than
            every version in ``existing`` (versions are append-only).
        IncompatibleSchemaError: the mode refuses the change; ``changes`` names each one.
    """
    for other in existing:
        if other.semver == new.semver:
            if other.fingerprint == new.fingerprint:
                return False
            raise SchemaConflictError(
                f"schema {new.type} {other.version} is already registered with a "
                "different document; versions never change: register it as a new version",
                event_type=new.type,
                version=new.version,
            )
    if existing:
        latest = max(existing, key=lambda s: s.semver)
        if new.semver < latest.semver:
            raise SchemaConflictError(
                f"schema {new.type} {new.version} is older than the latest registered "
                f"version {latest.version}; versions are added in increasing order",
                event_type=new.type,
                version=new.version,
            )
    changes = check_compatibility(mode, new, existing)
    if changes:
        lines = "\n".join(f"  against {c.against} ({c.direction}): {c}" for c in changes)
        raise IncompatibleSchemaError(
            f"schema {new.type} {new.version} is not {mode} compatible:\n{lines}",
            event_type=new.type,
            version=new.version,
            mode=mode,
            changes=changes,
        )
    return True
