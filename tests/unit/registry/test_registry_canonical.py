"""Canonical forms decide identity; invalid schemas are refused with the parser's message."""

from __future__ import annotations

import json

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.services.registry.canonical import (
    parse_avro,
    parse_definition,
    parse_json_schema,
)

TRIP = {"namespace": "com.example", "type": "record", "name": "Trip", "doc": "a trip",
        "fields": [{"name": "tripId", "type": "string"}, {"name": "fare", "type": {"type": "double"}}]}


def test_avro_pcf_ignores_whitespace_order_doc_and_short_names():
    a = parse_avro(json.dumps(TRIP))
    shuffled = ('{ "fields": [ {"type": "string", "name": "tripId", "doc": "id"},'
                ' {"name": "fare", "type": "double"}],\n "name": "com.example.Trip", "type": "record"}')
    b = parse_avro(shuffled)
    assert a.canonical == b.canonical == (
        '{"name":"com.example.Trip","type":"record","fields":[{"name":"tripId","type":"string"},'
        '{"name":"fare","type":"double"}]}')
    assert a.fingerprint == b.fingerprint


def test_avro_default_and_aliases_are_part_of_identity():
    with_default = dict(TRIP, fields=[*TRIP["fields"], {"name": "tip", "type": "double", "default": 0.0}])
    other_default = dict(TRIP, fields=[*TRIP["fields"], {"name": "tip", "type": "double", "default": 1.0}])
    assert parse_avro(json.dumps(with_default)).canonical != parse_avro(json.dumps(other_default)).canonical
    aliased = dict(TRIP, aliases=["Ride"])
    assert parse_avro(json.dumps(aliased)).canonical != parse_avro(json.dumps(TRIP)).canonical


def test_named_types_are_referenced_by_full_name():
    schema = {"type": "record", "name": "T", "namespace": "n",
              "fields": [{"name": "a", "type": {"type": "enum", "name": "E", "symbols": ["X"]}},
                         {"name": "b", "type": "E"}]}
    parsed = parse_avro(json.dumps(schema))
    assert '"name":"b","type":"n.E"' in parsed.canonical
    assert set(parsed.names) == {"n.T", "n.E"}


@pytest.mark.parametrize("text,needle", [
    ("{not json", "not valid JSON"),
    ('{"type": "record", "name": "T", "fields": [{"name": "x", "type": "nope"}]}', "nope"),
    ('{"type": "record", "name": "T", "fields": [{"name": "x", "type": "int", "default": "a"}]}', "Default value"),
    ('{"type": "enum", "name": "E", "symbols": ["a", "a"]}', "unique"),
    ("", "empty"),
    ('{"type": "record", "name": "T"}', "has no 'fields'"),
    ('{"type": "fixed", "name": "F"}', "size"),
    ('{"type": "array", "items": ' * 3000 + '"int"' + "}" * 3000, "nested too deeply"),
])
def test_invalid_avro_refused_with_parser_message(text, needle):
    with pytest.raises(HeadwaterError) as err:
        parse_definition("avro", text)
    assert err.value.reason is Reason.INVALID_ARGUMENT
    assert needle in err.value.message


def test_json_canonical_sorts_keys():
    a = parse_json_schema('{"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}')
    b = parse_json_schema('{"properties":{"a":{"type":"integer"},"b":{"type":"string"}},"type":"object"}')
    assert a.canonical == b.canonical


@pytest.mark.parametrize("text,needle", [
    ('{"type": "strin"}', "is not valid under any of the given schemas"),
    ('{"type": "object", "required": "x"}', "is not of type 'array'"),
    ("[1, 2]", "object or a boolean"),
])
def test_invalid_json_schema_refused_with_validator_message(text, needle):
    with pytest.raises(HeadwaterError) as err:
        parse_definition("json", text)
    assert err.value.reason is Reason.INVALID_ARGUMENT
    assert needle in err.value.message


def test_unknown_format():
    with pytest.raises(HeadwaterError, match="unknown schema format"):
        parse_definition("protobuf", "{}")
