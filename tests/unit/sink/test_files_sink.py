"""The files plugin: formats, path patterns, rolling, atomic rename, exactly-once per checkpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.sinks import Checkpoint, OutputMode, SinkConfigError, SinkSpec


def make(tmp_path, **config):
    kind = get_plugin_manager(load_entrypoints=False).collect().sinks.get("files")
    config = {"path": str(tmp_path / "out"), **config}
    spec = SinkSpec("f", config, OutputMode.APPEND, (), tmp_path / "state")
    sink = kind.create(SinkSpec("f", kind.validate(config, spec), OutputMode.APPEND, (), tmp_path / "state"))
    sink.open()
    return sink


def visible(tmp_path, pattern="**/*"):
    root = tmp_path / "out"
    return sorted(str(p.relative_to(root)) for p in root.glob(pattern)
                  if p.is_file() and not p.name.startswith(".") and "_headwater" not in p.parts)


TRIPS = pa.table({"city": ["Oslo", "Lima", "Oslo"], "fare": [10, 20, 30],
                  "createdAt": pa.array([datetime(2026, 3, 4, 5, 6, tzinfo=UTC)] * 3,
                                        pa.timestamp("us", tz="UTC"))})


def test_jsonl_file_is_invisible_until_flush(tmp_path):
    sink = make(tmp_path)
    sink.write_batch(TRIPS, Checkpoint(1, 0, "job"))
    assert visible(tmp_path) == []  # only the hidden .inprogress file exists
    sink.flush()
    files = visible(tmp_path)
    assert len(files) == 1 and files[0].endswith("-000000000001-0000.jsonl")
    lines = (tmp_path / "out" / files[0]).read_text().splitlines()
    assert [json.loads(x)["fare"] for x in lines] == [10, 20, 30]


def test_path_pattern_partitions_by_field_date_and_time(tmp_path):
    sink = make(tmp_path, path_pattern="{city}/{date}/{time}", time_field="createdAt", format="parquet")
    sink.write_batch(TRIPS, Checkpoint(1, 0, "job"))
    sink.flush()
    files = visible(tmp_path)
    assert [f.rsplit("/", 1)[0] for f in files] == ["Lima/2026/03/04/05", "Oslo/2026/03/04/05"]
    oslo = pq.read_table(tmp_path / "out" / files[1])
    assert oslo.column("fare").to_pylist() == [10, 30]


def test_csv_and_avro_formats(tmp_path):
    import fastavro

    for fmt in ("csv", "avro"):
        sink = make(tmp_path, format=fmt, prefix=fmt)
        sink.write_batch(TRIPS, Checkpoint())
        sink.flush()
    csv_file = next(p for p in (tmp_path / "out").iterdir() if p.suffix == ".csv")
    assert csv_file.read_text().splitlines()[0] == '"city","fare","createdAt"'
    avro_file = next(p for p in (tmp_path / "out").iterdir() if p.suffix == ".avro")
    with open(avro_file, "rb") as fh:
        records = list(fastavro.reader(fh))
    assert [r["city"] for r in records] == ["Oslo", "Lima", "Oslo"]
    assert records[0]["createdAt"] == datetime(2026, 3, 4, 5, 6, tzinfo=UTC)


def test_files_roll_by_size(tmp_path):
    sink = make(tmp_path, roll_size_mb=0.0001)  # about 100 bytes
    for i in range(3):
        sink.write_batch(TRIPS, Checkpoint(1, i, "job"))
    sink.flush()
    assert len(visible(tmp_path)) == 3


def test_files_roll_by_time_on_poll(tmp_path, monkeypatch):
    import time
    import types

    from headwater.plugins.sinks import files

    sink = make(tmp_path, roll_interval_s=10)
    sink.write_batch(TRIPS, Checkpoint())
    sink.poll()
    assert len(visible(tmp_path)) == 0  # younger than roll_interval_s
    # The sink's clock moves on past roll_interval_s (no waiting in real time).
    monkeypatch.setattr(files, "time", types.SimpleNamespace(monotonic=lambda: time.monotonic() + 11))
    sink.poll()
    assert len(visible(tmp_path)) == 1


def test_committed_checkpoint_is_skipped_and_uncommitted_files_removed_on_restart(tmp_path):
    sink = make(tmp_path, roll_size_mb=0.0001)
    sink.write_batch(TRIPS, Checkpoint(1, 0, "job"))
    sink.flush()  # checkpoint 1 committed
    sink.write_batch(TRIPS, Checkpoint(2, 0, "job"))  # rolled by size: visible, but not committed
    sink.write_batch(TRIPS, Checkpoint(2, 1, "job"))  # crash before the flush
    assert len(visible(tmp_path)) == 3
    again = make(tmp_path, roll_size_mb=0.0001)  # restart: checkpoint 2 will be replayed
    assert len(visible(tmp_path)) == 1
    assert again.last_checkpoint("job") == Checkpoint(1, 0, "job")
    assert again.write_batch(TRIPS, Checkpoint(1, 0, "job")) == "duplicate"
    again.write_batch(TRIPS, Checkpoint(2, 0, "job"))
    again.write_batch(TRIPS, Checkpoint(2, 1, "job"))
    again.flush()
    rows = sum(len((tmp_path / "out" / f).read_text().splitlines()) for f in visible(tmp_path))
    assert rows == 9  # three batches of three, none twice


def test_bad_settings_are_named(tmp_path):
    with pytest.raises(SinkConfigError, match="'format' must be one of"):
        make(tmp_path, format="xml")
    with pytest.raises(SinkConfigError, match="'date_format'"):
        make(tmp_path, date_format="YY")
    with pytest.raises(SinkConfigError, match="path_pattern"):
        make(tmp_path, path_pattern="../escape")


def test_restart_after_upgrade_keeps_committed_files_named_the_old_way(tmp_path):
    """Before names carried the sink, the tag was sha1(writer): committed files stay, uncommitted go."""
    import hashlib

    out = tmp_path / "out"
    (out / "_headwater").mkdir(parents=True)
    old = hashlib.sha1(b"job").hexdigest()[:8]
    (out / "_headwater" / "f.json").write_text(json.dumps({"last": {"job": [2, 0]}, "tags": [old]}))
    for ckpt in (1, 2, 3):
        (out / f"part-{old}-{ckpt:012d}-0000.jsonl").write_text("{}\n")
    (out / "notes.txt").write_text("mine")
    make(tmp_path)
    assert visible(tmp_path) == ["notes.txt", f"part-{old}-000000000001-0000.jsonl",
                                 f"part-{old}-000000000002-0000.jsonl"]
