"""Checkpoints of a running query: a versioned header, then Arrow IPC sections. No pickle.

Layout::

    b"HWQS" | format byte (2) | u32 header length | header (JSON) | sections (Arrow IPC streams)

The header carries ``schema_version`` (this layout and the meaning of its sections),
``engine_version`` (the headwater release that wrote it), ``plan`` (a fingerprint of the
query text and of the physical plan that wrote it: which operators, vectorised or row),
``sections`` (name, offset, length and ``kind`` of each section) and ``state``: the small
state (ordering clocks, window logic, counters) as tagged JSON. Keyed state of the
vectorised operators is Arrow tables, keyed by window (``__wid``) and group key (``k0``...),
one Arrow IPC section per operator and table. Each row operator's state is one msgpack
section (``kind: "msgpack"``); its large keyed collections (a row GROUP BY's groups,
LAG/analytic histories: :class:`~headwater.services.processing.exec.base.KeyedColumns`)
are written column by column (schema version 4): a column of one scalar type is one
Arrow array (``kind: "arrow_column"``), lists/tuples/events are split into their parts
(varying lengths as a lengths column and the flattened items), anything else is one
msgpack section of the whole column. Version 5 gives each section its content hash
(``sha``) and lets it be a reference to the same bytes in an earlier checkpoint file
(``file``, ``at``, ``length``; the header's ``files`` lists those files): incremental
checkpoints, written and resolved by :mod:`.chain`. Version 4 had no hashes, version 3
kept the keyed collections as msgpack values per key, version 2 as tagged JSON in the
header; all still restore.

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
import weakref
from collections import deque
from datetime import datetime
from itertools import accumulate, chain
from operator import attrgetter, itemgetter
from typing import Any, cast

import msgpack
import orjson
import polars as pl
import pyarrow as pa

from headwater import __version__ as ENGINE_VERSION
from headwater.services.processing.exec.base import Env, KeyedColumns
from headwater.services.processing.exec.watermarks import Counters

__all__ = ["Captured", "capture", "digest", "dumps", "loads", "read_header", "SnapshotError", "SCHEMA_VERSION",
           "plan_fingerprint"]

MAGIC = b"HWQS"
FORMAT = 2
#: Bump when a section's layout or meaning changes; older blobs are then refused by name.
SCHEMA_VERSION = 5
#: Versions this engine restores: 2 had the row operators' state as tagged JSON in the header
#: (its reader is the tagged-JSON decoder below, unchanged); 3 moved it to msgpack sections;
#: 4 writes the operators' keyed collections (KeyedColumns) as typed columns; 5 gives every
#: section its content hash (``sha``) and lets a section be a reference to the bytes of an
#: earlier checkpoint file (``file``, ``at``: incremental checkpoints, see state/chain.py).
READABLE_VERSIONS = (2, 3, 4, 5)


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
        self.arrays: dict[str, pa.Array] = {}  # typed columns of KeyedColumns

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
_TUPLE, _ENV, _TAGGED, _COLUMNS = 1, 2, 3, 4

#: Python scalar types a column may hold (with None) to be written as one Arrow array.
_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.large_string(), bool: pa.bool_(),
                bytes: pa.large_binary()}
_CONTAINERS = {list: "list", tuple: "tuple", deque: "deque"}
_MAKE = {"list": list, "tuple": tuple, "deque": deque}


def _column(col: list, enc: _Encoder, name: str) -> dict:
    """The spec of one column of a KeyedColumns, its arrays and sections added to ``enc``."""
    if col.count(None) == len(col):
        return {"t": "none"}
    types = set(map(type, col))
    some = types - {type(None)}
    if len(some) == 1:
        (t,) = some
        arrow = _ARROW_TYPES.get(t)
        if arrow is not None:
            try:
                enc.arrays[name] = pa.array(col, type=arrow)
                return {"t": "arrow", "c": name}
            except (OverflowError, pa.ArrowException, UnicodeEncodeError):
                pass  # an int beyond 64 bits, text that is not UTF-8: msgpack below
        elif t in _CONTAINERS and len(types) == 1:
            lengths = set(map(len, col))
            if len(lengths) == 1:
                (n,) = lengths
                return {"t": "fixed", "of": _CONTAINERS[t], "n": n,
                        "items": [_column(list(map(itemgetter(i), col)), enc, f"{name}.{i}") for i in range(n)]}
            flat = list(chain.from_iterable(col))
            return {"t": "var", "of": _CONTAINERS[t], "total": len(flat),
                    "lengths": _column(list(map(len, col)), enc, f"{name}.len"),
                    "items": _column(flat, enc, f"{name}.items")}
        elif t is Env and len(types) == 1:
            return {"t": "env", "items": [_column(list(map(attrgetter(f), col)), enc, f"{name}.{f}")
                                          for f in Env.__slots__]}
        elif t is dict and len(types) == 1:
            shapes = set(map(tuple, col))  # every record with the same fields in the same order
            if len(shapes) == 1:
                (fields,) = shapes
                if all(type(f) is str for f in fields):
                    return {"t": "record", "fields": list(fields),
                            "items": [_column(list(map(itemgetter(f), col)), enc, f"{name}.{i}")
                                      for i, f in enumerate(fields)]}
    enc.packed[name] = _pack(col, enc)
    return {"t": "msgpack", "s": name}


def _uncolumn(spec: dict, n: int, arrays: dict, packed: dict, frames: dict) -> list:
    t = spec["t"]
    if t == "none":
        return [None] * n
    if t == "arrow":
        col = arrays[spec["c"]]
        if len(col) != n:
            raise SnapshotError(f"the snapshot's column {spec['c']!r} has {len(col)} values, {n} expected")
        return col.to_pylist()
    if t == "msgpack":
        col = _unpack(packed[spec["s"]], frames, arrays, packed)
        if len(col) != n:
            raise SnapshotError(f"the snapshot's column {spec['s']!r} has {len(col)} values, {n} expected")
        return col
    if t == "env":
        return list(map(Env, *(_uncolumn(s, n, arrays, packed, frames) for s in spec["items"])))
    if t == "record":
        fields = spec["fields"]
        if not fields:
            return [{} for _ in range(n)]
        return [dict(zip(fields, vals)) for vals in zip(*(_uncolumn(s, n, arrays, packed, frames)
                                                          for s in spec["items"]))]
    make = _MAKE[spec["of"]]
    if t == "fixed":
        if not spec["n"]:
            return [make() for _ in range(n)]
        return list(map(make, zip(*(_uncolumn(s, n, arrays, packed, frames) for s in spec["items"]))))
    lengths = _uncolumn(spec["lengths"], n, arrays, packed, frames)
    flat = _uncolumn(spec["items"], spec["total"], arrays, packed, frames)
    ends = list(accumulate(lengths))
    return [make(flat[e - k:e]) for e, k in zip(ends, lengths)]


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
        if t is KeyedColumns:
            name = f"columns#{len(enc.arrays) + len(enc.packed)}"
            n = len(x.columns[0]) if x.columns else 0
            spec = {"n": n, "columns": [_column(c, enc, f"{name}/{i}") for i, c in enumerate(x.columns)]}
            return msgpack.ExtType(_COLUMNS, orjson.dumps(spec))
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


def _unpack(data: Any, frames: dict[str, pl.DataFrame], arrays: dict | None = None,
            packed: dict | None = None) -> Any:
    def hook(code: int, b: bytes) -> Any:
        if code == _TUPLE:
            return tuple(msgpack.unpackb(b, ext_hook=hook, raw=False, strict_map_key=False))
        if code == _ENV:
            e = Env.__new__(Env)
            e.__setstate__(tuple(msgpack.unpackb(b, ext_hook=hook, raw=False, strict_map_key=False)))
            return e
        if code == _TAGGED:
            return _dec(orjson.loads(b), frames)
        if code == _COLUMNS:
            spec = orjson.loads(b)
            return KeyedColumns([_uncolumn(c, spec["n"], arrays or {}, packed or {}, frames)
                                 for c in spec["columns"]])
        raise SnapshotError(f"the snapshot's row state has an unknown value tag {code}")

    was_enabled = gc.isenabled()
    gc.disable()  # millions of new containers, none of them garbage: no cyclic collections meanwhile
    try:
        return msgpack.unpackb(data, ext_hook=hook, raw=False, strict_map_key=False)
    finally:
        if was_enabled:
            gc.enable()


# -- the blob ----------------------------------------------------------------------------------
def _arrow(df: pl.DataFrame) -> pa.Table:
    return df.to_arrow(compat_level=pl.CompatLevel.newest())  # string views: no copy of text columns


def _ipc_table(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def _ipc_array(arr: pa.Array) -> pa.Buffer:
    batch = pa.record_batch([arr], names=["v"])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
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
    return capture(rt).finish()


def _size(data: Any) -> int:
    return data.size if isinstance(data, pa.Buffer) else len(data)


def digest(data: bytes | memoryview | pa.Buffer) -> str:
    """The content hash of a section (SHA-256, hardware-accelerated where the CPU has it)."""
    return hashlib.sha256(data).hexdigest()[:32]


class Captured:
    """A snapshot begun by :func:`capture`: the vectorised operators' state is taken (Arrow
    tables, immutable), the row operators' is read when :meth:`finish` runs. A job forks
    between the two (the child finishes and writes the blob from a copy-on-write image of
    the process), so the job pauses only for :func:`capture` and the fork.

    Given the ``base`` of the last durable checkpoint (a :class:`~.chain.Base`), the blob
    is incremental: a section whose bytes the base holds (same content hash) is a reference
    to them, and a table that is the very object the base's was written from is not even
    converted (``same``)."""

    def __init__(self, enc: _Encoder, state: dict, rows: list, tables: dict, plan: str,
                 base: Any = None, same: dict[str, str] | None = None,
                 refs: dict[str, Any] | None = None) -> None:
        self.enc, self.state, self.rows, self.tables, self.plan = enc, state, rows, tables, plan
        self.base = base
        #: frame name -> content hash: tables unchanged since the base (not converted)
        self.same = same or {}
        #: frame name -> (weak reference to the table, its height): to know it next time
        self.refs = refs or {}
        #: after finish: bytes of sections written in the blob, and of those referred to
        self.written = self.referred = 0

    def nbytes(self) -> int | None:
        """The size of what was taken (Arrow tables); None when row operators' state is
        still to read (its size unknown until :meth:`finish`)."""
        if self.rows:
            return None
        return sum(t.nbytes for t in self.tables.values() if t is not None) + \
            sum(a.nbytes for a in self.enc.arrays.values()) + sum(len(p) for p in self.enc.packed.values())

    def finish(self) -> bytes:
        enc = self.enc
        for name, obj in self.rows:
            enc.packed[name] = _pack(obj.snapshot(), enc)
        parts: list[tuple[str, str | None, Any, str]] = []  # name, kind, bytes (None: in the base), hash
        for name, df in enc.frames.items():  # frames a row operator's state added are converted now
            if name in self.same:
                parts.append((name, None, None, self.same[name]))
                continue
            data = _ipc_table(self.tables[name] if self.tables.get(name) is not None else _arrow(df))
            parts.append((name, None, data, digest(data)))
        for name, arr in enc.arrays.items():
            data = _ipc_array(arr)
            parts.append((name, "arrow_column", data, digest(data)))
        for name, packed in enc.packed.items():
            parts.append((name, "msgpack", packed, digest(packed)))
        base = self.base
        full = base is None or base.compact([(sha, None if data is None else _size(data)) for _, _, data, sha in parts])
        body: list[bytes | memoryview] = []
        sections: list[dict[str, Any]] = []
        here: dict[str, dict[str, Any]] = {}  # hash -> offset and length in this blob
        files: dict[str, int] = {}
        offset = 0
        for name, kind, data, sha in parts:
            sec: dict[str, Any] = {"name": name, "sha": sha}
            if kind:
                sec["kind"] = kind
            if sha in here:  # the same bytes twice (empty tables): written once
                sec.update(here[sha])
            elif not full and sha in base.by_sha:
                file, at, length = base.by_sha[sha]
                sec.update(file=file, at=at, length=length)
                files[file] = base.files[file]
                self.referred += length
            else:
                if data is None:  # a full checkpoint of a table the base holds: its bytes from there
                    data = base.read(sha)
                n = _size(data)
                here[sha] = {"offset": offset, "length": n}
                sec.update(here[sha])
                body.append(memoryview(data) if isinstance(data, pa.Buffer) else data)
                offset += n
                self.written += n
            sections.append(sec)
        head = {"schema_version": SCHEMA_VERSION, "engine_version": ENGINE_VERSION, "plan": self.plan,
                "sections": sections, "state": self.state}
        if files:
            head["files"] = files
        header = orjson.dumps(head)
        return b"".join([MAGIC, bytes([FORMAT]), struct.pack("<I", len(header)), header, *body])


def capture(rt: Any, base: Any = None) -> Captured:
    """Begin a snapshot of ``rt``: everything but the row operators' state, which
    :meth:`Captured.finish` reads (nothing may feed ``rt`` in between, except in a fork).
    With ``base`` (:class:`~.chain.Base`) the snapshot is incremental."""
    enc = _Encoder()
    rows: list = []

    def part(obj: Any, name: str) -> Any:
        if hasattr(obj, "state"):  # vectorised: (small state, Arrow tables by name)
            meta, tables = obj.state()
            return {"vector": enc.enc(meta), "tables": {k: _object_free(t, enc, f"{name}/{k}")
                                                        for k, t in tables.items()}}
        name = f"{name}/row"
        rows.append((name, obj))
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
    same = {}
    tables: dict[str, pa.Table | None] = {}
    for name, df in enc.frames.items():  # polars' work done here, not in a fork
        sha = base.unchanged(df) if base is not None else None
        if sha is None:
            tables[name] = _arrow(df)
        else:
            same[name] = sha
    refs = {name: (weakref.ref(df), df.shape) for name, df in enc.frames.items()}
    return Captured(enc, state, rows, tables, plan_fingerprint(rt), base, same, refs)


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


def loads(rt: Any, blob: bytes, compiled: Any, *, check_plan: bool = True) -> None:
    """Continue ``rt`` from ``blob``; refused (SnapshotError) unless written by the same plan.
    ``check_plan=False`` is for a caller that has compared the two plans' operators itself
    (UpdateJob carrying state to a new query text with the same plan)."""
    header = read_header(blob)
    mine = plan_fingerprint(rt)
    if check_plan and header["plan"] != mine:
        raise SnapshotError(f"the snapshot was written by a different query plan (plan {header['plan']}, engine "
                            f"{header['engine_version']}); this runtime's plan is {mine}: a changed query or "
                            "engine plan cannot continue from it")
    start = header.pop("_body")
    frames: dict[str, pl.DataFrame] = {}
    packed: dict[str, Any] = {}
    arrays: dict[str, Any] = {}
    for sec in header["sections"]:
        if "file" in sec:
            raise SnapshotError(f"the snapshot refers to {sec['file']} for its section {sec['name']!r}: an "
                                "incremental checkpoint is restored through state.chain.resolve")
        data = memoryview(blob)[start + sec["offset"]:start + sec["offset"] + sec["length"]]
        if sec.get("kind") == "msgpack":
            packed[sec["name"]] = data
        elif sec.get("kind") == "arrow_column":
            try:
                arrays[sec["name"]] = pa.ipc.open_stream(data).read_all().column(0).combine_chunks()
            except pa.ArrowException as exc:
                raise SnapshotError(f"the snapshot's column {sec['name']!r} is damaged: {exc}") from None
        else:
            frames[sec["name"]] = cast(pl.DataFrame, pl.from_arrow(pa.ipc.open_stream(data).read_all()))  # a Table
    state = header["state"]

    def chunk(c: Any) -> Any:
        return _dec(c, frames)

    def restore(obj: Any, st: dict) -> None:
        if "vector" in st:
            tables = {k: chunk(t) for k, t in st["tables"].items()}
            obj.load(_dec(st["vector"], frames), tables)
        elif "row_msgpack" in st:
            try:
                value = _unpack(packed[st["row_msgpack"]], frames, arrays, packed)
            except (ValueError, KeyError, TypeError, msgpack.UnpackException) as exc:
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
