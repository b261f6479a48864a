"""``headwater perf query --suite``: every query shape of the book and of the conformance
cases over generated trip events, through the query engine as a job feeds it (JSON bodies
decoded in the engine), each with DuckDB's batch SQL over the same events as the peer.

The shapes: the book's windows (tumbling with offset, hopping, sliding, session,
snapshot), its COUNT(DISTINCT) and SUM(CAST) queries and its passthrough; and the shapes
the conformance cases use: the spellings of one query that must plan alike (alias-qualified
column, UPPER key, a WITH step, arrival time instead of TIMESTAMP BY), WHERE with
comparisons and LIKE, a projection with CASE and functions, a stream JOIN, LAG, and
HAVING. DuckDB runs the same computation where SQL says it directly (windows as time
buckets), else it reads and projects the same events (marked ``read``).
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SUITE", "load_kernels", "pack", "run_suite"]

_T = "FROM trips TIMESTAMP BY createdAt"
_BUCKET10 = "to_timestamp(ceil(epoch_us(createdAt::TIMESTAMP) / 1e7) * 10)"
_READ = "read_json('{path}', format='newline_delimited', columns={cols})"

#: name -> (Stream Analytics query over input ``trips``, DuckDB SQL over the same events or None = read)
SUITE: dict[str, tuple[str, str | None]] = {
    "book": (f"SELECT startLocation, COUNT(*) AS trips, System.Timestamp() AS windowEnd {_T} "
             "GROUP BY startLocation, TumblingWindow(second, 10)",
             f"SELECT startLocation, count(*), {_BUCKET10} FROM {_READ} GROUP BY ALL"),
    "book_tumbling_offset": (f"SELECT System.Timestamp() AS WindowEnd, startLocation, COUNT(*) {_T} "
                             "GROUP BY startLocation, TumblingWindow(Duration(second, 10), Offset(millisecond, -1))",
                             f"SELECT startLocation, count(*), {_BUCKET10} FROM {_READ} GROUP BY ALL"),
    "book_hopping": (f"SELECT System.Timestamp() AS WindowEnd, startLocation, COUNT(*) {_T} GROUP BY startLocation, "
                     "HoppingWindow(Duration(second, 20), Hop(second, 10), Offset(millisecond, -1))",
                     f"SELECT startLocation, count(*), {_BUCKET10} AS e FROM {_READ} GROUP BY ALL UNION ALL "
                     f"SELECT startLocation, count(*), {_BUCKET10} + INTERVAL 10 SECOND FROM {_READ} GROUP BY ALL"),
    "book_sliding": (f"SELECT System.Timestamp() AS WindowEnd, startLocation, COUNT(*) {_T} "
                     "GROUP BY startLocation, SlidingWindow(second, 10)", None),
    "book_session": (f"SELECT System.Timestamp() AS WindowEnd, startLocation, COUNT(*) {_T} "
                     "GROUP BY startLocation, SessionWindow(second, 5, 10) OVER (PARTITION BY startLocation)",
                     f"SELECT startLocation, count(*), {_BUCKET10} FROM {_READ} GROUP BY ALL"),
    "book_snapshot": (f"SELECT tripId, COUNT(*) AS n {_T} GROUP BY tripId, System.Timestamp()",
                      f"SELECT tripId, createdAt, count(*) FROM {_READ} GROUP BY ALL"),
    "book_count_distinct": (f"SELECT COUNT(DISTINCT tripId) AS TripCount, System.TIMESTAMP() AS Time {_T} "
                            "GROUP BY TumblingWindow(second, 10)",
                            f"SELECT count(DISTINCT tripId), {_BUCKET10} FROM {_READ} GROUP BY ALL"),
    "book_sum_cast": (f"SELECT tripId, SUM(CAST(fare AS FLOAT)) AS TenSecondFares {_T} "
                      "GROUP BY tripId, TumblingWindow(second, 10)",
                      f"SELECT tripId, sum(fare::DOUBLE), {_BUCKET10} FROM {_READ} GROUP BY ALL"),
    "book_passthrough": (f"SELECT * {_T}", None),
    "alias_qualified": ("SELECT t.startLocation, COUNT(*) AS n FROM trips t TIMESTAMP BY t.createdAt "
                        "GROUP BY t.startLocation, TumblingWindow(second, 10)",
                        f"SELECT startLocation, count(*), {_BUCKET10} FROM {_READ} GROUP BY ALL"),
    "upper_key": (f"SELECT UPPER(startLocation) AS city, COUNT(*) AS n {_T} "
                  "GROUP BY UPPER(startLocation), TumblingWindow(second, 10)",
                  f"SELECT upper(startLocation), count(*), {_BUCKET10} FROM {_READ} GROUP BY ALL"),
    "with_step": (f"WITH s AS (SELECT startLocation, fare, createdAt {_T}) SELECT startLocation, COUNT(*) AS n "
                  "FROM s GROUP BY startLocation, TumblingWindow(second, 10)",
                  f"SELECT startLocation, count(*), {_BUCKET10} FROM {_READ} GROUP BY ALL"),
    "arrival_time": ("SELECT startLocation, COUNT(*) AS n FROM trips GROUP BY startLocation, "
                     "TumblingWindow(second, 10)",
                     f"SELECT startLocation, count(*) FROM {_READ} GROUP BY ALL"),
    "filter_like": (f"SELECT tripId, fare {_T} WHERE fare > 100 AND startLocation LIKE 'San%'",
                    f"SELECT tripId, fare FROM {_READ} WHERE fare > 100 AND startLocation ILIKE 'San%'"),
    "filter_aggregate_having": (f"SELECT startLocation, AVG(fare) AS f, MAX(fare) AS m {_T} WHERE distance > 100 "
                                "GROUP BY startLocation, TumblingWindow(minute, 1) HAVING COUNT(*) > 10",
                                f"SELECT startLocation, avg(fare), max(fare) FROM {_READ} GROUP BY ALL "
                                "HAVING count(*) > 10"),
    "project_functions": (f"SELECT tripId, CASE WHEN fare > 100 THEN 'high' ELSE 'low' END AS band, "
                          f"LEN(endLocation) AS l, CAST(distance AS float) / 1000 AS km {_T}",
                          f"SELECT tripId, CASE WHEN fare > 100 THEN 'high' ELSE 'low' END, length(endLocation), "
                          f"distance / 1000 FROM {_READ}"),
    "stream_join": ("SELECT a.tripId, b.endLocation FROM trips a TIMESTAMP BY createdAt JOIN trips b "
                    "TIMESTAMP BY createdAt ON a.tripId = b.tripId AND DATEDIFF(second, a, b) BETWEEN 0 AND 5",
                    f"SELECT a.tripId, b.endLocation FROM {_READ} a JOIN {_READ} b USING (tripId)"),
    "lag": (f"SELECT tripId, LAG(fare) OVER (PARTITION BY startLocation LIMIT DURATION(minute, 1)) AS prev {_T}",
            f"SELECT tripId, lag(fare) OVER (PARTITION BY startLocation ORDER BY createdAt) FROM {_READ}"),
}
_COLS = ("{'tripId': 'VARCHAR', 'createdAt': 'VARCHAR', 'startLocation': 'VARCHAR', 'endLocation': 'VARCHAR', "
         "'distance': 'BIGINT', 'fare': 'DOUBLE'}")


def _engine_run(text: str, batches: list[Any], n: int) -> tuple[float, int, str]:
    """Seconds, output rows and plan of ``text`` over ``batches``: lists of bodies
    (``feed_bodies``) or (buffer, offsets) pairs (``feed_buffer``, see :func:`pack`)."""
    from headwater.services.processing.engine import compile_query

    rt = compile_query(text).runtime()
    rows = 0
    t0 = time.perf_counter()
    for batch in batches:  # output taken as batches, as a job takes it (take_output_tables)
        if isinstance(batch, tuple):
            rt.feed_buffer("trips", batch[0], batch[1])
        else:
            rt.feed_bodies("trips", batch)
        rows += sum(f.height for f in rt.take_frames().values())
    rt.flush()
    rows += sum(f.height for f in rt.take_frames().values())
    return time.perf_counter() - t0, rows, rt.mode


def load_kernels() -> None:
    """The JSON decode kernels compiled before timing: a job's worker loads them in the
    background and decodes with Polars' reader until they are there (exec/jsondecode.py)."""
    from headwater.services.processing.exec.jsondecode import ENABLED, KERNELS

    if not ENABLED:  # HEADWATER_PROCESSING_JSON_KERNELS=0
        return
    try:
        KERNELS.load()
    except RuntimeError as exc:  # no numba here: the readers of JSON lines decode
        print(f"headwater perf: {exc}")


def pack(bodies: list[bytes]) -> tuple[bytes, np.ndarray]:
    """A batch as a job's packed read gives it to the engine: the bodies back to back in
    one buffer and their offsets (body i is ``buf[offsets[i]:offsets[i+1]]``)."""
    import numpy as np

    offsets = np.zeros(len(bodies) + 1, np.int64)
    np.cumsum([len(b) for b in bodies], out=offsets[1:])
    return b"".join(bodies), offsets


def run_suite(n: int, batch: int, rate: float, compare: str | None, only: list[str] | None = None,
              packed: bool = False, repeat: int = 1) -> Iterator[dict[str, Any]]:
    """One result per shape: events/s of the engine (and of DuckDB over the same events).
    ``packed``: each batch fed as one buffer and offsets, as a job's packed reads feed it
    (packed before timing, as ingestion packs them), instead of a list of bodies.
    ``repeat``: each shape run that many times, engine and DuckDB alike, and the fastest
    run reported (as ``timeit`` does: the others lost time to the machine, not the query);
    every run starts from a new runtime, so no run sees another's state."""
    from headwater.perf.common import trip_batches

    bodies = list(trip_batches(n, batch, rate_per_s=rate))
    batches: list[Any] = [pack(b) for b in bodies] if packed else bodies
    load_kernels()
    # warm up (imports, pools, the allocator's first pages) with one batch of the size measured
    _engine_run(SUITE["book"][0], list(trip_batches(min(n, batch), batch, seed=1)), n)
    path = None
    con = None
    if compare == "duckdb":
        import duckdb

        fd, path = tempfile.mkstemp(suffix=".ndjson")
        with os.fdopen(fd, "wb") as f:
            for b in bodies:
                f.write(b"\n".join(b) + b"\n")
        con = duckdb.connect()
    try:
        for name, (text, duck) in SUITE.items():
            if only and name not in only:
                continue
            runs = [_engine_run(text, batches, n) for _ in range(max(1, repeat))]
            seconds, rows, mode = min(runs)
            if len({r[1] for r in runs}) != 1:
                raise RuntimeError(f"perf query {name}: the runs gave different output rows: {[r[1] for r in runs]}")
            result = {"query": name, "events_per_s": round(n / seconds), "output_rows": rows, "plan": mode}
            if con is not None:
                sql = (duck or f"SELECT * FROM {_READ}").format(path=path, cols=_COLS)
                duck_s = float("inf")
                for _ in range(max(1, repeat)):
                    t0 = time.perf_counter()
                    con.execute(sql).fetchall()
                    duck_s = min(duck_s, time.perf_counter() - t0)
                duck_eps = n / duck_s
                result.update({"duckdb_events_per_s": round(duck_eps), "duckdb": "same" if duck else "read",
                               "ratio_vs_duckdb": round((n / seconds) / duck_eps, 3)})
            yield result
    finally:
        if path is not None:
            os.unlink(path)


#: ``perf query --checkpoint --state``: the query whose state is snapshotted (200k keys in an open window).
CHECKPOINT_QUERIES = {
    # vectorised: COUNT/SUM over group keys (Arrow sections)
    "count": "SELECT k, COUNT(*) AS n, SUM(v) AS s FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)",
    # row path: STDEV has no vectorised kernel, so the whole aggregate runs row by row
    "stdev": "SELECT k, COUNT(*) AS n, STDEV(v) AS sd FROM i TIMESTAMP BY t GROUP BY k, TumblingWindow(minute, 10)",
    # vectorised LAG: the last entry of each partition key (an Arrow table)
    "lag": "SELECT k, v, LAG(v) OVER (PARTITION BY k LIMIT DURATION(hour, 1)) AS prev FROM i TIMESTAMP BY t",
    # row path: LAG with WHEN keeps the recent events of each partition key (msgpack section)
    "lag_when": "SELECT k, v, LAG(v) OVER (PARTITION BY k LIMIT DURATION(hour, 1) WHEN v >= 0) AS prev "
                "FROM i TIMESTAMP BY t",
}


def checkpoint(keys: int, vectorize: bool = True, state: str = "count") -> dict[str, Any]:
    """Snapshot and restore of a runtime holding ``keys`` group keys in one open window:
    the blocking time of a checkpoint (ms) and the blob's size. ``state`` picks the query
    (:data:`CHECKPOINT_QUERIES`): a vectorised aggregate or a row-path operator's state."""
    from headwater.services.processing.engine import compile_query

    q = CHECKPOINT_QUERIES[state]
    compiled = compile_query(q)
    rt = compiled.runtime(vectorize=vectorize)
    step = 50_000
    for lo in range(0, keys, step):
        rt.feed_bodies("i", [b'{"k":"key%d","v":%d,"t":"2024-01-01T00:01:00Z"}' % (i, i)
                             for i in range(lo, min(keys, lo + step))])
    rt.advance_time(1_704_067_200_000_000 + 120_000_000)  # events released, the window still open
    rt.take_frames()  # rows already out (LAG's) are taken before a checkpoint, as a job does
    t0 = time.perf_counter()
    blob = rt.snapshot()
    t1 = time.perf_counter()
    rt2 = compiled.runtime(vectorize=vectorize)
    t2 = time.perf_counter()
    rt2.restore(blob)
    t3 = time.perf_counter()
    rt2.flush()
    rows = len(rt2.take_frames()["output"])
    out = {"keys": keys, "snapshot_ms": round((t1 - t0) * 1000, 1), "restore_ms": round((t3 - t2) * 1000, 1),
           "snapshot_mb": round(len(blob) / 1e6, 2), "rows_after_restore": rows,
           "state": state, "plan": rt.mode}
    if hasattr(os, "fork"):  # as a job's worker checkpoints: capture, fork, the child serializes and writes
        t4 = time.perf_counter()
        captured = rt.snapshot_begin()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with open(os.devnull, "wb") as f:
                    f.write(captured.finish())
                code = 0
            finally:
                os._exit(code)
        t5 = time.perf_counter()
        _, status = os.waitpid(pid, 0)
        t6 = time.perf_counter()
        out.update(fork_pause_ms=round((t5 - t4) * 1000, 1), fork_written_ms=round((t6 - t4) * 1000, 1),
                   fork_ok=os.waitstatus_to_exitcode(status) == 0)
    out.update(_incremental(rt, keys))
    return out


def _incremental(rt: Any, keys: int) -> dict[str, Any]:
    """Checkpoints into a folder as a job writes them (state/chain.py): a first whole one,
    then an idle epoch's (the clock moves, nothing arrives) and a 1%-changed epoch's (1%
    of the keys get an event): each one's pause (the capture: what a job's worker holds the
    job for before it forks), its total time to a durable file, and the bytes written."""
    from headwater.services.processing.state.chain import Base, collect
    from headwater.storage import write_atomic

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hw-ckpt-") as tmp:
        folder, base = Path(tmp), None
        clock = 1_704_067_200_000_000 + 120_000_000
        for n, epoch in enumerate(["whole", "idle", "changed_1pct"]):
            if epoch == "changed_1pct":
                rt.feed_bodies("i", [b'{"k":"key%d","v":%d,"t":"2024-01-01T00:01:00Z"}' % (i, i)
                                     for i in range(0, keys, 100)])
            clock += 1_000_000
            rt.advance_time(clock)
            rt.take_frames()
            name = f"state-{n}.bin"
            t0 = time.perf_counter()
            captured = rt.snapshot_begin(base)
            t1 = time.perf_counter()
            blob = captured.finish()
            write_atomic(folder / name, blob)
            collect(folder, name, blob)
            base = Base.of_file(folder, name, captured)
            t2 = time.perf_counter()
            out[f"{epoch}_pause_ms"] = round((t1 - t0) * 1000, 1)
            out[f"{epoch}_ms"] = round((t2 - t0) * 1000, 1)
            out[f"{epoch}_bytes"] = len(blob)
    return out
