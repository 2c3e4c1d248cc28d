"""What schema checks find: a violation in an event's data, a breaking change between versions.

Plain values with no behaviour beyond their text, so that the errors carrying them
(:class:`~wowevent_kombu.core.errors.EventValidationError`,
:class:`~wowevent_kombu.core.errors.IncompatibleSchemaError`) need nothing from
:mod:`wowevent_kombu.schemas`, which finds them.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Violation:
    """One way an event's data breaks its schema.

    Attributes:
        path: JSON path of the offending value in the data (``$.items[0].sku``).
        message: What is wrong, as ``jsonschema`` words it.
        keyword: The schema keyword that failed (``required``, ``format``, ...).
        schema_path: Where that keyword sits in the schema document.
    """

    path: str
    message: str
    keyword: str
    schema_path: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message} [{self.keyword}]"

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly form (for logs, the CLI and dead-letter records)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Change:
    """One change that breaks compatibility.

    Attributes:
        path: JSON path in the data where it bites (``$.customer.email``, ``$.items[*]``).
        kind: A stable name for the rule (``required-added``, ``type-narrowed``, ...).
        description: The change in words, naming both versions.
        direction: ``backward`` (the new version rejects old data) or ``forward`` (the old
            version rejects new data).
        against: The earlier version it was compared with.
    """

    path: str
    kind: str
    description: str
    direction: str = ""
    against: str = ""

    def __str__(self) -> str:
        return f"{self.path}: {self.description} [{self.kind}]"
