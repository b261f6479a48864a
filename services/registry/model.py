"""The registry's domain records: groups and schema versions."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FORMATS", "Group", "Version"]

#: Schema formats by their lower-case names.
FORMATS = ("avro", "json")


@dataclass(frozen=True)
class Group:
    """A schema group: its format (``avro``/``json``) and compatibility mode (``BACKWARD``, ...)."""

    group_id: str
    format: str
    compatibility: str
    create_time: float
    update_time: float


@dataclass(frozen=True)
class Version:
    """One registered schema version."""

    id: str
    group_id: str
    name: str
    version: int
    format: str
    definition: str
    fingerprint: str
    create_time: float

    @property
    def resource_name(self) -> str:
        return f"schemaGroups/{self.group_id}/schemas/{self.name}/versions/{self.version}"
