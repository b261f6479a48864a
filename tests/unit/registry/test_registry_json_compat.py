"""JSON Schema compatibility rules, each with the passing and the refused case."""

from __future__ import annotations

import json

from headwater.services.registry.canonical import parse_json_schema
from headwater.services.registry.compatibility import check
from headwater.services.registry.compatibility.jsonschema import can_read as _can_read


def obj(props, required=(), additional=None, **extra):
    out = {"type": "object", "properties": props, **extra}
    if required:
        out["required"] = list(required)
    if additional is not None:
        out["additionalProperties"] = additional
    return out


def can_read(reader, writer):
    return [(i.path, i.rule) for i in _can_read(parse_json_schema(json.dumps(reader)),
                                                  parse_json_schema(json.dumps(writer)))]


BASE = obj({"tripId": {"type": "string"}, "fare": {"type": "integer"}}, required=["tripId"])


def test_same_schema_compatible():
    assert can_read(BASE, BASE) == []


def test_optional_property_added_is_compatible():
    new = obj({"tripId": {"type": "string"}, "fare": {"type": "integer"}, "tip": {"type": "number"}},
              required=["tripId"])
    assert can_read(new, BASE) == []


def test_required_property_added_is_refused():
    new = obj({"tripId": {"type": "string"}, "fare": {"type": "integer"}, "tip": {"type": "number"}},
              required=["tripId", "tip"])
    assert can_read(new, BASE) == [("/properties/tip", "REQUIRED_PROPERTY_ADDED")]


def test_existing_property_made_required_is_refused_and_unrequired_is_fine():
    new = obj(BASE["properties"], required=["tripId", "fare"])
    assert can_read(new, BASE) == [("/properties/fare", "PROPERTY_MADE_REQUIRED")]
    assert can_read(BASE, new) == []


def test_property_removed_open_model_ok_closed_model_refused():
    assert can_read(obj({"tripId": {"type": "string"}}, required=["tripId"]), BASE) == []
    closed_writer = obj(BASE["properties"], required=["tripId"], additional=False)
    closed = obj({"tripId": {"type": "string"}}, required=["tripId"], additional=False)
    assert can_read(closed, closed_writer) == [("/properties/fare", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL")]


def test_removed_property_checked_against_additional_properties_schema():
    reader = obj({"tripId": {"type": "string"}}, additional={"type": "string"})
    assert ("/properties/fare", "TYPE_CHANGED") in can_read(reader, BASE)
    assert can_read(obj({"tripId": {"type": "string"}}, additional={"type": "number"}),
                    obj({"tripId": {"type": "string"}, "fare": {"type": "integer"}},
                        additional={"type": "number"})) == []


def test_type_changes():
    widened = obj({"tripId": {"type": "string"}, "fare": {"type": "number"}}, required=["tripId"])
    assert can_read(widened, BASE) == []  # integer is read as number
    assert can_read(BASE, widened) == [("/properties/fare", "TYPE_CHANGED")]
    as_string = obj({"tripId": {"type": "string"}, "fare": {"type": "string"}}, required=["tripId"])
    assert can_read(as_string, BASE) == [("/properties/fare", "TYPE_CHANGED")]
    nullable = obj({"tripId": {"type": "string"}, "fare": {"type": ["integer", "null"]}}, required=["tripId"])
    assert can_read(nullable, BASE) == []
    assert can_read(BASE, nullable) == [("/properties/fare", "TYPE_CHANGED")]


def test_untyped_to_typed_is_narrowed():
    assert can_read(obj({"x": {"type": "string"}}), obj({"x": {}})) == [("/properties/x", "TYPE_NARROWED")]


def test_additional_properties_closed_or_narrowed():
    assert can_read(obj(BASE["properties"], ["tripId"], additional=False), BASE) == \
        [("/additionalProperties", "ADDITIONAL_PROPERTIES_NARROWED")]
    assert can_read(BASE, obj(BASE["properties"], ["tripId"], additional=False)) == []
    assert can_read(obj(BASE["properties"], ["tripId"], additional={"type": "string"}), BASE) == \
        [("/additionalProperties", "TYPE_NARROWED")]


def test_enum_narrowed_and_widened():
    a = {"type": "string", "enum": ["A", "B"]}
    b = {"type": "string", "enum": ["A", "B", "C"]}
    assert can_read(b, a) == []
    assert can_read(a, b) == [("/", "ENUM_ARRAY_NARROWED")]


def test_bounds_narrowed():
    assert can_read({"type": "string", "maxLength": 5}, {"type": "string", "maxLength": 10}) == \
        [("/", "MAX_LENGTH_NARROWED")]
    assert can_read({"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 5}) == []
    assert can_read({"type": "integer", "minimum": 1}, {"type": "integer"}) == [("/", "MINIMUM_NARROWED")]


def test_nested_objects_and_arrays():
    w = obj({"stops": {"type": "array", "items": obj({"n": {"type": "integer"}})}})
    r_ok = obj({"stops": {"type": "array", "items": obj({"n": {"type": "number"}})}})
    r_bad = obj({"stops": {"type": "array", "items": obj({"n": {"type": "string"}})}})
    assert can_read(r_ok, w) == []
    assert can_read(r_bad, w) == [("/properties/stops/items/properties/n", "TYPE_CHANGED")]


def test_refs_are_followed():
    w = {"$defs": {"fare": {"type": "integer"}}, "type": "object", "properties": {"fare": {"$ref": "#/$defs/fare"}}}
    r = {"$defs": {"fare": {"type": "string"}}, "type": "object", "properties": {"fare": {"$ref": "#/$defs/fare"}}}
    assert can_read(r, w) == [("/properties/fare", "TYPE_CHANGED")]


def test_any_of():
    w = {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert can_read({"type": ["integer", "string"]}, w) == []
    assert can_read({"type": "integer"}, w) == [("/anyOf/1", "TYPE_CHANGED")]
    assert can_read({"anyOf": [{"type": "string"}, {"type": "number"}]}, {"type": "integer"}) == []


def test_modes_on_json():
    v1 = parse_json_schema(json.dumps(BASE))
    v2 = parse_json_schema(json.dumps(obj(BASE["properties"], ["tripId", "fare"])))
    assert [(i.direction, i.rule) for i in check("FULL", v2, [(1, v1)])] == [("BACKWARD", "PROPERTY_MADE_REQUIRED")]
    assert check("FORWARD", v2, [(1, v1)]) == []
