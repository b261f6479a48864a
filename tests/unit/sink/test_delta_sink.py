"""The delta plugin: append with mergeSchema, complete overwrite, update merge, exactly-once via txn."""

from __future__ import annotations

import pyarrow as pa
from deltalake import DeltaTable

from headwater.pluginmanager import get_plugin_manager
from headwater.sinks import Checkpoint, OutputMode, SinkSpec


def make(tmp_path, mode=OutputMode.APPEND, keys=(), **config):
    kind = get_plugin_manager(load_entrypoints=False).collect().sinks.get("delta")
    config = {"path": str(tmp_path / "delta"), **config}
    spec = SinkSpec("d", config, mode, tuple(keys), tmp_path / "state")
    sink = kind.create(SinkSpec("d", kind.validate(config, spec), mode, tuple(keys), tmp_path / "state"))
    sink.open()
    return sink


def rows(tmp_path, sort="id"):
    return sorted(DeltaTable(str(tmp_path / "delta")).to_pyarrow_table().to_pylist(), key=lambda r: r[sort])


def test_append_with_merge_schema_adds_columns(tmp_path):
    sink = make(tmp_path)
    sink.write_batch(pa.table({"id": [1, 2], "city": ["Oslo", "Lima"]}), Checkpoint(1, 0, "job"))
    sink.flush()
    sink.write_batch(pa.table({"id": [3], "city": ["Pune"], "fare": [9.5]}), Checkpoint(2, 0, "job"))
    sink.flush()
    assert rows(tmp_path) == [{"id": 1, "city": "Oslo", "fare": None}, {"id": 2, "city": "Lima", "fare": None},
                              {"id": 3, "city": "Pune", "fare": 9.5}]


def test_replay_is_recognised_from_the_delta_log(tmp_path):
    sink = make(tmp_path)
    sink.write_batch(pa.table({"id": [1]}), Checkpoint(4, 2, "job"))
    sink.flush()
    again = make(tmp_path)  # a restarted service knows only the table
    assert again.last_checkpoint("job") == Checkpoint(4, 2, "job")
    assert again.write_batch(pa.table({"id": [1]}), Checkpoint(4, 2, "job")) == "duplicate"
    again.write_batch(pa.table({"id": [2]}), Checkpoint(5, 0, "job"))
    again.flush()
    assert [r["id"] for r in rows(tmp_path)] == [1, 2]


def test_complete_merges_by_key_overwrites_without_one_and_update_merges(tmp_path):
    sink = make(tmp_path, OutputMode.COMPLETE)  # no non-numeric column: no key, each trigger overwrites
    sink.write_batch(pa.table({"id": [1, 2]}), Checkpoint(1, 0, "job"))
    sink.flush()
    sink.write_batch(pa.table({"id": [3]}), Checkpoint(2, 0, "job"))
    sink.flush()
    assert [r["id"] for r in rows(tmp_path)] == [3]

    keyed = make(tmp_path / "c", OutputMode.COMPLETE)  # default key: k
    keyed.write_batch(pa.table({"k": ["a", "b"], "n": [1, 1]}), Checkpoint(1, 0, "job"))
    keyed.write_batch(pa.table({"k": ["a"], "n": [2]}), Checkpoint(2, 0, "job"))  # same commit: one row per key
    keyed.flush()
    keyed.write_batch(pa.table({"k": ["b", "c"], "n": [5, 1]}), Checkpoint(3, 0, "job"))
    keyed.flush()
    assert sorted((r["k"], r["n"]) for r in rows(tmp_path / "c", sort="k")) == [("a", 2), ("b", 5), ("c", 1)]

    up = make(tmp_path / "u", OutputMode.UPDATE, ["id"])
    up.write_batch(pa.table({"id": [1, 2], "v": ["a", "b"]}), Checkpoint(1, 0, "job"))
    up.flush()
    up.write_batch(pa.table({"id": [2, 3], "v": ["B", "c"]}), Checkpoint(2, 0, "job"))
    up.flush()
    assert rows(tmp_path / "u") == [{"id": 1, "v": "a"}, {"id": 2, "v": "B"}, {"id": 3, "v": "c"}]
