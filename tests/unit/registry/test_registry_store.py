"""The registry's rules over both stores (SQLite file, real PostgreSQL)."""

from __future__ import annotations

import json
import threading

import pytest

from headwater.errors import HeadwaterError, Reason


def avro(*fields):
    return json.dumps({"type": "record", "name": "Trip", "namespace": "demo",
                       "fields": [{"name": n, "type": t, **({"default": d} if d is not None else {})}
                                  for n, t, d in fields]})


V1 = avro(("tripId", "string", None))
V2 = avro(("tripId", "string", None), ("fare", "double", 0.0))
V3_BAD = avro(("tripId", "string", None), ("fare", "double", 0.0), ("tip", "double", None))


def test_same_definition_same_id_new_compatible_definition_next_version(registry):
    registry.create_group("trips", "avro", "backward")
    v1, created = registry.register("trips", "Trip", V1)
    assert created and v1.version == 1 and len(v1.id) == 32
    again, created = registry.register("trips", "Trip", json.dumps(json.loads(V1), indent=4))
    assert not created and again.id == v1.id and again.version == 1
    v2, created = registry.register("trips", "Trip", V2)
    assert created and v2.version == 2 and v2.id != v1.id
    assert registry.get_by_id(v2.id).definition == V2
    assert registry.get_version("trips", "Trip", 1).id == v1.id
    assert registry.get_version("trips", "Trip", 0).id == v2.id  # 0 = latest
    assert registry.lookup("trips", "Trip", V1).id == v1.id


def test_incompatible_definition_refused_with_reasons(registry):
    registry.create_group("trips", "avro", "backward")
    registry.register("trips", "Trip", V1)
    registry.register("trips", "Trip", V2)
    with pytest.raises(HeadwaterError) as err:
        registry.register("trips", "Trip", V3_BAD)
    e = err.value
    assert e.reason is Reason.SCHEMA_INCOMPATIBLE
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in e.message and "tip" in e.message
    assert e.metadata["rule"] == "READER_FIELD_MISSING_DEFAULT_VALUE"
    assert e.metadata["path"] == "/fields/tip"
    issues = json.loads(e.metadata["issues"])
    assert issues[0]["version"] == 2 and issues[0]["direction"] == "BACKWARD"
    assert [v.version for v in registry.list_versions("trips", "Trip")[0]] == [1, 2]
    # After relaxing the group's mode it is accepted.
    registry.set_compatibility("trips", "none")
    assert registry.register("trips", "Trip", V3_BAD)[0].version == 3


def test_invalid_definition_refused(registry):
    registry.create_group("trips", "avro")
    with pytest.raises(HeadwaterError) as err:
        registry.register("trips", "Trip", '{"type": "record", "name": "T", "fields": [{"name": "a"}]}')
    assert err.value.reason is Reason.INVALID_ARGUMENT


def test_groups_create_get_list_paginated(registry):
    for i in range(5):
        registry.create_group(f"g{i}", "json" if i % 2 else "avro", "full-transitive")
    with pytest.raises(HeadwaterError) as err:
        registry.create_group("g1", "avro")
    assert err.value.reason is Reason.RESOURCE_ALREADY_EXISTS
    assert registry.create_group("g1", "json", "FULL_TRANSITIVE", idempotent=True).group_id == "g1"
    g = registry.get_group("g3")
    assert (g.format, g.compatibility) == ("json", "FULL_TRANSITIVE")
    page, token = registry.list_groups(page_size=2)
    names = [x.group_id for x in page]
    while token:
        page, token = registry.list_groups(page_size=2, page_token=token)
        names += [x.group_id for x in page]
    assert names == ["g0", "g1", "g2", "g3", "g4"]
    with pytest.raises(HeadwaterError) as err:
        registry.get_group("nope")
    assert err.value.reason is Reason.RESOURCE_NOT_FOUND
    with pytest.raises(HeadwaterError) as err:
        registry.create_group("bad name!", "avro")
    assert err.value.reason is Reason.INVALID_ARGUMENT
    with pytest.raises(HeadwaterError, match="unknown compatibility mode"):
        registry.create_group("g9", "avro", "sideways")


def test_group_auto_created_on_first_register_with_default_mode(registry):
    v, _ = registry.register("fresh", "Trip", V1, "avro")
    assert v.version == 1
    assert registry.get_group("fresh").compatibility == "BACKWARD"
    with pytest.raises(HeadwaterError, match="holds avro schemas, not json"):
        registry.register("fresh", "Other", '{"type": "object"}', "json")


def test_versions_paginated_and_delete_never_reuses_numbers(registry):
    registry.create_group("g", "avro", "none")
    ids = [registry.register("g", "Trip", avro((f"f{i}", "int", None)))[0].id for i in range(5)]
    seen, token = [], ""
    while True:
        page, token = registry.list_versions("g", "Trip", page_size=2, page_token=token)
        seen += [v.version for v in page]
        if not token:
            break
    assert seen == [1, 2, 3, 4, 5]
    deleted = registry.delete_version("g", "Trip", 5)
    assert deleted.id == ids[4]
    with pytest.raises(HeadwaterError) as err:
        registry.get_by_id(ids[4])
    assert err.value.reason is Reason.RESOURCE_NOT_FOUND
    assert registry.delete_version("g", "Trip", 5, idempotent=True).id == ids[4]
    with pytest.raises(HeadwaterError):
        registry.delete_version("g", "Trip", 5)
    again, created = registry.register("g", "Trip", avro(("f4", "int", None)))
    assert created and again.version == 6 and again.id not in ids


def test_deleted_version_no_longer_constrains_compatibility(registry):
    registry.create_group("g", "avro", "backward")
    registry.register("g", "Trip", V1)
    registry.register("g", "Trip", V2)  # fare: double
    narrower = avro(("tripId", "string", None), ("fare", "int", 0))  # cannot read v2's double fare
    with pytest.raises(HeadwaterError) as err:
        registry.register("g", "Trip", narrower)
    assert err.value.metadata["rule"] == "TYPE_MISMATCH"
    registry.delete_version("g", "Trip", 2)
    assert registry.register("g", "Trip", narrower)[0].version == 3  # checked against v1 now


def test_json_schema_group(registry):
    registry.create_group("j", "json", "backward")
    s1 = '{"type": "object", "properties": {"a": {"type": "integer"}}}'
    s2 = '{"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "string"}}}'
    s3 = '{"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]}'
    assert registry.register("j", "T", s1)[0].version == 1
    assert registry.register("j", "T", s2)[0].version == 2
    with pytest.raises(HeadwaterError) as err:
        registry.register("j", "T", s3)
    assert err.value.metadata["rule"] == "PROPERTY_MADE_REQUIRED"


def test_concurrent_registration_of_one_definition_yields_one_id(registry):
    registry.create_group("c", "avro", "backward")
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def worker():
        try:
            barrier.wait()
            for _ in range(5):
                results.append(registry.register("c", "Trip", V1)[0].id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 40 and len(set(results)) == 1
    assert [v.version for v in registry.list_versions("c", "Trip")[0]] == [1]
