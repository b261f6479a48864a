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


def test_complete_replaces_rows_by_key_and_keeps_the_other_groups(tmp_path):
    """Stream Analytics-style: each trigger brings only the windows it closed."""
    sink = make(tmp_path, OutputMode.COMPLETE, ["k"])
    sink.write_batch(pa.table({"k": ["a", "b"], "n": [1, 1]}), Checkpoint(1, 0, "w"))
    sink.write_batch(pa.table({"k": ["a"], "n": [5]}), Checkpoint(2, 0, "w"))
    assert sorted(sink.read().to_pylist(), key=lambda r: r["k"]) == [{"k": "a", "n": 5}, {"k": "b", "n": 1}]


def test_complete_book_example_keeps_every_window(tmp_path):
    """The book's trips per (window, startLocation): 150 trips over 3 windows, each
    trigger emitting only the window it closed, leave 150 in the table (the bug left
    the last trigger's rows only); a Spark-style writer resending the whole result
    each trigger leaves the same table. Default key: the non-numeric columns."""
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 1)
    cities = ["Delhi", "Mumbai", "Pune", "Chennai", "Kolkata"]
    windows = [t0 + timedelta(minutes=m) for m in range(3)]
    counts = {(w, c): 10 for w in windows for c in cities}  # 3 x 5 x 10 = 150 trips

    def rows(ws):
        pairs = [(w, c) for w in ws for c in cities]
        return pa.table({"window_end": [p[0] for p in pairs], "startLocation": [p[1] for p in pairs],
                         "count": [counts[p] for p in pairs]})

    closed_only = make(tmp_path / "sa", OutputMode.COMPLETE)
    whole = make(tmp_path / "spark", OutputMode.COMPLETE)
    for i, _ in enumerate(windows, start=1):
        closed_only.write_batch(rows(windows[i - 1:i]), Checkpoint(i, 0, "job"))
        whole.write_batch(rows(windows[:i]), Checkpoint(i, 0, "job"))
    for sink in (closed_only, whole):
        table = sink.read()
        assert table.num_rows == 15 and sum(table.column("count").to_pylist()) == 150
    closed_only.flush()
    assert sum(make(tmp_path / "sa", OutputMode.COMPLETE).read().column("count").to_pylist()) == 150


def test_complete_without_a_key_replaces_the_table_each_trigger(tmp_path):
    """A global aggregate (every column a number) has no key: a trigger replaces it."""
    sink = make(tmp_path, OutputMode.COMPLETE)
    sink.write_batch(pa.table({"n": [1]}), Checkpoint(1, 0, "w"))
    sink.write_batch(pa.table({"n": [2]}), Checkpoint(1, 1, "w"))
    assert sink.read().num_rows == 2
    sink.write_batch(pa.table({"n": [5]}), Checkpoint(2, 0, "w"))
    assert sink.read().to_pylist() == [{"n": 5}]


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
