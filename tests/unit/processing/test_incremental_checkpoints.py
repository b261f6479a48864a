"""Incremental checkpoints (state/chain.py): a checkpoint writes the sections that changed and
refers to earlier files for the rest; the chain is bounded, unused files are removed, and a
restore from an incremental checkpoint is the same as from a whole one."""

from __future__ import annotations

import json
import random
import struct
import zlib
from pathlib import Path

import orjson
import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import OrderingPolicy, compile_query
from headwater.services.processing.state.chain import Base, collect, read_file_header, resolve
from headwater.services.processing.state.snapshot import SCHEMA_VERSION, SnapshotError, read_header
from headwater.storage import write_atomic
from tests.unit.processing.test_snapshot_format import _canon, _cases

SQL = Path(__file__).resolve().parents[2] / "sql"
T0 = 1_704_067_200_000_000
COUNT = "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)"
STDEV = "SELECT k, COUNT(*) AS n, STDEV(v) AS sd FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)"
LAG_WHEN = ("SELECT k, v, LAG(v) OVER (PARTITION BY k LIMIT DURATION(hour, 1) WHEN v >= 0) AS prev "
            "FROM i TIMESTAMP BY t")


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False).collect()


class Folder:
    """Checkpoints into a folder as the job runner writes them: the state file durable,
    then the files it does not refer to removed, then it is the next one's base."""

    def __init__(self, path: Path, **limits) -> None:
        self.path, self.limits, self.base, self.n = path, limits, None, 0
        self.written: list[int] = []

    def checkpoint(self, rt) -> str:
        self.n += 1
        name = f"state-{self.n}.bin"
        captured = rt.snapshot_begin(self.base)
        blob = captured.finish()
        write_atomic(self.path / name, blob)
        collect(self.path, name, blob)
        self.base = Base(self.path, name, read_header(blob), captured, **self.limits)
        self.written.append(captured.written)
        return name

    def restore(self, rt, name: str) -> None:
        rt.restore(resolve((self.path / name).read_bytes(), self.path))
        self.base = Base.of_file(self.path, name, **self.limits)  # as a restarted runner: no table identities

    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.glob("state-*.bin"))


def _feed(rt, lo: int, hi: int, t: str = "2024-01-01T00:01:00Z") -> None:
    rt.feed_bodies("i", [b'{"k":"key%d","v":%d,"t":"%s"}' % (i, i, t.encode()) for i in range(lo, hi)])


def _sections(blob: bytes) -> dict[str, bytes]:
    header = read_header(blob)
    start = header["_body"]
    return {s["name"]: blob[start + s["offset"]:start + s["offset"] + s["length"]] for s in header["sections"]}


@pytest.mark.parametrize("query", [COUNT, STDEV, LAG_WHEN], ids=["vector", "row_aggregate", "row_lag"])
def test_an_idle_checkpoint_writes_no_section_and_keeps_one_earlier_file(pm, tmp_path, query) -> None:
    rt = compile_query(query, pm).runtime()
    _feed(rt, 0, 2000)
    rt.advance_time(T0 + 120_000_000)
    rt.take_frames()
    folder = Folder(tmp_path)
    first = folder.checkpoint(rt)
    assert folder.written[-1] > 10_000
    for _ in range(3):  # idle epochs: the clock moves, nothing arrives
        rt.advance_time(T0 + (121 + folder.n) * 1_000_000)
        last = folder.checkpoint(rt)
        assert folder.written[-1] < 200  # a row operator's clock moved; its keyed collections did not
        header = read_file_header(tmp_path / last)
        assert set(header["files"]) == {first}
        assert sum(s["length"] for s in header["sections"] if s.get("file") == first) > 10_000
        assert folder.files() == sorted([first, last])  # the idle files in between are gone
        assert (tmp_path / last).stat().st_size < 10_000


def test_a_changed_table_is_written_and_the_others_referred_to(pm, tmp_path) -> None:
    two = ("SELECT k, COUNT(*) AS n INTO a FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10) "
           "SELECT k, SUM(v) AS s INTO b FROM j TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)")
    rt = compile_query(two, pm).runtime()
    for alias in ("i", "j"):
        rt.feed_bodies(alias, [b'{"k":"key%d","v":%d,"t":"2024-01-01T00:01:00Z"}' % (i, i) for i in range(1000)])
    rt.advance_time(T0 + 120_000_000)
    folder = Folder(tmp_path)
    first = folder.checkpoint(rt)
    rt.feed_bodies("j", [b'{"k":"key1","v":5,"t":"2024-01-01T00:01:30Z"}'])
    rt.advance_time(T0 + 121_000_000)
    second = folder.checkpoint(rt)
    secs = read_file_header(tmp_path / second)["sections"]
    referred = {s["name"] for s in secs if "file" in s}
    written = {s["name"] for s in secs if "file" not in s}
    assert any(n.startswith("op0/") for n in referred) and any(n.startswith("op1/") for n in written)
    assert folder.files() == sorted([first, second])
    again = compile_query(two, pm).runtime()
    folder.restore(again, second)
    for r in (rt, again):
        r.flush()
    assert _canon_frames(rt.take_frames()) == _canon_frames(again.take_frames())


def _canon_frames(frames) -> list:
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS)
                  for name, df in frames.items() for r in df.with_columns().to_dicts()
                  for r in [dict(r, _out=name)])


def test_the_chain_is_bounded_by_files_and_by_dead_bytes(pm, tmp_path) -> None:
    many = " ".join(f"SELECT k, COUNT(*) AS n INTO o{i} FROM i{i} TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)"
                    for i in range(5))
    rt = compile_query(many, pm).runtime()
    for i in range(5):
        rt.feed_bodies(f"i{i}", [b'{"k":"key%d","t":"2024-01-01T00:01:00Z"}' % k for k in range(500)])
    rt.advance_time(T0 + 120_000_000)
    folder = Folder(tmp_path, max_files=3)
    folder.checkpoint(rt)
    for step in range(1, 12):  # one operator changes per epoch: each checkpoint adds a file
        rt.feed_bodies(f"i{step % 5}", [b'{"k":"new%d","t":"2024-01-01T00:01:00Z"}' % step])
        rt.advance_time(T0 + (120 + step) * 1_000_000)
        name = folder.checkpoint(rt)
        kept = folder.files()
        assert len(kept) <= 3 and name in kept
        assert set(read_file_header(tmp_path / name).get("files", {})) | {name} == set(kept)
    assert 0 in folder.written[1:] or min(folder.written[1:]) < max(folder.written)  # some were incremental
    assert max(folder.written[1:]) >= folder.written[0] * 0.9  # and some whole again
    # dead bytes: a small section keeps a large file alive -> written whole
    base = Base(tmp_path, name, read_file_header(tmp_path / name), max_amplification=2.0)
    big = next(iter(base.by_sha))
    assert not base.compact([(sha, None) for sha in base.by_sha])
    base.files[base.by_sha[big][0]] = 50 << 20  # as if the file holding it were mostly dead bytes
    assert base.compact([(big, None), ("new", 10)])


def test_missing_damaged_or_foreign_referred_files_are_refused(pm, tmp_path) -> None:
    rt = compile_query(COUNT, pm).runtime()
    _feed(rt, 0, 500)
    rt.advance_time(T0 + 120_000_000)
    folder = Folder(tmp_path)
    first = folder.checkpoint(rt)
    second = folder.checkpoint(rt)
    blob = (tmp_path / second).read_bytes()
    data = bytearray((tmp_path / first).read_bytes())
    data[-5] ^= 0xFF
    (tmp_path / first).write_bytes(bytes(data))
    with pytest.raises(SnapshotError, match=f"bytes .* of {first} are damaged"):
        resolve(blob, tmp_path)
    (tmp_path / first).unlink()
    with pytest.raises(SnapshotError, match=f"refers to {first}, which is missing"):
        resolve(blob, tmp_path)
    header = read_header(blob)
    header.pop("_body")
    header["sections"][0]["file"] = "../etc/passwd"
    head = json.dumps(header).encode()
    (n,) = struct.unpack("<I", blob[5:9])
    with pytest.raises(SnapshotError, match="not a checkpoint file of its folder"):
        resolve(blob[:5] + struct.pack("<I", len(head)) + head + blob[9 + n:], tmp_path)
    with pytest.raises(SnapshotError, match="restored through state.chain.resolve"):
        compile_query(COUNT, pm).runtime().restore(blob)  # unresolved: refused, never misread


def test_version_4_blobs_restore_and_the_next_checkpoint_is_whole(pm, tmp_path) -> None:
    rt = compile_query(STDEV, pm).runtime()
    _feed(rt, 0, 300)
    rt.advance_time(T0 + 120_000_000)
    blob = rt.snapshot()
    header = read_header(blob)
    header.pop("_body")
    header["schema_version"] = 4  # as version 4 wrote it: no hashes, no references
    for s in header["sections"]:
        s.pop("sha")
    head = json.dumps(header).encode()
    (n,) = struct.unpack("<I", blob[5:9])
    old = blob[:5] + struct.pack("<I", len(head)) + head + blob[9 + n:]
    (tmp_path / "state-7.bin").write_bytes(old)
    again = compile_query(STDEV, pm).runtime()
    folder = Folder(tmp_path)
    folder.restore(again, "state-7.bin")
    name = folder.checkpoint(again)
    assert "files" not in read_file_header(tmp_path / name) and folder.files() == [name]
    assert read_file_header(tmp_path / name)["schema_version"] == SCHEMA_VERSION
    for r in (rt, again):
        r.flush()
    assert _canon_frames(rt.take_frames()) == _canon_frames(again.take_frames())


# -- differential: never restored == restored from incremental == restored from whole ----------
def _step(rt, fresh, how: str, folder: Folder | None, ckpt: float, restore: float, where: str):
    """After an epoch: maybe a checkpoint (whole or incremental), maybe a restore from it
    into a new runtime (``fresh()``); returns the runtime to go on with."""
    if how == "never" or ckpt < 0.2:
        return rt
    if how == "whole":
        blob = rt.snapshot()
    else:
        assert folder is not None
        name = folder.checkpoint(rt)
        blob = (folder.path / name).read_bytes()
        assert _sections(resolve(blob, folder.path)) == _sections(rt.snapshot()), \
            f"{where}: the incremental checkpoint differs from the whole one"
    if restore >= 0.25:
        return rt
    rt = fresh()
    if how == "whole":
        rt.restore(blob)
    else:
        assert folder is not None
        folder.restore(rt, name)
    return rt


def _differential(pm, text, head, vectorize: bool, how: str, folder: Folder | None, seed: int) -> list:
    data = json.loads((SQL / "inputs" / f"{head['inputs']}.json").read_text())
    refs = [r.strip() for r in head.get("references", "").split(",") if r.strip()]
    compiled = compile_query(text, pm, references=refs)
    policy = OrderingPolicy.from_seconds(late=3600)
    ref_rows = {r: data[r] for r in refs}

    def fresh():
        return compiled.runtime(policy, reference_data=ref_rows, vectorize=vectorize)

    rt = fresh()
    rng = random.Random(seed)
    events = [(alias, ev) for alias in data if alias not in refs for ev in data[alias]]
    out: list = []
    i = 0
    while i < len(events):
        alias, size, ckpt, restore = events[i][0], rng.randint(1, 6), rng.random(), rng.random()
        n = 1
        while n < size and i + n < len(events) and events[i + n][0] == alias:
            n += 1
        rt.feed(alias, [ev for _, ev in events[i:i + n]], [T0 + i + k for k in range(n)])
        i += n
        out += [r for rows in rt.take().values() for r in rows]
        rt = _step(rt, fresh, how, folder, ckpt, restore, f"event {i}")
    rt.flush()
    out += [r for rows in rt.take().values() for r in rows]
    return _canon(out)


@pytest.mark.parametrize("vectorize", [True, False], ids=["planned", "row"])
@pytest.mark.parametrize("text,head", list(_cases()))
def test_incremental_restore_equals_whole_restore_equals_never_restored(pm, tmp_path, text, head,
                                                                         vectorize) -> None:
    seed = zlib.crc32(text.encode())
    never = _differential(pm, text, head, vectorize, "never", None, seed)
    assert _differential(pm, text, head, vectorize, "whole", None, seed) == never
    folder = Folder(tmp_path, max_files=3)
    assert _differential(pm, text, head, vectorize, "incremental", folder, seed) == never
    assert len(folder.files()) <= 3


# -- differential on generated streams: many epochs, idle ones, a few keys changing --------------
GENERATED = {
    "tumbling": "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(second, 4)",
    "hopping": "SELECT k, MAX(v) AS m FROM i TIMESTAMP BY t GROUP BY k, HoppingWindow(second, 6, 2)",
    "sliding": "SELECT k, COUNT(*) AS n FROM i TIMESTAMP BY t GROUP BY k, SlidingWindow(second, 3)",
    "session": "SELECT k, COUNT(*) AS n FROM i TIMESTAMP BY t GROUP BY k, SessionWindow(second, 2, 10)",
    "stdev": "SELECT k, STDEV(v) AS sd FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(second, 5)",
    "lag": "SELECT k, v, LAG(v) OVER (PARTITION BY k LIMIT DURATION(second, 8)) AS prev FROM i TIMESTAMP BY t",
    "lag_when": "SELECT k, v, LAG(v) OVER (PARTITION BY k LIMIT DURATION(second, 8) WHEN v > 3) AS prev "
                "FROM i TIMESTAMP BY t",
    "distinct": "SELECT k, COUNT(DISTINCT v) AS d FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(second, 5)",
}


def _generated(pm, query: str, vectorize: bool, how: str, folder: Folder | None, seed: int) -> list:
    compiled = compile_query(query, pm)
    rt = compiled.runtime(vectorize=vectorize)
    rng = random.Random(seed)
    out: list = []
    for epoch in range(60):
        n = rng.choice([0, 0, 1, 2, 5])  # idle epochs, and epochs touching a few keys
        events = [b'{"k":"%s","v":%d,"t":"2024-01-01T00:%02d:%02dZ"}' % (
            rng.choice("abcdef").encode(), rng.randint(0, 9), (epoch + rng.randint(0, 2)) // 60,
            (epoch + rng.randint(0, 2)) % 60) for _ in range(n)]
        ckpt, restore = rng.random(), rng.random()
        if events:
            rt.feed_bodies("i", events)
        rt.advance_time(T0 + (epoch + 1) * 1_000_000)
        out += [r for name, df in rt.take_frames().items() for r in df.to_dicts() for r in [dict(r, _o=name)]]
        rt = _step(rt, lambda: compiled.runtime(vectorize=vectorize), how, folder, ckpt, restore, f"epoch {epoch}")
    rt.flush()
    out += [r for name, df in rt.take_frames().items() for r in df.to_dicts() for r in [dict(r, _o=name)]]
    return sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS, default=str) for r in out)


@pytest.mark.parametrize("vectorize", [True, False], ids=["planned", "row"])
@pytest.mark.parametrize("query", list(GENERATED.values()), ids=list(GENERATED))
@pytest.mark.parametrize("seed", [1, 2])
def test_generated_streams_restore_the_same_from_incremental_whole_or_never(pm, tmp_path, query, vectorize,
                                                                            seed) -> None:
    never = _generated(pm, query, vectorize, "never", None, seed)
    assert never, "the stream produced no rows: the comparison would prove nothing"
    assert _generated(pm, query, vectorize, "whole", None, seed) == never
    folder = Folder(tmp_path, max_files=3)
    assert _generated(pm, query, vectorize, "incremental", folder, seed) == never
    assert folder.n > 20 and 0 in folder.written and len(folder.files()) <= 3
