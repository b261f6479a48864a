"""The postgres plugin against the real PostgreSQL on this machine (a unique table per test)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.pluginmanager import get_plugin_manager
from headwater.sinks import (
    Checkpoint,
    OutputMode,
    SinkConfigError,
    SinkRowError,
    SinkSpec,
)

from .conftest import pg_columns, pg_rows


def make(tmp_path, dsn, table, mode=OutputMode.APPEND, keys=(), **config):
    kind = get_plugin_manager(load_entrypoints=False).collect().sinks.get("postgres")
    config = {"dsn": dsn, "table": table, **config}
    spec = SinkSpec("out", config, mode, tuple(keys), tmp_path)
    spec = SinkSpec("out", kind.validate(config, spec), mode, tuple(keys), tmp_path)
    sink = kind.create(spec)
    sink.open()
    return sink


def test_insert_creates_the_table_with_typed_columns(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table)
    when = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
    sink.write_batch(pa.table({
        "tripId": ["a", "b"], "fare": [10, None], "distance": [1.5, 2.0], "ok": [True, False],
        "createdAt": pa.array([when, when], pa.timestamp("us", tz="UTC")), "note": ['x,"y', ""],
        "tags": [["p", "q"], None]}), Checkpoint())
    cols = pg_columns(pg_dsn, pg_table)
    assert cols == {"tripId": "text", "fare": "bigint", "distance": "double precision", "ok": "boolean",
                    "createdAt": "timestamp with time zone", "note": "text", "tags": "jsonb"}
    rows = pg_rows(pg_dsn, pg_table, '"tripId"')
    assert rows[0] == ("a", 10, 1.5, True, when, 'x,"y', ["p", "q"])
    assert rows[1] == ("b", None, 2.0, False, when, "", None)
    sink.close()


def test_columns_are_added_when_rows_gain_fields(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table)
    sink.write_batch(pa.table({"id": [1]}), Checkpoint())
    sink.write_batch(pa.table({"id": [2], "city": ["Oslo"]}), Checkpoint())
    assert pg_columns(pg_dsn, pg_table) == {"id": "bigint", "city": "text"}
    assert pg_rows(pg_dsn, pg_table) == [(1, None), (2, "Oslo")]
    sink.close()


def test_upsert_level_1_2_replaces_the_whole_document(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table, id_field="id")
    sink.write_batch(pa.table({"id": ["1", "2"], "a": [1, 2], "b": ["x", "y"]}), Checkpoint())
    sink.write_batch(pa.table({"id": ["1", "3"], "a": [10, 30]}), Checkpoint())
    assert pg_rows(pg_dsn, pg_table) == [("1", 10, None), ("2", 2, "y"), ("3", 30, None)]
    sink.close()


@pytest.mark.parametrize("level", ["1.0", "1.1"])
def test_upsert_level_1_0_and_1_1_merge_properties(tmp_path, pg_dsn, pg_table, level):
    sink = make(tmp_path, pg_dsn, pg_table, id_field="id", compatibility_level=level)
    sink.write_batch(pa.table({"id": ["1", "2"], "a": [1, 2], "b": ["x", "y"]}), Checkpoint())
    sink.write_batch(pa.table({"id": ["1", "1"], "a": [10, None], "c": [None, True]}), Checkpoint())
    assert pg_rows(pg_dsn, pg_table) == [("1", 10, "x", True), ("2", 2, "y", None)]
    sink.close()


def test_upsert_with_duplicate_ids_in_one_batch_keeps_the_last(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table, OutputMode.UPDATE, ["id"])
    sink.write_batch(pa.table({"id": [1, 1, 2], "v": ["old", "new", "z"]}), Checkpoint())
    assert pg_rows(pg_dsn, pg_table) == [(1, "new"), (2, "z")]
    sink.close()


def test_upsert_without_id_field_is_a_config_error(tmp_path, pg_dsn, pg_table):
    with pytest.raises(SinkConfigError, match="id_field") as info:
        make(tmp_path, pg_dsn, pg_table, OutputMode.UPDATE)
    assert info.value.metadata["field"] == "id_field"


def test_row_without_the_id_names_row_and_field(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table, id_field="docId")
    with pytest.raises(SinkRowError, match=r"row 1: document id field 'docId' is missing") as info:
        sink.write_batch(pa.table({"docId": ["a", None, "c"], "v": [1, 2, 3]}), Checkpoint())
    assert info.value.rows == [1]
    with pytest.raises(SinkRowError, match="'docId' is missing from the rows"):
        sink.write_batch(pa.table({"v": [1]}), Checkpoint())
    sink.close()


def test_type_conflict_names_the_row_column_and_value(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table)
    sink.write_batch(pa.table({"n": [1, 2]}), Checkpoint())
    with pytest.raises(SinkRowError, match=r"row 2, column 'n' \(value 'abc'\): type conflict") as info:
        sink.write_batch(pa.table({"n": ["3", "4", "abc"]}), Checkpoint())
    assert info.value.rows == [2]
    assert pg_rows(pg_dsn, pg_table) == [(1,), (2,)]  # the failed batch left nothing behind
    sink.close()


def test_replayed_checkpoint_is_skipped_inside_the_transaction(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table)
    batch = pa.table({"v": [1, 2]})
    assert sink.write_batch(batch, Checkpoint(5, 0, "job")) is None
    assert sink.write_batch(batch, Checkpoint(5, 1, "job")) is None
    sink.close()
    again = make(tmp_path, pg_dsn, pg_table)  # a new connection, as after a restart
    assert again.last_checkpoint("job") == Checkpoint(5, 1, "job")
    assert again.write_batch(batch, Checkpoint(5, 0, "job")) == "duplicate"
    assert again.write_batch(batch, Checkpoint(5, 1, "job")) == "duplicate"
    assert len(pg_rows(pg_dsn, pg_table)) == 4
    again.close()


def test_complete_mode_replaces_rows_by_key_and_keeps_other_groups(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table, OutputMode.COMPLETE)  # default key: k (the non-numeric column)
    sink.write_batch(pa.table({"k": ["a", None], "n": [1, 7]}), Checkpoint(1, 0, "w"))
    sink.write_batch(pa.table({"k": ["b"], "n": [2]}), Checkpoint(1, 1, "w"))
    sink.write_batch(pa.table({"k": ["a", None], "n": [3, 8]}), Checkpoint(2, 0, "w"))
    assert sorted(pg_rows(pg_dsn, pg_table), key=str) == sorted([("a", 3), ("b", 2), (None, 8)], key=str)
    sink.close()


def test_complete_mode_without_a_key_replaces_the_table_each_trigger(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table, OutputMode.COMPLETE)
    sink.write_batch(pa.table({"n": [1]}), Checkpoint(1, 0, "w"))
    sink.write_batch(pa.table({"n": [2]}), Checkpoint(2, 0, "w"))
    assert pg_rows(pg_dsn, pg_table) == [(2,)]
    sink.close()


def test_bad_credentials_are_a_permanent_error_naming_the_output(tmp_path, pg_table):
    sink_kind = get_plugin_manager(load_entrypoints=False).collect().sinks.get("postgres")
    spec = SinkSpec("out", {"dsn": "host=127.0.0.1 dbname=test user=no_such_role_hw", "table": pg_table})
    sink = sink_kind.create(spec)
    with pytest.raises(HeadwaterError) as info:
        sink.open()
    assert info.value.reason is Reason.UNAUTHORIZED
    assert not info.value.is_transient
    assert "postgres sink 'out'" in info.value.message and "no_such_role_hw" in info.value.message


def test_unreachable_server_is_transient(tmp_path, pg_table):
    from headwater.procs import free_port

    kind = get_plugin_manager(load_entrypoints=False).collect().sinks.get("postgres")
    sink = kind.create(SinkSpec("out", {"dsn": f"host=127.0.0.1 port={free_port()} dbname=test user=postgres",
                                        "table": pg_table}))
    with pytest.raises(HeadwaterError) as info:
        sink.open()
    assert info.value.is_transient


def test_complete_mode_empty_trigger_changes_nothing(tmp_path, pg_dsn, pg_table):
    sink = make(tmp_path, pg_dsn, pg_table, OutputMode.COMPLETE)
    sink.write_batch(pa.table({"k": ["a"], "n": [1]}), Checkpoint(1, 0, "w"))
    sink.write_batch(pa.table({"k": pa.array([], pa.string())}), Checkpoint(2, 0, "w"))
    assert pg_rows(pg_dsn, pg_table) == [("a", 1)]
    sink.close()
