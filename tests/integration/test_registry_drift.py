"""Mid-stream schema drift: a stream switches from Trip v1 to a compatible v2 halfway.

Decoded by the Avro serializer plugin (found through the plugin manager, as the
query engine finds it) with schemas from a real registry process, and run
through the query engine's public API (compile_query -> runtime.feed).
"""

from __future__ import annotations

import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.schemaregistry.avroencoder import AvroEncoder
from headwater.services.processing.engine import compile_query
from tests.integration import registry_support
from tests.integration.registry_support import (
    TRIP_V1,
    client,
)

TRIP_V2 = """{"namespace": "demo", "type": "record", "name": "Trip",
 "fields": [{"name": "tripId", "type": "string"}, {"name": "fare", "type": "double"},
            {"name": "tip", "type": ["null", "double"], "default": null}]}"""
store_args = registry_support.store_args  # the sqlite/postgres fixture


@pytest.fixture
def registry(service_process, store_args, tmp_path, root_policy, monkeypatch):
    proc = service_process("registry", *store_args)
    monkeypatch.setenv("HEADWATER_REGISTRY_ADDRESS", proc.address)
    with client(proc.address, root_policy) as c:
        c.create_schema_group("trips", "Avro", "backward")
        yield c


def _produce(c, n1: int, n2: int) -> tuple[list[bytes], list[str]]:
    enc = AvroEncoder(client=c, group_name="trips", auto_register=True)
    msgs = [enc.encode({"tripId": f"a{i}", "fare": float(i)}, schema=TRIP_V1) for i in range(n1)]
    msgs += [enc.encode({"tripId": f"b{i}", "fare": 10.0 + i, "tip": 1.5}, schema=TRIP_V2) for i in range(n2)]
    return [m["content"] for m in msgs], [m["content_type"] for m in msgs]


def _run(rows_batches: list[list[dict]], counters_errors: list[str]) -> tuple[list[dict], object]:
    compiled = compile_query("SELECT * INTO [Output] FROM [Input]")
    rt = compiled.runtime()
    for message in counters_errors:
        rt.counters.error(message)
    for rows in rows_batches:
        rt.feed("Input", rows)
    rt.flush()
    return rt.take()["Output"], rt.counters


def test_stream_switching_to_v2_halfway_through_the_engine(registry):
    bodies, types = _produce(registry, 5, 5)
    v1_id, v2_id = types[0].split("+")[1], types[-1].split("+")[1]
    assert v1_id != v2_id
    # Undecodable events in the middle: garbage bytes, an unknown schema id, not Avro at all.
    bodies[3:3] = [b"\xff\xff\xff", b"\x02a", b'{"tripId": "json"}']
    types[3:3] = [types[0], "avro/binary+" + "0" * 32, "application/json"]

    serializer = get_plugin_manager().collect().serializers.get("avro")
    assert serializer is not None and serializer.name == "avro"
    errors: list[str] = []
    rows = serializer.decode_events(bodies, types, on_error=lambda i, exc: errors.append(
        f"InputDeserializationError: event {i}: {exc}"))
    assert len(errors) == 3 and len(rows) == 10
    out, counters = _run([rows], errors)

    assert len(out) == 10
    assert all(set(r) == {"tripId", "fare", "tip"} for r in out)  # SELECT * carries v2's field
    by_id = {r["tripId"]: r for r in out}
    assert by_id["a1"] == {"tripId": "a1", "fare": 1.0, "tip": None}  # v1 event read in v2's view
    assert by_id["b2"] == {"tripId": "b2", "fare": 12.0, "tip": 1.5}
    assert counters.conversion_errors + counters.deserialization_errors == 3  # counted apart since issue 10
    assert any("no schema with id" in s for s in counters.samples)
    assert any("not avro/binary" in s for s in counters.samples)


def test_batches_decoded_before_v2_exists_then_after(registry, root_policy):
    """A running query: the first half is decoded before the producer registers v2."""
    serializer = get_plugin_manager().collect().serializers.get("avro").configured(registry)
    b1, t1 = _produce(registry, 4, 0)
    first = serializer.decode_events(b1, t1)
    assert all(set(r) == {"tripId", "fare"} for r in first)
    b2, t2 = _produce(registry, 2, 3)  # v2 registered now; v1 stragglers still arrive
    second = serializer.decode_events(b2, t2)
    assert all(set(r) == {"tripId", "fare", "tip"} for r in second)  # reader moved to v2
    out, counters = _run([first, second], [])
    assert len(out) == 9 and counters.conversion_errors == 0
    assert [r.get("tip") for r in out[-3:]] == [1.5, 1.5, 1.5]
    assert [r.get("tip") for r in out[4:6]] == [None, None]


def test_explicit_reader_schema_and_writer_view(registry):
    bodies, types = _produce(registry, 2, 2)
    ser = get_plugin_manager().collect().serializers.get("avro")
    as_v1 = ser.configured(registry, reader_schema=TRIP_V1).decode_events(bodies, types)
    assert all(set(r) == {"tripId", "fare"} for r in as_v1)  # v2 events seen through v1
    own = ser.configured(registry, reader_view="writer").decode_events(bodies, types)
    assert [len(r) for r in own] == [2, 2, 3, 3]
    with pytest.raises(Exception, match="event 0"):
        ser.configured(registry).decode([b"\xff"], types[0])


def test_forward_only_change_falls_back_to_the_writers_view(registry):
    registry.create_schema_group("fwd", "Avro", "forward")
    v2 = TRIP_V1.replace('{"name": "fare", "type": "double"}',
                         '{"name": "fare", "type": "double"}, {"name": "passengers", "type": "int"}')
    enc = AvroEncoder(client=registry, group_name="fwd", auto_register=True)
    m1 = enc.encode({"tripId": "old", "fare": 1.0}, schema=TRIP_V1)
    m2 = enc.encode({"tripId": "new", "fare": 2.0, "passengers": 3}, schema=v2)
    ser = get_plugin_manager().collect().serializers.get("avro").configured(registry)
    rows = ser.decode_events([m1["content"], m2["content"]], [m1["content_type"], m2["content_type"]])
    assert rows == [{"tripId": "old", "fare": 1.0}, {"tripId": "new", "fare": 2.0, "passengers": 3}]


def test_container_files_and_encode_without_registry(tmp_path):
    import io

    import fastavro

    ser = get_plugin_manager().collect().serializers.get("avro")
    rows = [{"tripId": "x", "fare": 1.5, "n": 2}, {"tripId": "y", "fare": None, "n": 3}]
    bodies = ser.encode(rows)
    assert [ser.read_file(b)[0] for b in bodies] == rows
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(__import__("json").loads(TRIP_V1)),
                    [{"tripId": "a", "fare": 1.0}, {"tripId": "b", "fare": 2.0}])
    assert [r["tripId"] for r in ser.read_file(buf.getvalue())] == ["a", "b"]
    with pytest.raises(Exception, match="not an Avro container"):
        ser.read_file(b"nope")


def test_query_test_reads_avro_files_through_the_plugin(tmp_path):
    import fastavro

    from headwater.cli.main import main

    schema = fastavro.parse_schema({"type": "record", "name": "T", "fields": [
        {"name": "tripId", "type": "string"}, {"name": "fare", "type": "double"}]})
    with open(tmp_path / "in.avro", "wb") as fh:
        fastavro.writer(fh, schema, [{"tripId": "a", "fare": 1.0}, {"tripId": "b", "fare": 30.0}])
    (tmp_path / "q.asaql").write_text("SELECT tripId INTO [Output] FROM [Input] WHERE fare > 10")
    assert main(["query", "test", "--query", str(tmp_path / "q.asaql"), "--input", f"Input={tmp_path / 'in.avro'}",
                 "--output-dir", str(tmp_path / "out")]) == 0
    assert __import__("json").loads((tmp_path / "out" / "Output.json").read_text()) == [{"tripId": "b"}]
