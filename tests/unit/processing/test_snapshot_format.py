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
