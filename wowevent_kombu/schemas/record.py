"""One registered schema version as the registry keeps it: the schema, its mode and its date."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from wowevent_kombu.schemas.schema import EventSchema


@dataclasses.dataclass(frozen=True)
class SchemaRecord:
    """A registered schema with what the registry knows about its registration."""

    schema: EventSchema
    compatibility: str
    registered_at: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for the CLI)."""
        return {
            "type": self.schema.type,
            "version": self.schema.version,
            "compatibility": self.compatibility,
            "registered_at": self.registered_at,
            "schema": self.schema.schema,
        }

    def to_stored(self) -> str:
        """The JSON text stored for this version (type and version are the Redis key and field)."""
        stored = {
            "schema": self.schema.schema,
            "compatibility": self.compatibility,
            "registered_at": self.registered_at,
        }
        return json.dumps(stored, separators=(",", ":"))

    @classmethod
    def from_stored(cls, event_type: str, version: str, raw: bytes | str) -> SchemaRecord:
        """Read what :meth:`to_stored` wrote (records without a mode or date read them empty)."""
        stored = json.loads(raw)
        return cls(
            EventSchema(event_type, version, stored["schema"]),
            stored.get("compatibility", ""),
            stored.get("registered_at", ""),
        )
