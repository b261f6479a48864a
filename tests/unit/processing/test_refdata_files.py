"""Refreshed reference snapshots by event time, delta queries, path patterns and the
file manifest, and the CLI's spellings of file and PostgreSQL inputs."""

from __future__ import annotations

import argparse
import json

import pytest

from headwater.errors import HeadwaterError
from headwater.services.processing.exec.join import BEGINNING, ReferenceVersions
from headwater.services.processing.files import FileStream, PathPattern
from headwater.services.processing.refdata import _apply_delta
from headwater.v1 import processing_pb2 as pb


def test_an_event_joins_the_snapshot_valid_at_its_time():
    v = ReferenceVersions()
    v.add(BEGINNING, [{"k": "first"}])
    v.add(2_000, [{"k": "second"}])
    v.add(1_000, [{"k": "middle"}])
    assert v.at(-5)[0]["k"] == "first"
    assert v.at(999)[0]["k"] == "first"
    assert v.at(1_000)[0]["k"] == "middle"
    assert v.at(1_999)[0]["k"] == "middle"
    assert v.at(2_000)[0]["k"] == "second"
    v.prune(5_000)  # two kept behind the watermark
    assert v.starts == [1_000, 2_000]
    assert ReferenceVersions.from_json(v.to_json()).at(1_500) == [{"k": "middle"}]


def test_a_delta_inserts_and_deletes_rows_in_order():
    rows = [{"d": "a", "l": 1}, {"d": "b", "l": 2}]
    out = _apply_delta("R", rows, [{"d": "a", "l": 1, "_operation": -1}, {"d": "a", "l": 9, "_operation": 1},
                                   {"d": "c", "l": 3, "_operation": "insert"}])
    assert out == [{"d": "b", "l": 2}, {"d": "a", "l": 9}, {"d": "c", "l": 3}]
    with pytest.raises(HeadwaterError, match="_operation 1 \\(insert\\) or -1"):
        _apply_delta("R", [], [{"d": "x"}])


def test_a_pattern_gives_files_in_path_time_order_per_partition(tmp_path):
    for rel in ("0/2026/01/02/10/00/05.avro", "1/2026/01/02/10/00/01.avro", "0/2026/01/02/09/59/59.avro",
                "0/2026/01/02/10/00/05.tmp"):
        (tmp_path / "ns" / "hub" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "ns" / "hub" / rel).write_bytes(b"")
    p = PathPattern(f"{tmp_path}/{{Namespace}}/{{EventHub}}/{{PartitionId}}/{{Year}}/{{Month}}/{{Day}}/{{Hour}}/"
                    "{Minute}/{Second}.avro", [tmp_path])
    got = [(f.partition, f.path.relative_to(tmp_path / "ns" / "hub").as_posix()) for f in p.files()]
    assert got == [("0", "0/2026/01/02/09/59/59.avro"), ("1", "1/2026/01/02/10/00/01.avro"),
                   ("0", "0/2026/01/02/10/00/05.avro")]
    with pytest.raises(HeadwaterError, match="date_format"):
        PathPattern(f"{tmp_path}/{{date}}/x.json", [tmp_path], date_format="YY")


def test_the_manifest_numbers_files_once_and_skips_a_file_older_than_those_taken(tmp_path):
    (tmp_path / "logs" / "2026-01-02" / "10").mkdir(parents=True)
    (tmp_path / "logs" / "2026-01-02" / "10" / "a.json").write_text(json.dumps({"x": 1}))
    p = PathPattern(f"{tmp_path}/logs/{{date}}/{{time}}/*.json", [tmp_path], date_format="YYYY-MM-DD")
    fs = FileStream("F", p, tmp_path / "m.json", fresh=True)
    assert fs.assign(p.files(), now_us=2**62)
    fs.save()
    (tmp_path / "logs" / "2026-01-02" / "09").mkdir()
    (tmp_path / "logs" / "2026-01-02" / "09" / "late.json").write_text(json.dumps({"x": 0}))
    (tmp_path / "logs" / "2026-01-02" / "11").mkdir()
    (tmp_path / "logs" / "2026-01-02" / "11" / "b.json").write_text(json.dumps({"x": 2}) + "\n" + json.dumps({"x": 3}))
    again = FileStream("F", p, tmp_path / "m.json", fresh=False)
    assert again.assign(p.files(), now_us=2**62)
    assert [path.rsplit("/", 1)[1] for path, _ in again.manifest["0"]] == ["a.json", "b.json"]
    bodies, arrivals, seqs = again.events("0", 1, 10**6, after_seq=(1 << 32), start_us=None)
    assert bodies == [b'{"x": 3}'] and seqs == [(1 << 32) + 1]
    # A file for a later period waits for its time.
    assert not FileStream("F", p, tmp_path / "n.json", fresh=True).assign(p.files(), now_us=0)


def _args(**kw):
    base = dict(refresh=None, dsn=None, delta_query=None, date_format=None, time_format=None)
    return argparse.Namespace(**{**base, **kw})


def test_the_cli_spells_postgres_and_file_references_and_file_inputs():
    from headwater.cli.job import _add_reference, _files_pattern

    job = pb.Job()
    _add_reference(job, "R", "postgres:SELECT a FROM t", _args(dsn="secret:db", refresh="5m",
                                                              delta_query="SELECT a, 1 AS _operation FROM t"))
    _add_reference(job, "F", "files:/data/ref/{date}/{time}/r.csv", _args(refresh="1m", date_format="YYYY-MM-DD"))
    r, f = job.inputs
    assert (r.reference_query, r.dsn, r.refresh_interval.seconds, r.reference_delta_query) == \
        ("SELECT a FROM t", "secret:db", 300, "SELECT a, 1 AS _operation FROM t")
    assert (f.path_pattern, f.refresh_interval.seconds, f.date_format) == ("/data/ref/{date}/{time}/r.csv", 60,
                                                                          "YYYY-MM-DD")
    with pytest.raises(HeadwaterError, match="--dsn"):
        _add_reference(pb.Job(), "R", "postgres:SELECT 1", _args())
    assert _files_pattern("files:capture/**/*.avro") == "capture/**/*.avro"
    assert _files_pattern("files:json") is None  # a hub named files, format json


def test_csv_and_parquet_files_become_json_events_by_column(tmp_path):
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from headwater.services.processing.files import FileEntry, read_events

    (tmp_path / "t.csv").write_text("city,n,at\nSeattle,2,2024-01-01T00:00:01Z\nDenver,,2024-01-01T00:00:02Z\n")
    table = pa.table({"city": ["a"], "at": pa.array([dt.datetime(2024, 1, 1, 0, 0, 0, 250000)], pa.timestamp("ms")),
                      "raw": pa.array([b"\xff"], pa.binary())})
    pq.write_table(table, tmp_path / "t.parquet")
    got = {}
    for name in ("t.csv", "t.parquet"):
        p = tmp_path / name
        bodies, arrivals = read_events(FileEntry(p, 7, "0", p.stat().st_size), 10**6)
        got[name] = [json.loads(b) for b in bodies]
        assert arrivals == [7] * len(bodies)
    assert got["t.csv"] == [{"city": "Seattle", "n": 2, "at": "2024-01-01T00:00:01Z"},
                            {"city": "Denver", "n": None, "at": "2024-01-01T00:00:02Z"}]
    assert got["t.parquet"] == [{"city": "a", "at": "2024-01-01T00:00:00.250000", "raw": "/w=="}]
    with pytest.raises(HeadwaterError, match="over the limit"):
        read_events(FileEntry(tmp_path / "t.csv", 0, "0", 10**7), 10**6)
