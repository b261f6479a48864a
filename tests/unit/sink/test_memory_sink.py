"""The memory table plugin: output modes, exactly-once, snapshot and restore."""

from __future__ import annotations

import pyarrow as pa
import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.sinks import Checkpoint, OutputMode, SinkConfigError, SinkSpec


def make(tmp_path, mode=OutputMode.APPEND, keys=(), **config):
    kind = get_plugin_manager(load_entrypoints=False).collect().sinks.get("memory")
    spec = SinkSpec("t", config, mode, tuple(keys), tmp_path)
    spec = SinkSpec("t", kind.validate(config, spec), mode, tuple(keys), tmp_path)
    sink = kind.create(spec)
    sink.open()
    return sink


def test_append_keeps_write_order_and_new_columns(tmp_path):
    sink = make(tmp_path)
    sink.write_batch(pa.table({"k": ["a", "b"], "v": [1, 2]}), Checkpoint())
    sink.write_batch(pa.table({"k": ["c"], "v": [3], "extra": [True]}), Checkpoint())
    assert sink.read().to_pylist() == [
        {"k": "a", "v": 1, "extra": None}, {"k": "b", "v": 2, "extra": None}, {"k": "c", "v": 3, "extra": True}]


def test_update_replaces_rows_by_key(tmp_path):
    sink = make(tmp_path, OutputMode.UPDATE, ["k"])
    sink.write_batch(pa.table({"k": ["a", "b"], "v": [1, 2]}), Checkpoint())
    sink.write_batch(pa.table({"k": ["b", "c", "c"], "v": [20, 3, 30]}), Checkpoint())
    assert sorted(map(tuple, (r.values() for r in sink.read().to_pylist()))) == [("a", 1), ("b", 20), ("c", 30)]


def test_update_without_key_columns_is_refused(tmp_path):
    with pytest.raises(SinkConfigError, match="key_columns"):
        make(tmp_path, OutputMode.UPDATE)


def test_complete_replaces_the_table_each_trigger(tmp_path):
    sink = make(tmp_path, OutputMode.COMPLETE)
    sink.write_batch(pa.table({"k": ["a"], "n": [1]}), Checkpoint(1, 0, "w"))
    sink.write_batch(pa.table({"k": ["b"], "n": [1]}), Checkpoint(1, 1, "w"))
    assert sink.read().num_rows == 2
    sink.write_batch(pa.table({"k": ["a"], "n": [5]}), Checkpoint(2, 0, "w"))
    assert sink.read().to_pylist() == [{"k": "a", "n": 5}]


def test_replayed_checkpoint_is_not_applied_twice(tmp_path):
    sink = make(tmp_path)
    batch = pa.table({"v": [1, 2, 3]})
    assert sink.write_batch(batch, Checkpoint(7, 0, "job")) is None
    assert sink.write_batch(batch, Checkpoint(7, 0, "job")) == "duplicate"
    assert sink.write_batch(batch, Checkpoint(6, 9, "job")) == "duplicate"
    sink.write_batch(batch, Checkpoint(7, 0, "other-writer"))
    assert sink.read().num_rows == 6


def test_flush_snapshots_rows_and_checkpoints_for_a_restart(tmp_path):
    sink = make(tmp_path)
    sink.write_batch(pa.table({"v": [1, 2]}), Checkpoint(3, 0, "job"))
    sink.flush()
    again = make(tmp_path)
    assert again.read().to_pylist() == [{"v": 1}, {"v": 2}]
    assert again.last_checkpoint("job") == Checkpoint(3, 0, "job")
    assert again.write_batch(pa.table({"v": [1, 2]}), Checkpoint(3, 0, "job")) == "duplicate"


def test_max_rows_keeps_the_newest(tmp_path):
    sink = make(tmp_path, max_rows=3)
    sink.write_batch(pa.table({"v": [1, 2]}), Checkpoint())
    sink.write_batch(pa.table({"v": [3, 4]}), Checkpoint())
    assert sink.read().column("v").to_pylist() == [2, 3, 4]


def test_unknown_setting_is_named(tmp_path):
    with pytest.raises(SinkConfigError, match="unknown setting 'max_row'"):
        make(tmp_path, max_row=3)


def test_dashboard_kind_accepts_chart_columns(tmp_path):
    kind = get_plugin_manager(load_entrypoints=False).collect().sinks.get("dashboard")
    spec = SinkSpec("d", {}, OutputMode.APPEND, (), tmp_path)
    cfg = kind.validate({"chart": {"x": "startLocation", "y": "trips", "series": "WindowEnd"}}, spec)
    assert (cfg["key"], cfg["value"], cfg["time"], cfg["max_rows"]) == ("startLocation", "trips", "WindowEnd", 10_000)
    with pytest.raises(SinkConfigError, match="chart"):
        kind.validate({"chart": {"z": "a"}}, spec)


def test_append_flushes_write_only_new_rows_and_restore_them_all(tmp_path):
    sink = make(tmp_path)
    for ckpt in range(1, 4):
        sink.write_batch(pa.table({"v": [ckpt * 10, ckpt * 10 + 1]}), Checkpoint(ckpt, 0, "job"))
        sink.flush()
    segments = sorted(tmp_path.glob("seg-*.arrow"))
    assert [pa.ipc.open_file(pa.memory_map(str(p))).read_all().num_rows for p in segments] == [2, 2, 2]
    (tmp_path / "seg-99999999999999999999-000001.arrow").write_bytes(b"left by a crash")
    again = make(tmp_path)
    assert again.read().column("v").to_pylist() == [10, 11, 20, 21, 30, 31]
    assert not (tmp_path / "seg-99999999999999999999-000001.arrow").exists()


def test_update_flush_rewrites_one_segment(tmp_path):
    sink = make(tmp_path, OutputMode.UPDATE, ["k"])
    sink.write_batch(pa.table({"k": ["a"], "n": [1]}), Checkpoint(1, 0, "w"))
    sink.flush()
    sink.write_batch(pa.table({"k": ["a"], "n": [2]}), Checkpoint(2, 0, "w"))
    sink.flush()
    assert len(list(tmp_path.glob("seg-*.arrow"))) == 1
    assert make(tmp_path, OutputMode.UPDATE, ["k"]).read().to_pylist() == [{"k": "a", "n": 2}]
