"""Parse, validate and canonicalize schema definitions.

Two definitions are "the same" when their canonical forms are equal, so
whitespace, attribute order, ``doc`` strings and short-versus-full names never
create a new version.

Avro: the Parsing Canonical Form of the Avro specification (PRIMITIVES,
FULLNAMES, STRIP, ORDER, STRINGS, INTEGERS, WHITESPACE), extended to keep the
attributes that change how data is resolved: field and enum ``default``,
``aliases`` (as full names for named types), and the logical-type attributes
(``logicalType``, ``precision``, ``scale``). Plain PCF drops them, which would
make a version that only adds a default look identical to the one before.

JSON Schema: the document parsed and re-serialized with sorted keys and no
whitespace (RFC 8785 style for the values JSON Schema uses).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from headwater.errors import HeadwaterError, Reason

__all__ = ["PRIMITIVES", "ParsedSchema", "parse_avro", "parse_definition", "parse_json_schema"]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = ("record", "error", "enum", "fixed")
_ORDER = ("name", "type", "fields", "symbols", "items", "values", "size",
          "default", "aliases", "logicalType", "precision", "scale")


@dataclass
class ParsedSchema:
    """A validated definition: its parsed tree, canonical text and fingerprint.

    For Avro, ``tree`` is the canonical structure (named types defined once,
    referenced by full name afterwards) and ``names`` maps each full name to
    its definition in ``tree``.
    """

    format: str
    definition: str
    tree: Any
    canonical: str
    names: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical.encode()).hexdigest()


def _invalid(fmt: str, message: str) -> HeadwaterError:
    return HeadwaterError(Reason.INVALID_ARGUMENT, f"invalid {fmt} schema: {message}",
                          metadata={"field": "definition"})


def _load_json(fmt: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _invalid(fmt, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def parse_definition(fmt: str, definition: str) -> ParsedSchema:
    """Validate ``definition`` in format ``avro`` or ``json``; raise INVALID_ARGUMENT with the parser's message."""
    if not definition or not definition.strip():
        raise _invalid(fmt, "the definition is empty")
    try:
        if fmt == "avro":
            return parse_avro(definition)
        if fmt == "json":
            return parse_json_schema(definition)
    except RecursionError:
        raise _invalid(fmt, "the definition is nested too deeply") from None
    raise HeadwaterError(Reason.INVALID_ARGUMENT, f"unknown schema format {fmt!r}: use avro or json",
                         metadata={"field": "format"})


# -- Avro ----------------------------------------------------------------------


def _fullname(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def _namespace_of(fullname: str) -> str:
    return fullname.rpartition(".")[0]


class _AvroCanonicalizer:
    def __init__(self) -> None:
        self.names: dict[str, Any] = {}

    def walk(self, schema: Any, namespace: str) -> Any:
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return schema
            full = _fullname(schema, namespace)
            if full not in self.names:
                if schema in self.names:  # a full name without dots (null namespace)
                    return schema
                raise _invalid("avro", f"unknown type {schema!r}")
            return full
        if isinstance(schema, list):
            return [self.walk(branch, namespace) for branch in schema]
        if not isinstance(schema, dict):
            raise _invalid("avro", f"{schema!r} is not a schema")
        typ = schema.get("type")
        if typ in _NAMED:
            return self._named(schema, namespace)
        if typ == "array":
            out: dict[str, Any] = {"type": "array", "items": self.walk(schema.get("items"), namespace)}
        elif typ == "map":
            out = {"type": "map", "values": self.walk(schema.get("values"), namespace)}
        elif isinstance(typ, (dict, list)) or (isinstance(typ, str) and typ not in PRIMITIVES):
            # {"type": {"type": "record", ...}} or {"type": "SomeName"}: the same as the inner schema.
            return self.walk(typ, namespace)
        else:
            extra = {k: schema[k] for k in ("logicalType", "precision", "scale") if k in schema}
            if not extra:
                return typ  # PRIMITIVES
            out = {"type": typ, **extra}
        return out

    def _named(self, schema: dict, namespace: str) -> dict:
        typ = schema["type"]
        name = schema.get("name")
        if not isinstance(name, str) or not name:
            raise _invalid("avro", f"a {typ} needs a name")
        ns = schema.get("namespace", namespace) if "." not in name else _namespace_of(name)
        full = _fullname(name, ns or "")
        out: dict[str, Any] = {"name": full, "type": "record" if typ == "error" else typ}
        if "aliases" in schema:
            out["aliases"] = sorted(_fullname(a, ns or "") for a in schema["aliases"])
        self.names[full] = out
        required = {"record": "fields", "error": "fields", "enum": "symbols", "fixed": "size"}[typ]
        if required not in schema:
            raise _invalid("avro", f"{typ} {full} has no {required!r} attribute")
        if typ in ("record", "error"):
            if not isinstance(schema["fields"], list):
                raise _invalid("avro", f"the fields of record {full} must be a list")
            fields = []
            for f in schema["fields"]:
                cf: dict[str, Any] = {"name": f["name"], "type": self.walk(f["type"], ns or "")}
                if "default" in f:
                    cf["default"] = f["default"]
                if "aliases" in f:
                    cf["aliases"] = sorted(f["aliases"])
                fields.append(cf)
            out["fields"] = fields
        elif typ == "enum":
            out["symbols"] = list(schema["symbols"])
            if "default" in schema:
                out["default"] = schema["default"]
        else:
            out["size"] = int(schema["size"])
        for key in ("logicalType", "precision", "scale"):
            if key in schema:
                out[key] = schema[key]
        return out


def _ordered(node: Any) -> Any:
    if isinstance(node, list):
        return [_ordered(n) for n in node]
    if isinstance(node, dict) and "type" in node:
        keys = [k for k in _ORDER if k in node]
        return {k: (node[k] if k in ("default", "aliases", "symbols") else _ordered(node[k])) for k in keys}
    return node


def parse_avro(definition: str) -> ParsedSchema:
    """Validate with fastavro (its message on failure) and build the canonical form."""
    import fastavro
    from fastavro.schema import SchemaParseException, UnknownType

    obj = _load_json("avro", definition)
    try:
        fastavro.parse_schema(obj, _write_hint=False, _force=True)
    except (SchemaParseException, UnknownType, ValueError, TypeError, KeyError, AttributeError) as exc:
        message = str(exc) or type(exc).__name__
        if isinstance(exc, UnknownType):
            message = f"unknown type {exc.name!r}"
        elif isinstance(exc, KeyError):
            message = f"missing attribute {exc.args[0]!r}"
        raise _invalid("avro", message) from None
    canon = _AvroCanonicalizer()
    try:
        tree = _ordered(canon.walk(obj, ""))
    except (KeyError, TypeError, ValueError) as exc:
        raise _invalid("avro", f"malformed schema: {exc}") from None
    canonical = json.dumps(tree, separators=(",", ":"), ensure_ascii=False)
    names: dict[str, Any] = {}
    _collect_names(tree, names)
    return ParsedSchema("avro", definition, tree, canonical, names)


def _collect_names(node: Any, names: dict[str, Any]) -> None:
    if isinstance(node, list):
        for n in node:
            _collect_names(n, names)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed") and "name" in node:
            names[node["name"]] = node
        for key in ("fields",):
            for f in node.get(key, ()):
                _collect_names(f["type"], names)
        for key in ("items", "values"):
            if key in node:
                _collect_names(node[key], names)


# -- JSON Schema ---------------------------------------------------------------


def parse_json_schema(definition: str) -> ParsedSchema:
    """Validate against the JSON Schema meta-schema (jsonschema's message on failure)."""
    import jsonschema
    from jsonschema.exceptions import SchemaError

    obj = _load_json("json", definition)
    if not isinstance(obj, (dict, bool)):
        raise _invalid("json", "a JSON Schema is an object or a boolean")
    try:
        jsonschema.validators.validator_for(obj).check_schema(obj)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise _invalid("json", f"{exc.message}" + (f" (at /{where})" if where else "")) from None
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return ParsedSchema("json", definition, obj, canonical)
