"""Avro compatibility: can a reader schema read data written with a writer schema?

Follows the schema-resolution rules of the Avro specification (and the rule
names of Avro Java's ``SchemaCompatibility``):

- same primitive type, or a promotion: int -> long, float, double;
  long -> float, double; float -> double; string <-> bytes;
- records: the same unqualified name (or the writer's name among the reader's
  aliases); each reader field is found in the writer by name or by one of the
  reader field's aliases and its type resolves, or else the reader field has a
  default (READER_FIELD_MISSING_DEFAULT_VALUE); writer fields the reader lacks
  are skipped;
- enums: every writer symbol is a reader symbol, unless the reader enum has a
  default symbol (MISSING_ENUM_SYMBOLS);
- fixed: same name and size (FIXED_SIZE_MISMATCH);
- arrays and maps: items and values resolve;
- unions: every branch of a writer union resolves against the reader; a writer
  branch (or non-union writer) must match some branch of a reader union
  (MISSING_UNION_BRANCH);
- logical types do not change resolution (the underlying types decide).
"""

from __future__ import annotations

from typing import Any

from headwater.services.registry.canonical import PRIMITIVES, ParsedSchema
from headwater.services.registry.compatibility import Issue

__all__ = ["can_read"]

#: writer type -> reader types it promotes to.
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def can_read(reader: ParsedSchema, writer: ParsedSchema) -> list[Issue]:
    return _Checker(reader.names, writer.names).check(reader.tree, writer.tree, "")


def _short(name: str) -> str:
    return name.rpartition(".")[2]


def _describe(schema: Any) -> str:
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union[" + ", ".join(_describe(b) for b in schema) + "]"
    if "name" in schema:
        return f"{schema['type']} {schema['name']}"
    return schema["type"]


class _Checker:
    def __init__(self, reader_names: dict[str, Any], writer_names: dict[str, Any]) -> None:
        self.rn, self.wn = reader_names, writer_names
        self.seen: set[tuple[int, int]] = set()

    @staticmethod
    def _deref(schema: Any, names: dict[str, Any]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return names[schema]
        return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, str):
            return schema
        if isinstance(schema, list):
            return "union"
        return schema["type"]

    def check(self, reader: Any, writer: Any, path: str) -> list[Issue]:
        reader, writer = self._deref(reader, self.rn), self._deref(writer, self.wn)
        rk, wk = self._kind(reader), self._kind(writer)
        if wk == "union":
            issues: list[Issue] = []
            for branch in writer:
                issues += self.check(reader, branch, path)
            return issues
        if rk == "union":
            for branch in reader:
                if not self.check(branch, writer, path):
                    return []
            return [Issue(path or "/", "MISSING_UNION_BRANCH",
                          f"the reader's {_describe(reader)} has no branch for the writer's {_describe(writer)}")]
        if rk != wk:
            if wk in PROMOTIONS and rk in PROMOTIONS[wk]:
                return []
            return [Issue(path or "/", "TYPE_MISMATCH",
                          f"the writer's {_describe(writer)} cannot be read as {_describe(reader)}"
                          + (f" (promotions from {wk}: {', '.join(sorted(PROMOTIONS[wk]))})"
                             if wk in PROMOTIONS else ""))]
        if rk in PRIMITIVES:
            return []
        if rk == "array":
            return self.check(reader["items"], writer["items"], f"{path}/items")
        if rk == "map":
            return self.check(reader["values"], writer["values"], f"{path}/values")
        name_issue = self._names_match(reader, writer, path)
        if name_issue:
            return [name_issue]
        if rk == "fixed":
            if reader["size"] != writer["size"]:
                return [Issue(path or "/", "FIXED_SIZE_MISMATCH",
                              f"fixed {reader['name']} has size {reader['size']}, the writer's {writer['size']}")]
            return []
        if rk == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                return [Issue(path or "/", "MISSING_ENUM_SYMBOLS",
                              f"enum {reader['name']} lacks the writer's symbols {missing} and has no default")]
            return []
        return self._record(reader, writer, path)

    def _names_match(self, reader: dict, writer: dict, path: str) -> Issue | None:
        rname, wname = reader["name"], writer["name"]
        if _short(rname) == _short(wname) or wname in reader.get("aliases", ()) \
                or _short(wname) in {_short(a) for a in reader.get("aliases", ())}:
            return None
        return Issue(path or "/", "NAME_MISMATCH",
                     f"the reader's {reader['type']} {rname} is not the writer's {wname} "
                     f"(add {wname!r} to its aliases to rename it)")

    def _record(self, reader: dict, writer: dict, path: str) -> list[Issue]:
        key = (id(reader), id(writer))
        if key in self.seen:  # a recursive type met again while checking it: decided above
            return []
        self.seen.add(key)
        try:
            return self._fields(reader, writer, path)
        finally:
            self.seen.discard(key)

    def _fields(self, reader: dict, writer: dict, path: str) -> list[Issue]:
        by_name = {f["name"]: f for f in writer["fields"]}
        issues: list[Issue] = []
        for field in reader["fields"]:
            wfield = by_name.get(field["name"])
            if wfield is None:
                for alias in field.get("aliases", ()):
                    if alias in by_name:
                        wfield = by_name[alias]
                        break
            fpath = f"{path}/fields/{field['name']}"
            if wfield is None:
                if "default" not in field:
                    issues.append(Issue(fpath, "READER_FIELD_MISSING_DEFAULT_VALUE",
                                        f"field {field['name']!r} of {reader['name']} is not in the writer's "
                                        "schema and has no default"))
                continue
            issues += self.check(field["type"], wfield["type"], f"{fpath}/type")
        return issues
