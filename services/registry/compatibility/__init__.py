"""Compatibility modes (as Confluent and Azure define them) over per-format rules.

``check(mode, new, previous)`` returns the issues that stop ``new`` from
becoming the next version; an empty list means it may.

- BACKWARD: the new version, as reader, can read data written with the latest
  version; FORWARD: the latest version, as reader, can read data written with
  the new one; FULL: both.
- The ``_TRANSITIVE`` forms check against every earlier (not deleted) version
  instead of only the latest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from headwater.services.registry.canonical import ParsedSchema

__all__ = ["MODES", "Issue", "check"]

MODES = ("NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
         "FULL", "FULL_TRANSITIVE")


@dataclass(frozen=True)
class Issue:
    """One broken rule: where, which rule, what, against which version, which direction."""

    path: str
    rule: str
    message: str
    version: int = 0
    direction: str = ""

    def __str__(self) -> str:
        return f"v{self.version} {self.direction} {self.path}: {self.rule}: {self.message}"


def can_read(reader: ParsedSchema, writer: ParsedSchema) -> list[Issue]:
    """Issues that stop ``reader`` from reading data written with ``writer``."""
    if reader.format == "avro":
        from headwater.services.registry.compatibility import avro

        return avro.can_read(reader, writer)
    from headwater.services.registry.compatibility import jsonschema

    return jsonschema.can_read(reader, writer)


def check(mode: str, new: ParsedSchema, previous: Sequence[tuple[int, ParsedSchema]]) -> list[Issue]:
    """Issues of registering ``new`` after ``previous`` ((version, schema), oldest first) under ``mode``."""
    if mode == "NONE" or not previous:
        return []
    targets = list(previous) if mode.endswith("_TRANSITIVE") else [previous[-1]]
    base = mode.removesuffix("_TRANSITIVE")
    issues: list[Issue] = []
    for version, old in reversed(targets):
        if base in ("BACKWARD", "FULL"):
            issues += [Issue(i.path, i.rule, i.message, version, "BACKWARD") for i in can_read(new, old)]
        if base in ("FORWARD", "FULL"):
            issues += [Issue(i.path, i.rule, i.message, version, "FORWARD") for i in can_read(old, new)]
    return issues
