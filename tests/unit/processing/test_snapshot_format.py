"""Checkpoints are a versioned Arrow format (no pickle) that restores exactly or is refused."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import orjson
import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import OrderingPolicy, compile_query, format_rows
from headwater.services.processing.state.snapshot import SCHEMA_VERSION, SnapshotError, read_header

SQL = Path(__file__).resolve().parents[2] / "sql"


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False).collect()


def _cases():
    for path in sorted((SQL / "queries").glob("*.sql")):
        text = path.read_text()
        head = dict(line[3:].split(":", 1) for line in text.splitlines() if line.startswith("-- ") and ":" in line)
        head = {k.strip(): v.strip() for k, v in head.items()}
        if "fail" not in head:
            yield pytest.param(text, head, id=path.stem)


def _canon(rows):
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in format_rows(rows))


def _run(pm, text, head, split: int | None, vectorize: bool):
    data = json.loads((SQL / "inputs" / f"{head['inputs']}.json").read_text())
    refs = [r.strip() for r in head.get("references", "").split(",") if r.strip()]
    compiled = compile_query(text, pm, references=refs)
    policy = OrderingPolicy.from_seconds(late=3600)
    ref_rows = {r: data[r] for r in refs}
    rt = compiled.runtime(policy, reference_data=ref_rows, vectorize=vectorize)
    events = [(alias, ev) for alias in data if alias not in refs for ev in data[alias]]
    out: list = []
    for i, (alias, ev) in enumerate(events):
        if i == split:
            blob = rt.snapshot()
            assert b"\x80\x05" not in blob[:2] and read_header(blob)["schema_version"] == SCHEMA_VERSION
            rt = compiled.runtime(policy, reference_data=ref_rows, vectorize=vectorize)
            rt.restore(blob)
        rt.feed(alias, [ev], [1_704_067_200_000_000 + i])
        out += [r for rows in rt.take().values() for r in rows]
    rt.flush()
    out += [r for rows in rt.take().values() for r in rows]
    return _canon(out)


@pytest.mark.parametrize("vectorize", [True, False], ids=["planned", "row"])
@pytest.mark.parametrize("text,head", list(_cases()))
def test_restore_mid_stream_gives_the_same_rows(pm, text, head, vectorize) -> None:
    data = json.loads((SQL / "inputs" / f"{head['inputs']}.json").read_text())
    n = sum(len(v) for k, v in data.items())
    whole = _run(pm, text, head, None, vectorize)
    assert _run(pm, text, head, n // 2, vectorize) == whole


COUNT = "SELECT k, COUNT(*) AS n FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(second, 10)"


def test_snapshot_of_another_plan_is_refused_clearly(pm) -> None:
    rt = compile_query(COUNT, pm).runtime()
    rt.feed("i", [{"k": "a", "t": "2024-01-01T00:00:01Z"}])
    blob = rt.snapshot()
    other = compile_query(COUNT.replace("COUNT(*)", "COUNT(k)"), pm).runtime()
    with pytest.raises(SnapshotError, match="different query plan"):
        other.restore(blob)
    same_text_row_plan = compile_query(COUNT, pm).runtime(vectorize=False)
    with pytest.raises(SnapshotError, match="different query plan"):
        same_text_row_plan.restore(blob)


def test_old_and_foreign_blobs_are_refused(pm) -> None:
    rt = compile_query(COUNT, pm).runtime()
    with pytest.raises(SnapshotError, match="format 1 .*pickle"):
        rt.restore(b"HWQS\x01" + b"\0" * 8 + pickle.dumps({}))
    with pytest.raises(SnapshotError, match="not a query snapshot"):
        rt.restore(b"garbage")
    blob = compile_query(COUNT, pm).runtime().snapshot()
    (n,) = struct.unpack("<I", blob[5:9])
    header = json.loads(blob[9:9 + n])
    header["schema_version"] = SCHEMA_VERSION + 1
    future = json.dumps(header).encode()
    with pytest.raises(SnapshotError, match=f"schema version {SCHEMA_VERSION + 1}"):
        rt.restore(blob[:5] + struct.pack("<I", len(future)) + future + blob[9 + n:])


def test_header_names_engine_and_schema_version(pm) -> None:
    from headwater import __version__

    header = read_header(compile_query(COUNT, pm).runtime().snapshot())
    assert header["engine_version"] == __version__ and header["schema_version"] == SCHEMA_VERSION


# -- row operators' keyed state (msgpack sections, schema version 3) ------------------------
STDEV = "SELECT k, COUNT(*) AS n, STDEV(v) AS sd, MAX(w) AS w FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)"
# WHEN keeps LAG on the row implementation (the vectorised one takes LAG/LAST without WHEN)
LAG = "SELECT k, v, LAG(v) OVER (PARTITION BY k LIMIT DURATION(hour, 1) WHEN v IS NOT NULL) AS prev FROM i TIMESTAMP BY t"
VLAG = "SELECT k, v, LAG(v) OVER (PARTITION BY k LIMIT DURATION(hour, 1)) AS prev FROM i TIMESTAMP BY t"


def _exact(v):
    """A value with every type spelled out (tuple vs list, int vs float, Env's fields)."""
    from collections import deque

    from headwater.services.processing.exec.base import Env, KeyedColumns

    if isinstance(v, KeyedColumns):
        return ("KeyedColumns", _exact(v.columns))
    if isinstance(v, deque):
        return ("deque", [_exact(x) for x in v])
    if isinstance(v, Env):
        return ("Env", _exact(v.__getstate__()))
    if isinstance(v, dict):
        return ("dict", sorted(((_exact(k), _exact(x)) for k, x in v.items()), key=repr))
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_exact(x) for x in v])
    return (type(v).__name__, v)


def _many_keys(keys: int):
    events = []
    for i in range(keys):
        for j in range(2):
            events.append({"k": f"key{i}", "v": i * 0.5 + j if i % 3 else i + j, "w": [i, {"x": "é" * (i % 4)}],
                           "t": f"2024-01-01T00:0{1 + j}:00Z", "deep": {"a": [1, 2.5, None, True]}})
    return events


@pytest.mark.parametrize("text", [STDEV, LAG], ids=["stdev", "lag"])
def test_row_path_keyed_state_of_many_keys_round_trips_exactly(pm, text) -> None:
    compiled = compile_query(text, pm)
    rt = compiled.runtime()
    assert rt.mode == "row"  # STDEV and LAG ... WHEN have no vectorised kernel: the state is a row operator's
    rt.feed("i", _many_keys(5000))
    rt.advance_time(1_704_067_200_000_000 + 240_000_000)
    rt.take()
    blob = rt.snapshot()
    header = read_header(blob)
    assert header["schema_version"] == SCHEMA_VERSION
    # the keyed collections as typed columns: keys, accumulators or histories, events' fields
    assert sum(s.get("kind") == "arrow_column" for s in header["sections"]) >= 3, header["sections"]
    rt2 = compiled.runtime()
    rt2.restore(blob)
    assert [_exact(op.snapshot()) for op in rt2.statements] == [_exact(op.snapshot()) for op in rt.statements]
    rt.flush()
    rt2.flush()
    assert _canon([r for rows in rt2.take().values() for r in rows]) == \
        _canon([r for rows in rt.take().values() for r in rows])


def test_vectorised_lag_state_of_many_keys_round_trips(pm) -> None:
    """Vectorised LAG keeps per key its last entries; typed keys and values go into an Arrow
    table (mixed values into the tagged small state), and the restored runtime continues alike."""
    compiled = compile_query(VLAG, pm)
    rt = compiled.runtime()
    assert rt.mode == "vectorised"
    events = [{"k": f"key{i}", "v": float(i), "t": "2024-01-01T00:01:00Z"} for i in range(3000)]
    rt.feed("i", events)
    rt.advance_time(1_704_067_200_000_000 + 240_000_000)
    rt.take()
    blob = rt.snapshot()
    assert any("analytic0" in s["name"] for s in read_header(blob)["sections"])
    rt2 = compiled.runtime()
    rt2.restore(blob)
    more = [{"k": f"key{i}", "v": -1.0, "t": "2024-01-01T00:02:00Z"} for i in range(3000)]
    rt.feed("i", more)
    rt2.feed("i", more)
    rt.flush()
    rt2.flush()
    got = rt2.take()["output"]
    assert got == rt.take()["output"]
    assert [r["prev"] for r in got[:3]] == [0.0, 1.0, 2.0]


def test_schema_version_2_blob_with_tagged_json_row_state_still_restores(pm) -> None:
    from headwater.services.processing.state import snapshot as S

    compiled = compile_query(STDEV, pm)
    rt = compiled.runtime()
    rt.feed("i", _many_keys(50))
    blob = rt.snapshot()
    header = read_header(blob)
    start = header.pop("_body")
    # rewrite as version 2 wrote it: the row state as tagged JSON in the header, no msgpack section
    enc = S._Encoder()
    for op, st in zip(rt.statements, header["state"]["statements"]):
        st.pop("row_msgpack")
        st["row"] = enc.enc(op.snapshot(columns=False))  # version 2 had no KeyedColumns
    for src in header["state"]["sources"].values():
        for st in src:
            sec = next(s for s in header["sections"] if s["name"] == st["row_msgpack"])
            st["row"] = enc.enc(S._unpack(blob[start + sec["offset"]:start + sec["offset"] + sec["length"]], {}))
            st.pop("row_msgpack")
    assert not enc.frames
    header["sections"] = [s for s in header["sections"] if s.get("kind") not in ("msgpack", "arrow_column")]
    assert not header["sections"]
    header["schema_version"] = 2
    old = orjson.dumps(header)
    rt2 = compiled.runtime()
    rt2.restore(blob[:5] + struct.pack("<I", len(old)) + old)
    assert [_exact(op.snapshot()) for op in rt2.statements] == [_exact(op.snapshot()) for op in rt.statements]


def test_damaged_row_state_is_refused_clearly(pm) -> None:
    rt = compile_query(STDEV, pm).runtime()
    rt.feed("i", _many_keys(20))
    blob = rt.snapshot()
    header = read_header(blob)
    sec = next(s for s in header["sections"] if s.get("kind") == "msgpack" and s["name"].startswith("op"))
    at = header["_body"] + sec["offset"]
    cut = blob[:at] + b"\xc1" * sec["length"] + blob[at + sec["length"]:]
    with pytest.raises(SnapshotError, match="damaged"):
        compile_query(STDEV, pm).runtime().restore(cut)


@pytest.mark.parametrize("text", [STDEV, LAG], ids=["stdev", "lag"])
def test_schema_version_3_blob_with_msgpack_row_state_still_restores(pm, text) -> None:
    """Version 3 kept the keyed collections as msgpack values per key: it restores the same."""
    from headwater.services.processing.state import snapshot as S

    compiled = compile_query(text, pm)
    rt = compiled.runtime()
    rt.feed("i", _many_keys(200))
    rt.take()
    blob = rt.snapshot()
    header = read_header(blob)
    start = header.pop("_body")
    enc = S._Encoder()
    body, sections, offset = [], [], 0
    for sec in header["sections"]:  # the sources' sections as they are
        if sec.get("kind") == "msgpack" and sec["name"].startswith("source"):
            data = blob[start + sec["offset"]:start + sec["offset"] + sec["length"]]
            sections.append({**sec, "offset": offset})
            body.append(data)
            offset += len(data)
    for op, st in zip(rt.statements, header["state"]["statements"]):
        data = S._pack(op.snapshot(columns=False), enc)
        sections.append({"name": st["row_msgpack"], "offset": offset, "length": len(data), "kind": "msgpack"})
        body.append(data)
        offset += len(data)
    assert not enc.arrays and not enc.packed
    header["sections"], header["schema_version"] = sections, 3
    old = orjson.dumps(header)
    rt2 = compiled.runtime()
    rt2.restore(blob[:5] + struct.pack("<I", len(old)) + old + b"".join(body))
    assert [_exact(op.snapshot()) for op in rt2.statements] == [_exact(op.snapshot()) for op in rt.statements]
    rt.flush()
    rt2.flush()
    assert _canon([r for rows in rt2.take().values() for r in rows]) == \
        _canon([r for rows in rt.take().values() for r in rows])


def test_keyed_columns_round_trip_every_shape_exactly() -> None:
    """Each column comes back with the same Python types: scalars of one type as Arrow arrays,
    lists/tuples/deques of fixed or varying length, events, records of the same fields, and
    whatever does not fit (mixed types, ints past 64 bits, bits beside numbers) as msgpack."""
    from collections import deque
    from datetime import UTC, datetime

    from headwater.services.processing.exec.base import Env, KeyedColumns
    from headwater.services.processing.state import snapshot as S

    n = 7
    cols = [
        [f"k{i}" for i in range(n)],  # str
        [i if i % 3 else None for i in range(n)],  # int with NULLs
        [i * 0.5 for i in range(n)],  # float
        [i % 2 == 0 for i in range(n)],  # bool
        [(f"k{i}", i) for i in range(n)],  # tuple keys
        [(("bit", True), i) if i % 2 else (1, i) for i in range(n)],  # bits beside numbers
        [[i, [i, float(i), i * 2.0]] for i in range(n)],  # accumulators: nested fixed lists
        [deque([(i * 10 + j, j * 1.5) for j in range(i)]) for i in range(n)],  # varying length
        [[] for _ in range(n)],  # empty lists, distinct objects
        [2**70 if i == 3 else i for i in range(n)],  # an int beyond 64 bits
        [1 if i % 2 else 1.0 for i in range(n)],  # int and float mixed
        [None] * n,
        [{"a": i, "b": "é" * i, "c": [i, {"x": None}]} for i in range(n)],  # records of one shape
        [{"a": i} if i % 2 else {"b": i} for i in range(n)],  # records of other shapes
        [Env({"i": {"k": f"k{i}", "v": i}}, 1000 + i, {"i": 999} if i % 2 else None, None,
             [i] if i % 3 else None, None) for i in range(n)],
        [datetime(2024, 1, 1, tzinfo=UTC) if i else b"\x00\xff" for i in range(n)],
        [b"\x00\xff" * i for i in range(n)],
    ]
    enc = S._Encoder()
    blob = S._pack({"state": KeyedColumns(cols), "empty": KeyedColumns([[], []])}, enc)
    out = S._unpack(blob, {}, dict(enc.arrays), dict(enc.packed))
    assert _exact(out["state"]) == _exact(KeyedColumns(cols))
    assert _exact(out["empty"]) == _exact(KeyedColumns([[], []]))
    assert enc.arrays  # typed columns were used
    restored_empty = out["state"].columns[8]
    assert len({id(x) for x in restored_empty}) == n  # not one shared list


def _two_batches(pm):
    """A COUNT per key with key0..key9 counted in two batches of an open window: a partial
    row of theirs per batch."""
    compiled = compile_query("SELECT k, COUNT(*) AS n FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)", pm)
    rt = compiled.runtime()
    for batch in (range(100), range(10)):
        rt.feed_bodies("i", [b'{"k":"key%d","t":"2024-01-01T00:01:00Z"}' % i for i in batch])
        rt.advance_time(1_704_067_200_000_000 + 120_000_000)
    return compiled, rt


def test_an_aggregate_restored_after_several_batches_merges_each_keys_partials(pm) -> None:
    """The batches' partials are restored as they were (one table of them would be taken as
    merged): each key's window is one row."""
    compiled, rt = _two_batches(pm)
    again = compiled.runtime()
    again.restore(rt.snapshot())
    again.flush()
    rows = again.take_frames()["output"]
    assert rows.height == 100 and rows.filter(rows["k"] == "key1")["n"].to_list() == [2]


def test_a_version_4_aggregate_with_unmerged_partials_in_one_table_is_merged_on_restore(pm) -> None:
    """Version 4 wrote a window aggregate's partials as one table (several batches' rows of a
    key in it); restored, they are merged, so the key's window is one row."""
    import polars as pl
    import pyarrow as pa

    compiled, rt = _two_batches(pm)
    blob = rt.snapshot()
    header = read_header(blob)
    start = header.pop("_body")
    frames = {s["name"]: pl.from_arrow(pa.ipc.open_stream(blob[start + s["offset"]:start + s["offset"] + s["length"]])
                                       .read_all()) for s in header["sections"]}
    tables = header["state"]["statements"][0]["tables"]
    chunks = [frames[tables.pop(k)["$frame"]] for k in sorted(k for k in tables if k.startswith("partials."))]
    assert len(chunks) == 2
    tables["partials"] = {"$frame": "old"}
    frames = {**{n: f for n, f in frames.items() if not n.startswith("op0/partials")}, "old": pl.concat(chunks)}
    body, sections = b"", []
    for name, f in frames.items():
        sink = pa.BufferOutputStream()
        table = f.to_arrow()
        with pa.ipc.new_stream(sink, table.schema) as w:
            w.write_table(table)
        data = sink.getvalue().to_pybytes()
        sections.append({"name": name, "offset": len(body), "length": len(data)})
        body += data
    header.update(schema_version=4, sections=sections)
    head = json.dumps(header).encode()
    again = compiled.runtime()
    again.restore(blob[:5] + struct.pack("<I", len(head)) + head + body)
    again.flush()
    rows = again.take_frames()["output"]
    assert rows.height == 100 and rows.filter(rows["k"] == "key1")["n"].to_list() == [2]
