"""Checkpoints of a running query: a versioned header, then Arrow IPC sections. No pickle.

Layout::

    b"HWQS" | format byte (2) | u32 header length | header (JSON) | sections (Arrow IPC streams)

The header carries ``schema_version`` (this layout and the meaning of its sections),
``engine_version`` (the headwater release that wrote it), ``plan`` (a fingerprint of the
query text and of the physical plan that wrote it: which operators, vectorised or row),
``sections`` (name, offset, length and ``kind`` of each section) and ``state``: the small
state (ordering clocks, window logic, counters) as tagged JSON. Keyed state of the
vectorised operators is Arrow tables, keyed by window (``__wid``) and group key (``k0``...),
one Arrow IPC section per operator and table. Each row operator's state (per-key
accumulators, histories, buffers) is one msgpack section (``kind: "msgpack"``, schema
version 3); schema version 2 kept it as tagged JSON in the header and still restores.

A blob restores only into a runtime of the same plan and of an engine that reads its
``schema_version``; anything else is refused with a :class:`SnapshotError` that says
why, never misread. Blobs of format 1 (pickles, engines before this one) are refused.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import importlib
import struct
from datetime import datetime
from typing import Any

import msgpack
import orjson
import polars as pl
import pyarrow as pa

from headwater import __version__ as ENGINE_VERSION
from headwater.services.processing.exec.base import Env
from headwater.services.processing.exec.watermarks import Counters

__all__ = ["dumps", "loads", "read_header", "SnapshotError", "SCHEMA_VERSION", "plan_fingerprint"]

MAGIC = b"HWQS"
FORMAT = 2
#: Bump when a section's layout or meaning changes; older blobs are then refused by name.
SCHEMA_VERSION = 3
#: Versions this engine restores: 2 had the row operators' state as tagged JSON in the header
#: (its reader is the tagged-JSON decoder below, unchanged); 3 moved it to msgpack sections.
READABLE_VERSIONS = (2, 3)


class SnapshotError(ValueError):
    """A blob that is not a snapshot this runtime can continue from (and why)."""


def plan_fingerprint(rt: Any) -> str:
    """The query text and the runtime's physical plan (operators and their implementations)."""
    from headwater.services.processing.plan.explain import explain

    h = hashlib.sha256(rt.compiled.text.encode())
    h.update(explain(rt.compiled.plan, rt.physical).encode())
    return h.hexdigest()[:16]


# -- tagged JSON for the small state ---------------------------------------------------------
class _Encoder:
    def __init__(self) -> None:
        self.frames: dict[str, pl.DataFrame] = {}
        self.packed: dict[str, bytes] = {}  # msgpack sections (row operators' keyed state)

    def frame(self, df: pl.DataFrame, hint: str = "") -> dict:
        name = f"{hint or 'frame'}#{len(self.frames)}"
        self.frames[name] = df
        return {"$frame": name}

    def enc(self, v: Any) -> Any:
        t = type(v)
        if v is None or t in (bool, int, float, str):
            if t is int and not -(2**63) <= v < 2**63:
                return {"$bigint": str(v)}
            return v
        if t is list:
            return [self.enc(x) for x in v]
        if t is dict:
            if all(type(k) is str for k in v) and not any(k.startswith("$") for k in v):
                return {k: self.enc(x) for k, x in v.items()}
            return {"$dict": [[self.enc(k), self.enc(x)] for k, x in v.items()]}
        if t is tuple:
            return {"$tuple": [self.enc(x) for x in v]}
        if t in (set, frozenset):
            return {"$set": [self.enc(x) for x in v]}
        if isinstance(v, datetime):
            return {"$dt": v.isoformat()}
        if t is bytes:
            return {"$bytes": base64.b64encode(v).decode()}
        if isinstance(v, pl.DataFrame):
            return _object_free(v, self, "frame")
        if t is Env:
            return {"$env": [self.enc(x) for x in v.__getstate__()]}
        if isinstance(v, Counters):
            return {"$counters": self.enc(v.as_dict())}
        if hasattr(v, "item") and hasattr(v, "dtype"):  # numpy scalars
            return self.enc(v.item())
        if hasattr(v, "__dict__"):  # a plugin's accumulator object: its importable class and fields
            cls = type(v)
            return {"$obj": f"{cls.__module__}:{cls.__qualname__}", "fields": self.enc(dict(vars(v)))}
        raise SnapshotError(f"cannot checkpoint a value of type {t.__name__} (a plugin's state must be "
                            "plain values, records or objects of an importable class)")


def _dec(v: Any, frames: dict[str, pl.DataFrame]) -> Any:
    if type(v) is list:
        return [_dec(x, frames) for x in v]
    if type(v) is not dict:
        return v
    if len(v) == 1 or "$obj" in v or "$mixed" in v:
        (tag, x), = list(v.items())[:1]
        if tag == "$dict":
            return {_dec(k, frames): _dec(y, frames) for k, y in x}
        if tag == "$tuple":
            return tuple(_dec(y, frames) for y in x)
        if tag == "$set":
            return {_dec(y, frames) for y in x}
        if tag == "$dt":
            return datetime.fromisoformat(x)
        if tag == "$bytes":
            return base64.b64decode(x)
        if tag == "$bigint":
            return int(x)
        if tag == "$frame":
            return frames[x]
        if tag == "$mixed":
            return _mixed(v, frames)
        if tag == "$env":
            e = Env.__new__(Env)
            e.__setstate__(tuple(_dec(y, frames) for y in x))
            return e
        if tag == "$counters":
            return Counters(**_dec(x, frames))
        if tag == "$obj":
            mod, _, qual = x.partition(":")
            cls: Any = importlib.import_module(mod)
            for part in qual.split("."):
                cls = getattr(cls, part)
            obj = cls.__new__(cls)
            obj.__dict__.update(_dec(v["fields"], frames))
            return obj
    return {k: _dec(x, frames) for k, x in v.items()}


# -- msgpack for the row operators' keyed state ---------------------------------------------
# A row operator's state is one dict per key (group key tuple -> accumulators and the group's
# representative event, or partition key -> last events). Tagged JSON walked it in Python, ~20
# calls per key (10 s for 200k keys); msgpack packs it in C and calls back into Python only for
# what JSON lacks: tuples (ext 1), Env (ext 2); anything rarer (datetimes, sets, frames, plugin
# objects, big ints) goes through the tagged-JSON encoder as ext 3, so nothing is lost.
_TUPLE, _ENV, _TAGGED = 1, 2, 3


def _pack(v: Any, enc: _Encoder) -> bytes:
    packers: list[msgpack.Packer] = []  # one per nesting depth: a Packer is not re-entrant
    depth = 0

    def nested(x: Any) -> bytes:
        nonlocal depth
        if depth == len(packers):
            packers.append(msgpack.Packer(default=default, strict_types=True, use_bin_type=True))
        depth += 1
        try:
            return packers[depth - 1].pack(x)
        finally:
            depth -= 1

    def default(x: Any) -> Any:
        t = type(x)
        if t is tuple:
            return tuple.__new__(msgpack.ExtType, (_TUPLE, nested(list(x))))  # (skips ExtType's checks)
        if t is Env:
            return tuple.__new__(msgpack.ExtType, (_ENV, nested(list(x.__getstate__()))))
        return msgpack.ExtType(_TAGGED, orjson.dumps(enc.enc(x)))

    was_enabled = gc.isenabled()
    gc.disable()  # an ext tuple per key: no cyclic collections meanwhile
    try:
        return msgpack.Packer(default=default, strict_types=True, use_bin_type=True).pack(v)
    except OverflowError:  # an int beyond 64 bits somewhere: the tagged-JSON encoder takes it whole
        return msgpack.packb(msgpack.ExtType(_TAGGED, orjson.dumps(enc.enc(v))))
    finally:
        if was_enabled:
            gc.enable()


def _unpack(data: Any, frames: dict[str, pl.DataFrame]) -> Any:
    def hook(code: int, b: bytes) -> Any:
        if code == _TUPLE:
            return tuple(msgpack.unpackb(b, ext_hook=hook, raw=False, strict_map_key=False))
        if code == _ENV:
            e = Env.__new__(Env)
            e.__setstate__(tuple(msgpack.unpackb(b, ext_hook=hook, raw=False, strict_map_key=False)))
            return e
        if code == _TAGGED:
            return _dec(orjson.loads(b), frames)
        raise SnapshotError(f"the snapshot's row state has an unknown value tag {code}")

    was_enabled = gc.isenabled()
    gc.disable()  # millions of new containers, none of them garbage: no cyclic collections meanwhile
    try:
        return msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=False)
    finally:
        if was_enabled:
            gc.enable()


# -- the blob ----------------------------------------------------------------------------------
def _ipc(df: pl.DataFrame) -> pa.Buffer:
    table = df.to_arrow(compat_level=pl.CompatLevel.newest())  # string views: no copy of text columns
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def _object_free(df: pl.DataFrame, enc: _Encoder, name: str) -> Any:
    """A frame with Python-object columns (mixed-type fields) keeps those columns as tagged JSON."""
    objs = [c for c, t in df.schema.items() if t == pl.Object]
    if not objs:
        return enc.frame(df, name)
    plain = df.drop(objs)
    return {"$mixed": enc.frame(plain, name), "columns": {c: enc.enc(df[c].to_list()) for c in objs},
            "order": df.columns}


def _mixed(v: Any, frames: dict) -> Any:
    if type(v) is dict and "$mixed" in v:
        df = frames[v["$mixed"]["$frame"]]
        cols = [pl.Series(c, _dec(x, frames), dtype=pl.Object) for c, x in v["columns"].items()]
        return df.with_columns(cols).select(v["order"])
    return v


def dumps(rt: Any, compiled: Any) -> bytes:
    """The runtime's whole state as a versioned blob."""
    enc = _Encoder()

    def part(obj: Any, name: str) -> Any:
        if hasattr(obj, "state"):  # vectorised: (small state, Arrow tables by name)
            meta, tables = obj.state()
            return {"vector": enc.enc(meta), "tables": {k: _object_free(t, enc, f"{name}/{k}")
                                                        for k, t in tables.items()}}
        name = f"{name}/row"
        enc.packed[name] = _pack(obj.snapshot(), enc)
        return {"row_msgpack": name}

    def chunks(lst: list) -> list:
        return [enc.enc(c) for c in lst]

    state = {
        "statements": [part(op, f"op{i}") for i, op in enumerate(rt.statements)],
        "sources": {k: [part(s, f"source:{k}:{i}") for i, s in enumerate(v)] for k, v in rt.sources.items()},
        "queues": [[chunks(q) for q in qs] for qs in rt.queues],
        "outputs": {k: chunks(v) for k, v in rt.outputs.items()},
        "watermark": rt.watermark,
        "counters": enc.enc(rt.counters),
    }
    body, sections, offset = [], [], 0
    for name, df in enc.frames.items():
        data = _ipc(df)
        sections.append({"name": name, "offset": offset, "length": data.size})
        body.append(memoryview(data))
        offset += data.size
    for name, data in enc.packed.items():
        sections.append({"name": name, "offset": offset, "length": len(data), "kind": "msgpack"})
        body.append(data)
        offset += len(data)
    header = orjson.dumps({"schema_version": SCHEMA_VERSION, "engine_version": ENGINE_VERSION,
                           "plan": plan_fingerprint(rt), "sections": sections, "state": state})
    return b"".join([MAGIC, bytes([FORMAT]), struct.pack("<I", len(header)), header, *body])


def read_header(blob: bytes) -> dict:
    """The header of a blob (SnapshotError when it is not one this engine reads)."""
    if len(blob) < 9 or blob[:4] != MAGIC:
        raise SnapshotError("not a query snapshot")
    if blob[4] != FORMAT:
        raise SnapshotError(f"the snapshot is in format {blob[4]} (a pickle of an older engine); this engine "
                            f"({ENGINE_VERSION}) reads format {FORMAT} only: start the job again from its input "
                            "checkpoints")
    (n,) = struct.unpack("<I", blob[5:9])
    try:
        header = orjson.loads(blob[9:9 + n])
    except orjson.JSONDecodeError:
        raise SnapshotError("the snapshot header is damaged") from None
    if header.get("schema_version") not in READABLE_VERSIONS:
        raise SnapshotError(f"the snapshot has state schema version {header.get('schema_version')} (written by "
                            f"engine {header.get('engine_version')}); this engine ({ENGINE_VERSION}) reads "
                            f"versions {', '.join(map(str, READABLE_VERSIONS))}")
    header["_body"] = 9 + n
    return header


def loads(rt: Any, blob: bytes, compiled: Any) -> None:
    """Continue ``rt`` from ``blob``; refused (SnapshotError) unless written by the same plan."""
    header = read_header(blob)
    mine = plan_fingerprint(rt)
    if header["plan"] != mine:
        raise SnapshotError(f"the snapshot was written by a different query plan (plan {header['plan']}, engine "
                            f"{header['engine_version']}); this runtime's plan is {mine}: a changed query or "
                            "engine plan cannot continue from it")
    start = header.pop("_body")
    frames, packed = {}, {}
    for sec in header["sections"]:
        data = memoryview(blob)[start + sec["offset"]:start + sec["offset"] + sec["length"]]
        if sec.get("kind") == "msgpack":
            packed[sec["name"]] = data
        else:
            frames[sec["name"]] = pl.from_arrow(pa.ipc.open_stream(data).read_all())
    state = header["state"]

    def chunk(c: Any) -> Any:
        return _dec(c, frames)

    def restore(obj: Any, st: dict) -> None:
        if "vector" in st:
            tables = {k: chunk(t) for k, t in st["tables"].items()}
            obj.load(_dec(st["vector"], frames), tables)
        elif "row_msgpack" in st:
            try:
                value = _unpack(packed[st["row_msgpack"]], frames)
            except (ValueError, KeyError, msgpack.UnpackException) as exc:
                raise SnapshotError(f"the snapshot's row state {st['row_msgpack']!r} is damaged: {exc}") from None
            obj.restore(value)
        else:  # schema version 2
            obj.restore(_dec(st["row"], frames))

    for op, st in zip(rt.statements, state["statements"]):
        restore(op, st)
    for k, v in state["sources"].items():
        for s, st in zip(rt.sources.get(k, []), v):
            restore(s, st)
    rt.queues = [[[chunk(c) for c in q] for q in qs] for qs in state["queues"]]
    rt.outputs = {k: [chunk(c) for c in v] for k, v in state["outputs"].items()}
    rt.watermark = state["watermark"]
    rt.counters = _dec(state["counters"], frames)
