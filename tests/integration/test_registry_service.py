"""The registry as a real process, through the SDK, on both stores."""

from __future__ import annotations

import json
import threading

import pytest

from headwater.auth import Right
from headwater.errors import HeadwaterError, Reason
from headwater.schemaregistry import (
    CompatibilityMode,
    SchemaFormat,
    SchemaRegistryClient,
)
from tests.integration import registry_support
from tests.integration.registry_support import (
    ONE_TRY,
    TRIP_BAD,
    TRIP_V1,
    TRIP_V2,
    add_policy,
    client,
    drop_pg_schema,
    postgres_config,
)

store_args = registry_support.store_args  # the sqlite/postgres fixture


def test_register_get_lookup_versions_groups(service_process, root_policy, store_args):
    proc = service_process("registry", *store_args)
    with client(proc.address, root_policy) as c:
        group = c.create_schema_group("trips", "Avro", "backward")
        assert (group.name, group.format, group.compatibility) == ("trips", SchemaFormat.AVRO,
                                                                   CompatibilityMode.BACKWARD)
        p1 = c.register_schema("trips", "demo.Trip", TRIP_V1, "Avro")
        assert p1.version == 1 and p1.group_name == "trips" and p1.format is SchemaFormat.AVRO
        c.clear_cache()
        again = c.register_schema("trips", "demo.Trip", json.dumps(json.loads(TRIP_V1)), SchemaFormat.AVRO)
        assert again.id == p1.id
        p2 = c.register_schema("trips", "demo.Trip", TRIP_V2, "Avro")
        assert p2.version == 2
        c.clear_cache()
        schema = c.get_schema(p2.id)
        assert schema.definition == TRIP_V2 and schema.properties == p2
        assert c.get_schema(group_name="trips", name="demo.Trip", version=1).properties.id == p1.id
        assert c.get_schema(group_name="trips", name="demo.Trip").properties.version == 2
        assert c.get_schema_properties("trips", "demo.Trip", TRIP_V1, "Avro").id == p1.id
        assert [v.version for v in c.list_schema_versions("trips", "demo.Trip", page_size=1)] == [1, 2]

        with pytest.raises(HeadwaterError) as err:
            c.register_schema("trips", "demo.Trip", TRIP_BAD, "Avro")
        assert err.value.reason is Reason.SCHEMA_INCOMPATIBLE
        assert "passengers" in err.value.message and "READER_FIELD_MISSING_DEFAULT_VALUE" in err.value.message
        issues = json.loads(err.value.metadata["issues"])
        assert issues[0]["path"] == "/fields/passengers" and issues[0]["version"] == 2

        with pytest.raises(HeadwaterError) as err:
            c.register_schema("trips", "demo.Trip", '{"type": "record", "name": "X"}', "Avro")
        assert err.value.reason is Reason.INVALID_ARGUMENT and "invalid avro schema" in err.value.message

        assert c.set_compatibility("trips", "none").compatibility is CompatibilityMode.NONE
        assert c.register_schema("trips", "demo.Trip", TRIP_BAD, "Avro").version == 3
        assert c.delete_schema_version("trips", "demo.Trip", 3).version == 3
        with pytest.raises(HeadwaterError) as err:
            c.get_schema(group_name="trips", name="demo.Trip", version=3)
        assert err.value.reason is Reason.RESOURCE_NOT_FOUND

        c.create_schema_group("events", "Json", "full-transitive")
        assert [g.name for g in c.list_schema_groups(page_size=1)] == ["events", "trips"]
        with pytest.raises(HeadwaterError) as err:
            c.get_schema("0" * 32)
        assert err.value.reason is Reason.RESOURCE_NOT_FOUND


def test_survives_restart_kill_9(service_process, root_policy, store_args):
    proc = service_process("registry", *store_args)
    with client(proc.address, root_policy) as c:
        p1 = c.register_schema("trips", "demo.Trip", TRIP_V1, "Avro")
        p2 = c.register_schema("trips", "demo.Trip", TRIP_V2, "Avro")
        c.set_compatibility("trips", "full")
    proc.kill()
    proc2 = service_process("registry", *store_args)
    with client(proc2.address, root_policy) as c:
        assert c.get_schema(p1.id).definition == TRIP_V1
        assert c.register_schema("trips", "demo.Trip", TRIP_V2, "Avro").id == p2.id
        assert c.get_schema_group("trips").compatibility is CompatibilityMode.FULL
        with pytest.raises(HeadwaterError) as err:  # the mode survived: passengers has no default
            c.register_schema("trips", "demo.Trip", TRIP_BAD, "Avro")
        assert err.value.reason is Reason.SCHEMA_INCOMPATIBLE


def test_concurrent_registration_from_many_clients_yields_one_id(service_process, root_policy, store_args):
    proc = service_process("registry", *store_args)
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(12)

    def one_client() -> None:
        try:
            with client(proc.address, root_policy, cache=False) as c:
                barrier.wait()
                for _ in range(3):
                    ids.append(c.register_schema("race", "demo.Trip", TRIP_V1, "Avro").id)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=one_client) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(ids) == 36 and len(set(ids)) == 1
    with client(proc.address, root_policy) as c:
        assert [v.version for v in c.list_schema_versions("race", "demo.Trip")] == [1]


def test_two_replicas_on_one_postgres_register_once(service_process, root_policy, tmp_path):
    path, schema = postgres_config(tmp_path)
    try:
        a = service_process("registry", "--config", str(path), "--data-dir", str(tmp_path / "a"))
        b = service_process("registry", "--config", str(path), "--data-dir", str(tmp_path / "b"))
        ids: list[str] = []
        barrier = threading.Barrier(8)

        def one(address: str) -> None:
            with client(address, root_policy, cache=False) as c:
                barrier.wait()
                ids.append(c.register_schema("race", "demo.Trip", TRIP_V1, "Avro").id)

        threads = [threading.Thread(target=one, args=((a, b)[i % 2].address,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(ids) == 8 and len(set(ids)) == 1
        with client(b.address, root_policy) as c:
            assert c.get_schema(ids[0]).definition == TRIP_V1
    finally:
        drop_pg_schema(schema)


def test_rights(service_process, root_policy, _isolated_home, tmp_path):
    proc = service_process("registry", "--data-dir", str(tmp_path / "d"))
    listen = add_policy(_isolated_home, "reader", Right.LISTEN)
    send = add_policy(_isolated_home, "producer", Right.SEND)
    with client(proc.address, root_policy) as admin:
        p1 = admin.register_schema("trips", "demo.Trip", TRIP_V1, "Avro")
    with client(proc.address, listen, retry_policy=ONE_TRY) as c:
        assert c.get_schema(p1.id).definition == TRIP_V1
        assert c.get_schema_properties("trips", "demo.Trip", TRIP_V1, "Avro").id == p1.id
        with pytest.raises(HeadwaterError) as err:
            c.register_schema("trips", "demo.Trip", TRIP_V2, "Avro")
        assert err.value.reason is Reason.PERMISSION_DENIED
    with client(proc.address, send, retry_policy=ONE_TRY) as c:
        assert c.register_schema("trips", "demo.Trip", TRIP_V2, "Avro").version == 2
        for call in (lambda: c.create_schema_group("g2", "Avro"), lambda: c.set_compatibility("trips", "none"),
                     lambda: c.delete_schema_version("trips", "demo.Trip", 2)):
            with pytest.raises(HeadwaterError) as err:
                call()
            assert err.value.reason is Reason.PERMISSION_DENIED
    forged = type(root_policy)(root_policy.name, "AAAA" + root_policy.key[4:], root_policy.rights)
    with client(proc.address, forged, retry_policy=ONE_TRY) as c:
        with pytest.raises(HeadwaterError) as err:
            c.get_schema(p1.id)
        assert err.value.reason is Reason.UNAUTHORIZED


def test_client_cache_answers_without_the_server(service_process, root_policy, tmp_path):
    proc = service_process("registry", "--data-dir", str(tmp_path / "d"))
    c = client(proc.address, root_policy, retry_policy=ONE_TRY, timeout=3)
    uncached = client(proc.address, root_policy, retry_policy=ONE_TRY, timeout=3, cache=False)
    props = c.register_schema("trips", "demo.Trip", TRIP_V1, "Avro")
    assert uncached.get_schema(props.id).definition == TRIP_V1
    proc.kill()
    assert c.get_schema(props.id).definition == TRIP_V1
    assert c.register_schema("trips", "demo.Trip", TRIP_V1, "Avro") == props
    assert c.get_schema_properties("trips", "demo.Trip", TRIP_V1, "Avro") == props
    with pytest.raises(HeadwaterError) as err:
        uncached.get_schema(props.id)
    assert err.value.is_transient
    c.close()
    uncached.close()


def test_from_connection_string(service_process, root_policy, tmp_path):
    proc = service_process("registry", "--data-dir", str(tmp_path / "d"))
    conn = (f"Endpoint=headwater://{proc.address}/;SharedAccessKeyName={root_policy.name};"
            f"SharedAccessKey={root_policy.key}")
    with SchemaRegistryClient.from_connection_string(conn) as c:
        assert c.register_schema("g", "demo.Trip", TRIP_V1, "Avro").version == 1


def test_many_incompatibilities_still_fit_in_the_error(service_process, root_policy, tmp_path):
    proc = service_process("registry", "--data-dir", str(tmp_path / "d"))
    names = [f"a_rather_long_field_name_that_people_do_write_{i:03d}" for i in range(60)]
    old = {"type": "record", "name": "Wide", "namespace": "some.long.namespace.for.testing",
           "fields": [{"name": n, "type": "string"} for n in names]}
    new = dict(old, fields=[{"name": n, "type": "int"} for n in names])
    with client(proc.address, root_policy, retry_policy=ONE_TRY) as c:
        c.register_schema("wide", "Wide", json.dumps(old), "Avro")
        with pytest.raises(HeadwaterError) as err:
            c.register_schema("wide", "Wide", json.dumps(new), "Avro")
    assert err.value.reason is Reason.SCHEMA_INCOMPATIBLE
    assert err.value.metadata["issue_count"] == "60" and "(and 50 more)" in err.value.message
    assert len(json.loads(err.value.metadata["issues"])) == 10


def test_sigterm_drains_and_json_schema_groups(service_process, root_policy, tmp_path):
    data = str(tmp_path / "d")
    proc = service_process("registry", "--data-dir", data)
    s1 = '{"type": "object", "properties": {"tripId": {"type": "string"}}, "required": ["tripId"]}'
    s2 = '{"type": "object", "properties": {"tripId": {"type": "string"}, "tip": {"type": "number"}}}'
    with client(proc.address, root_policy, retry_policy=ONE_TRY) as c:
        c.create_schema_group("jtrips", "Json", "forward")
        p1 = c.register_schema("jtrips", "Trip", s1, "Json")
        assert p1.format is SchemaFormat.JSON
        with pytest.raises(HeadwaterError) as err:  # FORWARD: v1 readers require tripId, v2 no longer does
            c.register_schema("jtrips", "Trip", s2, "Json")
        assert err.value.metadata["rule"] == "PROPERTY_MADE_REQUIRED"
        with pytest.raises(HeadwaterError) as err:
            c.register_schema("jtrips", "Trip", '{"type": "strin"}', "Json")
        assert err.value.reason is Reason.INVALID_ARGUMENT and "invalid json schema" in err.value.message
    assert proc.terminate() == 0
    proc2 = service_process("registry", "--data-dir", data)
    with client(proc2.address, root_policy) as c:
        assert c.get_schema(p1.id).definition == s1


def test_get_schema_returns_the_text_as_first_registered(service_process, root_policy, tmp_path):
    proc = service_process("registry", "--data-dir", str(tmp_path / "d"))
    spaced = json.dumps(json.loads(TRIP_V1), indent=8)
    with client(proc.address, root_policy) as first, client(proc.address, root_policy) as second:
        p = first.register_schema("g", "demo.Trip", TRIP_V1, "Avro")
        assert second.register_schema("g", "demo.Trip", spaced, "Avro").id == p.id
        assert second.get_schema(p.id).definition == TRIP_V1
        assert second.get_schema_properties("g", "demo.Trip", spaced, "Avro").id == p.id
