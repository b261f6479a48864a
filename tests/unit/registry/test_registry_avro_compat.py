"""Avro schema-resolution rules, each with the case that passes and the one that must refuse."""

from __future__ import annotations

import json

import pytest

from headwater.services.registry.canonical import parse_avro
from headwater.services.registry.compatibility import check
from headwater.services.registry.compatibility.avro import can_read as _can_read


def rec(*fields, name="Trip", namespace="demo", **extra):
    return {"type": "record", "name": name, "namespace": namespace, "fields": list(fields), **extra}


def f(name, typ, **extra):
    return {"name": name, "type": typ, **extra}


def can_read(reader, writer):
    return _can_read(parse_avro(json.dumps(reader)), parse_avro(json.dumps(writer)))


def rules(issues):
    return [i.rule for i in issues]


BASE = rec(f("tripId", "string"), f("fare", "int"))


def test_identical_schemas_are_compatible():
    assert can_read(BASE, BASE) == []


def test_field_added_with_default_reads_old_data():
    new = rec(f("tripId", "string"), f("fare", "int"), f("tip", "double", default=0.0))
    assert can_read(new, BASE) == []


def test_field_added_without_default_cannot_read_old_data():
    new = rec(f("tripId", "string"), f("fare", "int"), f("tip", "double"))
    issues = can_read(new, BASE)
    assert rules(issues) == ["READER_FIELD_MISSING_DEFAULT_VALUE"]
    assert issues[0].path == "/fields/tip"
    assert "tip" in issues[0].message


def test_field_removed_is_skipped_by_the_reader():
    new = rec(f("tripId", "string"))
    assert can_read(new, BASE) == []  # the new reader ignores the writer's fare
    # ... but the old reader needs fare, which data written by the new schema lacks.
    assert rules(can_read(BASE, new)) == ["READER_FIELD_MISSING_DEFAULT_VALUE"]


def test_field_removed_with_default_in_old_reader_is_fine_forward():
    old = rec(f("tripId", "string"), f("fare", "int", default=0))
    new = rec(f("tripId", "string"))
    assert can_read(old, new) == []


@pytest.mark.parametrize("writer,reader", [
    ("int", "long"), ("int", "float"), ("int", "double"),
    ("long", "float"), ("long", "double"), ("float", "double"),
    ("string", "bytes"), ("bytes", "string"),
])
def test_promotions_allowed(writer, reader):
    assert can_read(rec(f("x", reader)), rec(f("x", writer))) == []


@pytest.mark.parametrize("writer,reader", [
    ("long", "int"), ("double", "float"), ("float", "long"), ("double", "int"),
    ("string", "int"), ("boolean", "int"), ("int", "string"), ("null", "string"),
])
def test_narrowing_or_unrelated_types_refused(writer, reader):
    issues = can_read(rec(f("x", reader)), rec(f("x", writer)))
    assert rules(issues) == ["TYPE_MISMATCH"]
    assert issues[0].path == "/fields/x/type"


def test_enum_symbol_added_is_readable_removed_is_not():
    old = rec(f("kind", {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}))
    new = rec(f("kind", {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}))
    assert can_read(new, old) == []
    issues = can_read(old, new)
    assert rules(issues) == ["MISSING_ENUM_SYMBOLS"]
    assert "C" in issues[0].message


def test_enum_default_lets_the_reader_read_unknown_symbols():
    old = rec(f("kind", {"type": "enum", "name": "Kind", "symbols": ["A", "B", "OTHER"], "default": "OTHER"}))
    new = rec(f("kind", {"type": "enum", "name": "Kind", "symbols": ["A", "B", "OTHER", "C"],
                         "default": "OTHER"}))
    assert can_read(old, new) == []


def test_writer_union_every_branch_must_resolve():
    old = rec(f("x", ["null", "int"]))
    assert can_read(rec(f("x", ["null", "long"])), old) == []  # int branch promotes to long
    issues = can_read(rec(f("x", ["null", "string"])), old)
    assert rules(issues) == ["MISSING_UNION_BRANCH"]


def test_reader_union_accepts_a_plain_writer_type():
    assert can_read(rec(f("x", ["null", "string"])), rec(f("x", "string"))) == []
    assert rules(can_read(rec(f("x", ["null", "string"])), rec(f("x", "int")))) == ["MISSING_UNION_BRANCH"]


def test_union_to_plain_type_refused_when_a_branch_cannot_be_read():
    issues = can_read(rec(f("x", "string")), rec(f("x", ["null", "string"])))
    assert rules(issues) == ["TYPE_MISMATCH"]  # the writer's null branch


def test_nested_record_field_added_with_and_without_default():
    loc = {"type": "record", "name": "Loc", "fields": [f("lat", "double")]}
    loc2 = {"type": "record", "name": "Loc", "fields": [f("lat", "double"), f("lon", "double", default=0.0)]}
    loc3 = {"type": "record", "name": "Loc", "fields": [f("lat", "double"), f("lon", "double")]}
    assert can_read(rec(f("start", loc2)), rec(f("start", loc))) == []
    issues = can_read(rec(f("start", loc3)), rec(f("start", loc)))
    assert rules(issues) == ["READER_FIELD_MISSING_DEFAULT_VALUE"]
    assert issues[0].path == "/fields/start/type/fields/lon"


def test_record_renamed_needs_an_alias():
    renamed = rec(f("tripId", "string"), f("fare", "int"), name="Ride")
    assert rules(can_read(renamed, BASE)) == ["NAME_MISMATCH"]
    aliased = rec(f("tripId", "string"), f("fare", "int"), name="Ride", aliases=["Trip"])
    assert can_read(aliased, BASE) == []


def test_field_renamed_needs_an_alias():
    renamed = rec(f("id", "string"), f("fare", "int"))
    assert rules(can_read(renamed, BASE)) == ["READER_FIELD_MISSING_DEFAULT_VALUE"]
    aliased = rec(f("id", "string", aliases=["tripId"]), f("fare", "int"))
    assert can_read(aliased, BASE) == []


def test_arrays_and_maps_resolve_their_items_and_values():
    assert can_read(rec(f("xs", {"type": "array", "items": "long"})),
                    rec(f("xs", {"type": "array", "items": "int"}))) == []
    issues = can_read(rec(f("xs", {"type": "array", "items": "int"})),
                      rec(f("xs", {"type": "array", "items": "long"})))
    assert rules(issues) == ["TYPE_MISMATCH"] and issues[0].path == "/fields/xs/type/items"
    issues = can_read(rec(f("m", {"type": "map", "values": "int"})),
                      rec(f("m", {"type": "map", "values": "string"})))
    assert rules(issues) == ["TYPE_MISMATCH"] and issues[0].path == "/fields/m/type/values"


def test_fixed_size_must_match():
    assert can_read(rec(f("h", {"type": "fixed", "name": "H", "size": 16})),
                    rec(f("h", {"type": "fixed", "name": "H", "size": 16}))) == []
    issues = can_read(rec(f("h", {"type": "fixed", "name": "H", "size": 32})),
                      rec(f("h", {"type": "fixed", "name": "H", "size": 16})))
    assert rules(issues) == ["FIXED_SIZE_MISMATCH"]


def test_recursive_types_terminate():
    node = {"type": "record", "name": "Node", "fields": [f("v", "int"), f("next", ["null", "Node"])]}
    node2 = {"type": "record", "name": "Node", "fields": [f("v", "long"), f("next", ["null", "Node"])]}
    assert can_read(node2, node) == []
    assert rules(can_read(node, node2)) == ["TYPE_MISMATCH"]


# -- modes -------------------------------------------------------------------------------

V1 = rec(f("tripId", "string"))
V2 = rec(f("tripId", "string"), f("fare", "double", default=0.0))   # added with default
V3 = rec(f("tripId", "string"), f("fare", "double", default=0.0), f("tip", "double"))  # no default


def p(schema):
    return parse_avro(json.dumps(schema))


def test_backward_checks_the_new_reader_against_the_latest():
    assert check("BACKWARD", p(V2), [(1, p(V1))]) == []
    issues = check("BACKWARD", p(V3), [(1, p(V1)), (2, p(V2))])
    assert [(i.version, i.direction, i.rule) for i in issues] == [(2, "BACKWARD", "READER_FIELD_MISSING_DEFAULT_VALUE")]


def test_forward_checks_the_old_reader_against_the_new_writer():
    assert check("FORWARD", p(V3), [(1, p(V2))]) == []  # V2 ignores tip
    old = rec(f("tripId", "string"), f("fare", "double"))
    new = rec(f("tripId", "string"))
    assert rules(check("FORWARD", p(new), [(1, p(old))])) == ["READER_FIELD_MISSING_DEFAULT_VALUE"]
    assert check("BACKWARD", p(new), [(1, p(old))]) == []


def test_full_needs_both_directions():
    assert check("FULL", p(V2), [(1, p(V1))]) == []
    assert [i.direction for i in check("FULL", p(V3), [(1, p(V2))])] == ["BACKWARD"]


def test_transitive_checks_every_earlier_version():
    a = rec(f("x", "int"))
    b = rec(f("x", "int"), f("y", "int", default=0))
    c = rec(f("y", "int", default=0), f("z", "int", default=1))  # drops x: old readers lack a default
    # FORWARD against the latest (b) only: b reads c? b needs x (no default) -> refused either way; use BACKWARD:
    assert check("BACKWARD", p(c), [(1, p(a)), (2, p(b))]) == []
    assert check("BACKWARD_TRANSITIVE", p(c), [(1, p(a)), (2, p(b))]) == []
    # A version that drops the default of y reads b's data, not a's.
    d = rec(f("x", "int"), f("y", "int"))
    assert check("BACKWARD", p(d), [(1, p(a)), (2, p(b))]) == []
    issues = check("BACKWARD_TRANSITIVE", p(d), [(1, p(a)), (2, p(b))])
    assert [(i.version, i.rule) for i in issues] == [(1, "READER_FIELD_MISSING_DEFAULT_VALUE")]


def test_forward_and_full_transitive():
    a = rec(f("x", "int"), f("y", "int"))
    b = rec(f("x", "int"), f("y", "int", default=0))
    c = rec(f("x", "int"))  # drops y: b (default) reads it, a does not
    assert check("FORWARD", p(c), [(1, p(a)), (2, p(b))]) == []
    assert [(i.version, i.rule) for i in check("FORWARD_TRANSITIVE", p(c), [(1, p(a)), (2, p(b))])] == \
        [(1, "READER_FIELD_MISSING_DEFAULT_VALUE")]
    assert [i.version for i in check("FULL_TRANSITIVE", p(c), [(1, p(a)), (2, p(b))])] == [1]
    assert check("FULL", p(c), [(1, p(a)), (2, p(b))]) == []


def test_none_accepts_anything():
    assert check("NONE", p(rec(f("q", "boolean"))), [(1, p(V1))]) == []
