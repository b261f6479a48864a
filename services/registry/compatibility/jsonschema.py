"""JSON Schema compatibility: does a reader schema accept every document a writer schema accepts?

Rules (names after Confluent's JSON Schema checker):

- types: every writer type must be a reader type (``integer`` is read as
  ``number``, not the other way round): TYPE_CHANGED; a schema with no type
  read by one with a type: TYPE_NARROWED;
- ``enum``: the reader's values must include the writer's: ENUM_ARRAY_NARROWED;
- objects: a property the reader requires and the writer did not:
  REQUIRED_PROPERTY_ADDED (new property) or PROPERTY_MADE_REQUIRED; a
  property of both is checked recursively; a writer property the reader
  dropped while closing its content model (``additionalProperties: false``):
  PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL, or checked against the reader's
  ``additionalProperties`` schema; ``additionalProperties`` turned false or
  narrowed to a schema: ADDITIONAL_PROPERTIES_NARROWED;
- a property added as optional is compatible (Confluent refuses it when the
  writer's content model is open, because old documents could carry that
  name with another type; we take the writer's declared properties at their
  word, which is what people adding an optional field expect);
- arrays: ``items`` recursively;
- bounds: ``maxLength``, ``maximum``, ``maxItems``, ``maxProperties`` lowered
  or added, ``minLength``, ``minimum``, ``minItems``, ``minProperties`` raised
  or added: *_NARROWED (e.g. MAX_LENGTH_NARROWED);
- ``anyOf``/``oneOf``: each writer branch must be read by the reader; a
  reader with branches must read the writer with one of them;
- local ``$ref`` (``#/...``) are followed.
"""

from __future__ import annotations

from typing import Any

from headwater.services.registry.canonical import ParsedSchema
from headwater.services.registry.compatibility import Issue

__all__ = ["can_read"]

_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties")
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties")


def can_read(reader: ParsedSchema, writer: ParsedSchema) -> list[Issue]:
    return _Checker(reader.tree, writer.tree).check(reader.tree, writer.tree, "")


def _rule(name: str) -> str:
    out = "".join("_" + c if c.isupper() else c for c in name).upper()
    return out + "_NARROWED"


class _Checker:
    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self.rroot, self.wroot = reader_root, writer_root
        self.seen: set[tuple[int, int]] = set()

    @staticmethod
    def _resolve(schema: Any, root: Any) -> Any:
        for _ in range(32):
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)
                    and schema["$ref"].startswith("#")):
                return schema
            node = root
            for part in schema["$ref"][1:].strip("/").split("/"):
                if not part:
                    continue
                part = part.replace("~1", "/").replace("~0", "~")
                node = node.get(part) if isinstance(node, dict) else None
            schema = node if node is not None else {}
        return schema

    @staticmethod
    def _types(schema: dict) -> set[str] | None:
        t = schema.get("type")
        if t is None:
            return None
        return {t} if isinstance(t, str) else set(t)

    def check(self, reader: Any, writer: Any, path: str) -> list[Issue]:
        reader, writer = self._resolve(reader, self.rroot), self._resolve(writer, self.wroot)
        where = path or "/"
        if writer is False or reader is True or reader == {}:
            return []
        if reader is False:
            return [Issue(where, "TYPE_NARROWED", "the reader accepts nothing (false)")]
        if writer is True:
            writer = {}
        key = (id(reader), id(writer))
        if key in self.seen:
            return []
        self.seen.add(key)
        try:
            return self._check(reader, writer, path, where)
        finally:
            self.seen.discard(key)

    def _check(self, reader: dict, writer: dict, path: str, where: str) -> list[Issue]:
        for comb in ("anyOf", "oneOf"):
            if comb in writer:
                out: list[Issue] = []
                for i, branch in enumerate(writer[comb]):
                    out += self.check(reader, branch, f"{path}/{comb}/{i}")
                return out
        for comb in ("anyOf", "oneOf"):
            if comb in reader:
                if any(not self.check(branch, writer, path) for branch in reader[comb]):
                    return []
                return [Issue(where, "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                              f"no branch of the reader's {comb} accepts the writer's schema")]
        issues: list[Issue] = []
        rtypes, wtypes = self._types(reader), self._types(writer)
        if rtypes is not None:
            if wtypes is None:
                issues.append(Issue(where, "TYPE_NARROWED",
                                    f"the writer allows any type, the reader only {sorted(rtypes)}"))
            else:
                lost = sorted(t for t in wtypes if t not in rtypes and not (t == "integer" and "number" in rtypes))
                if lost:
                    issues.append(Issue(where, "TYPE_CHANGED",
                                        f"the writer's type {sorted(wtypes)} is not accepted by the reader's "
                                        f"{sorted(rtypes)} (lost: {lost})"))
        if "enum" in reader:
            if "enum" not in writer:
                issues.append(Issue(where, "ENUM_ARRAY_NARROWED",
                                    f"the reader accepts only {reader['enum']}, the writer any value"))
            else:
                lost = [v for v in writer["enum"] if v not in reader["enum"]]
                if lost:
                    issues.append(Issue(where, "ENUM_ARRAY_NARROWED", f"the reader dropped enum values {lost}"))
        for name in _UPPER:
            if name in reader and (name not in writer or writer[name] > reader[name]):
                issues.append(Issue(where, _rule(name),
                                    f"{name} is {reader[name]} in the reader, {writer.get(name, 'unbounded')} "
                                    "in the writer"))
        for name in _LOWER:
            if name in reader and (name not in writer or writer[name] < reader[name]):
                issues.append(Issue(where, _rule(name),
                                    f"{name} is {reader[name]} in the reader, {writer.get(name, 'unbounded')} "
                                    "in the writer"))
        issues += self._object(reader, writer, path)
        if isinstance(reader.get("items"), (dict, bool)) and "items" in writer:
            issues += self.check(reader["items"], writer["items"], f"{path}/items")
        elif isinstance(reader.get("items"), (dict, bool)) and reader["items"] not in (True, {}):
            issues += self.check(reader["items"], True, f"{path}/items")
        return issues

    def _object(self, reader: dict, writer: dict, path: str) -> list[Issue]:
        issues: list[Issue] = []
        rprops: dict = reader.get("properties", {}) or {}
        wprops: dict = writer.get("properties", {}) or {}
        rreq, wreq = set(reader.get("required", ())), set(writer.get("required", ()))
        r_add = reader.get("additionalProperties", True)
        w_add = writer.get("additionalProperties", True)
        for name in sorted(rreq - wreq):
            if name in wprops:
                issues.append(Issue(f"{path}/properties/{name}", "PROPERTY_MADE_REQUIRED",
                                    f"property {name!r} is required by the reader but optional for the writer"))
            else:
                issues.append(Issue(f"{path}/properties/{name}", "REQUIRED_PROPERTY_ADDED",
                                    f"the reader requires property {name!r}, which the writer's schema does not have"))
        for name, wschema in wprops.items():
            ppath = f"{path}/properties/{name}"
            if name in rprops:
                issues += self.check(rprops[name], wschema, ppath)
            elif r_add is False:
                issues.append(Issue(ppath, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                                    f"property {name!r} was removed and the reader forbids additional properties"))
            elif isinstance(r_add, dict):
                issues += self.check(r_add, wschema, ppath)
        for name, rschema in rprops.items():
            if name not in wprops and isinstance(w_add, dict):
                issues += self.check(rschema, w_add, f"{path}/properties/{name}")
        if r_add is False and w_add is not False:
            issues.append(Issue(f"{path}/additionalProperties", "ADDITIONAL_PROPERTIES_NARROWED",
                                "the reader forbids additional properties the writer allowed"))
        elif isinstance(r_add, dict) and w_add is not False:
            issues += self.check(r_add, w_add if isinstance(w_add, dict) else True, f"{path}/additionalProperties")
        return issues
