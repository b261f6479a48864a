"""The typed JSON decode of a batch: the few top-level fields a query reads, straight from
the bodies' bytes into Arrow columns of the types the source settled on (one compiled
pass over the bytes, :mod:`._jsonkernels`).

It gives exactly what the event-by-event decode (``loads_json`` and
:meth:`.vector.VectorSource.frame`) gives for the same bodies, in the source's column
types, or it declines: :data:`ROWS` when a body is anything it is not sure of (not valid
JSON, not one object, a read field of another type, nested, duplicated or spelled in
another case, an integer near the bigint range...), and the batch is decoded event by
event, where each such event gets its precise value or error. Floats are converted
exactly (Clinger's fast path in the kernel, Python's correctly rounded ``float`` for the
few others), integers in a float column become floats as in the typed readers.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
import polars as pl
import pyarrow as pa

from headwater.jit import Kernels

__all__ = ["ENABLED", "KERNELS", "LOAD_MIN_EVENTS", "ROWS", "TypedDecoder", "body_spans"]

#: The JSON decode kernels, compiled in the background on first use.
KERNELS = Kernels("headwater.services.processing.exec._jsonkernels")
#: ``HEADWATER_PROCESSING_JSON_KERNELS=0``: decode with Polars' and Arrow's JSON readers only,
#: never loading the kernels (about half the decode's speed; on numba's JIT route also about
#: 110 MB less resident memory, on the ahead-of-time route only the extension's ~1 MB)
ENABLED = os.environ.get("HEADWATER_PROCESSING_JSON_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")
#: :meth:`TypedDecoder.decode`'s answer when the batch must be decoded event by event
ROWS = "rows"
#: A job loads the kernels (on numba's JIT route, without the make-setup extension: about
#: 110 MB of resident memory) at its first
#: batch of this many events or more; a job whose batches stay smaller (a quiet input) never
#: pays that memory and decodes with the JSON lines readers (already loaded kernels are used
#: for any batch)
LOAD_MIN_EVENTS = 1000

_KIND: dict[Any, int] = {pl.Utf8: 0, pl.Int64: 1, pl.Float64: 2, pl.Boolean: 3}


def body_spans(bodies: Any) -> tuple[bytes, np.ndarray, np.ndarray]:
    """One buffer and each body's (start, end) in it: a packed batch's own buffer, or the
    bodies of a list joined."""
    if hasattr(bodies, "offsets"):  # PackedBodies
        offsets = bodies.offsets
        return bodies.buf, offsets[:-1], offsets[1:]
    try:
        arr = pa.array(bodies, pa.large_binary())  # one C pass: the bytes back to back and the offsets
    except (pa.ArrowException, TypeError):
        bodies = [bytes(b) for b in bodies]
        arr = pa.array(bodies, pa.large_binary())
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], np.int64, len(bodies) + 1)
    return buffers[2] if buffers[2] is not None else b"", offsets[:-1], offsets[1:]


class TypedDecoder:
    """Decodes batches into ``schema``'s columns. ``fields``: the lower-case names of every
    field the query reads (None: the whole event, which is then exactly ``schema``'s fields,
    each present and not NULL)."""

    def __init__(self, schema: dict[str, pl.DataType], fields: set[str] | None, iso: str | None = None) -> None:
        self.names = list(schema)
        #: a text field whose ``YYYY-MM-DDTHH:MM:SS[.fff]Z`` values are also read as times
        #: (the TIMESTAMP BY field): after each decode, ``micros`` is (the frame, its values in
        #: microseconds, NULL where a value is not of that form)
        self.iso = self.names.index(iso) if iso in schema and schema[iso] == pl.Utf8 else None
        self.micros: tuple[pl.DataFrame, pl.Series] | None = None
        self.dtypes = list(schema.values())
        self.kinds = np.array([_KIND[t] for t in self.dtypes], np.int8)
        self.keys, self.kofs = _names([n.encode() for n in self.names])
        self.star = fields is None
        self.low = set(fields) if fields is not None else {n.lower() for n in self.names}
        self.lows, self.lofs = _names(sorted(f.encode() for f in self.low))

    def decode(self, bodies: Any) -> pl.DataFrame | str | None:
        """The batch as a frame of ``schema``'s columns; :data:`ROWS` when it must be
        decoded event by event; None while the kernels are not loaded yet."""
        self.micros = None
        if not ENABLED:
            return None
        count = len(bodies.offsets) - 1 if hasattr(bodies, "offsets") else len(bodies)
        k = KERNELS.get() if count >= LOAD_MIN_EVENTS else KERNELS.loaded
        if k is None:
            return None
        buf, starts, ends = body_spans(bodies)
        n, nf = len(starts), len(self.names)
        data = np.frombuffer(buf, np.uint8)
        ints = np.empty((nf, n), np.int64)
        floats = np.empty((nf, n), np.float64)
        valid = np.empty((nf, n), np.uint8)
        text_of = np.cumsum(self.kinds == 0) - 1
        nt = int(np.count_nonzero(self.kinds == 0))
        texts = np.empty((nt, len(data)), np.uint8)  # room only: pages are touched as strings are written
        text_ends = np.empty((nt, n), np.int64)
        micros, micros_ok = np.empty(n, np.int64), np.empty(n, np.uint8)
        iso = self.iso if self.iso is not None else -1
        hard = np.empty((nf * n, 4), np.int64)
        unusual = np.empty((4 * n, 2), np.int64)
        special, high = k.classify(data)
        plain = not special and (not high or _utf8(data))
        qbits = k.quotes(data) if plain else _NO_QUOTES
        args = (starts, ends, self.keys, self.kofs, self.lows, self.lofs, self.kinds, self.star, plain, high, ints, floats,
                valid, texts, text_of, text_ends, iso, micros, micros_ok, hard, unusual)
        ranges = _ranges(n)

        def run(r: tuple[int, int]) -> tuple[int, int, int]:
            return k.scan(np.empty(k.MAX_DEPTH + 2, np.uint8), np.empty(nf, np.int64), np.empty(nt, np.int64), data,
                          qbits, r[0], r[1], *args)

        done = _in_threads(run, ranges)
        if any(status != k.OK for status, _, _ in done):
            return ROWS
        hard_at = [hard[lo * nf:nh] for (lo, _), (_, nh, _) in zip(ranges, done)]
        unusual_at = [unusual[4 * lo:nu] for (lo, _), (_, _, nu) in zip(ranges, done)]
        for f, i, a, b in np.concatenate(hard_at).tolist():
            x = float(bytes(data[a:b]))  # correctly rounded, as orjson's
            if math.isinf(x):
                return ROWS
            floats[f, i] = x
        keys = {bytes(data[a:b]) for a, b in np.concatenate(unusual_at).tolist()}
        if any(orjson.loads(b'"' + key + b'"').lower() in self.low for key in keys):
            return ROWS  # a key with escapes or other letters that names a field read
        cols = []
        for f, (name, kind) in enumerate(zip(self.names, self.kinds.tolist())):
            ok = valid[f]
            nulls = n - int(np.count_nonzero(ok))
            bitmap = pa.py_buffer(np.packbits(ok, bitorder="little")) if nulls else None
            if kind == 0:
                offsets, out = _text_column(texts[text_of[f]], text_ends[text_of[f]], starts, ranges)
                arr = pa.Array.from_buffers(pa.large_string(), n, [bitmap, pa.py_buffer(offsets), pa.py_buffer(out)],
                                            null_count=nulls)
            elif kind == 1:
                arr = pa.Array.from_buffers(pa.int64(), n, [bitmap, pa.py_buffer(ints[f])], null_count=nulls)
            elif kind == 2:
                arr = pa.Array.from_buffers(pa.float64(), n, [bitmap, pa.py_buffer(floats[f])], null_count=nulls)
            else:
                bits = pa.py_buffer(np.packbits(ints[f] != 0, bitorder="little"))
                arr = pa.Array.from_buffers(pa.bool_(), n, [bitmap, bits], null_count=nulls)
            cols.append(pl.Series(name, arr))
        df = pl.DataFrame(cols)
        if self.iso is not None:
            nulls = n - int(np.count_nonzero(micros_ok))
            bitmap = pa.py_buffer(np.packbits(micros_ok, bitorder="little")) if nulls else None
            self.micros = (df, pl.Series(pa.Array.from_buffers(pa.int64(), n, [bitmap, pa.py_buffer(micros)],
                                                               null_count=nulls)))
        return df


_NO_QUOTES = np.zeros(1, np.uint64)
#: bodies per range of a batch decoded in threads (a batch smaller than two is decoded in one)
_MIN_PER_THREAD = 4096
_THREADS = max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
_POOL: dict[int, ThreadPoolExecutor] = {}  # by process: a forked child makes its own threads


def _ranges(n: int) -> list[tuple[int, int]]:
    """Ranges of about ``_MIN_PER_THREAD`` bodies (one range when threads would not help)."""
    parts = max(1, n // _MIN_PER_THREAD) if _THREADS > 1 else 1
    bounds = [n * j // parts for j in range(parts + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def _in_threads(run: Any, ranges: list[tuple[int, int]]) -> list[Any]:
    """``run`` of each range, in order. The kernel releases the GIL: this thread and up to
    ``_THREADS - 1`` others take the next range while there is one, so a thread the machine
    runs slowly (other work on the cores) takes fewer ranges instead of being waited for."""
    if len(ranges) == 1:
        return [run(ranges[0])]
    out: list[Any] = [None] * len(ranges)
    todo = iter(range(len(ranges)))  # next() of one iterator from several threads: each index once (GIL)

    def work() -> None:
        for j in todo:
            out[j] = run(ranges[j])

    helpers = [_pool().submit(work) for _ in range(min(_THREADS, len(ranges)) - 1)]
    work()
    for h in helpers:
        h.result()
    return out


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    pool = _POOL.get(pid)
    if pool is None:
        _POOL.clear()
        pool = _POOL[pid] = ThreadPoolExecutor(_THREADS, thread_name_prefix="json decode")
    return pool


def _text_column(text: np.ndarray, ends: np.ndarray, starts: np.ndarray, ranges: list[tuple[int, int]]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """One text field's Arrow offsets and bytes from what the ranges wrote (range (lo, hi)
    wrote its strings from ``starts[lo]`` on; ``ends``: where each body's string ends)."""
    n = len(ends)
    offsets = np.zeros(n + 1, np.int64)
    parts, total = [], 0
    for lo, hi in ranges:
        if hi > lo:
            base = int(starts[lo])
            offsets[lo + 1:hi + 1] = ends[lo:hi] - (base - total)
            parts.append(text[base:int(ends[hi - 1])])
            total += int(ends[hi - 1]) - base
    out = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    return offsets, out


def _utf8(data: np.ndarray) -> bool:
    """The buffer is valid UTF-8 (Arrow's validation, one pass)."""
    one = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(np.array([0, len(data)], np.int64)),
                                                        pa.py_buffer(data)])
    try:
        one.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _names(names: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(names) + 1, np.int64)
    offsets[1:] = np.cumsum([len(x) for x in names])
    return np.frombuffer(b"".join(names), np.uint8).copy(), offsets


if __name__ == "__main__":  # make setup: compile into numba's cache once, so job workers only load it
    KERNELS.load()
