"""``headwater perf files``: a file input's reading and decoding, events/s per format.

N generated trip events written to ``--files`` files of one format under a temporary
folder named by a ``{date}/{time}`` pattern; then the file input's path (list the
pattern, read each file into JSON bodies, as a job's file reader does) is timed, and
the same events read by pyarrow alone (the peer: Arrow's own reader of that format,
without conversion to events) in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from headwater.perf.common import emit, peak_rss_mb, trip_batches

__all__ = ["add_perf_commands"]


def _write(folder: Path, fmt: str, n: int, files: int) -> tuple[int, list[Path]]:
    import pyarrow as pa

    per = max(1, n // files)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    paths, size = [], 0
    for i, batch in enumerate(trip_batches(n, per)):
        when = start + timedelta(hours=i)
        path = folder / when.strftime("%Y/%m/%d") / when.strftime("%H") / f"trips.{fmt}"
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "json":
            path.write_bytes(b"\n".join(batch))
        else:
            table = pa.Table.from_pylist([orjson.loads(b) for b in batch])
            if fmt == "csv":
                from pyarrow import csv as pacsv

                pacsv.write_csv(table, path)
            elif fmt == "parquet":
                import pyarrow.parquet as pq

                pq.write_table(table, path)
            else:
                import fastavro

                schema = {"type": "record", "name": "Trip", "fields": [
                    {"name": c, "type": "string" if pa.types.is_string(t) else "long" if pa.types.is_integer(t)
                     else "double"} for c, t in zip(table.column_names, table.schema.types)]}
                with path.open("wb") as fh:
                    fastavro.writer(fh, fastavro.parse_schema(schema), table.to_pylist())
        size += path.stat().st_size
        paths.append(path)
    return size, paths


def _peer(fmt: str, paths: list[Path]) -> int:
    """The same files read by Arrow's own reader (rows, no events)."""
    rows = 0
    for p in paths:
        if fmt == "json":
            from pyarrow import json as pajson

            rows += pajson.read_json(p).num_rows
        elif fmt == "csv":
            from pyarrow import csv as pacsv

            rows += pacsv.read_csv(p).num_rows
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            rows += pq.read_table(p).num_rows
        else:
            import fastavro

            with p.open("rb") as fh:
                rows += sum(1 for _ in fastavro.reader(fh))
    return rows


def run(args: argparse.Namespace) -> int:
    from headwater.services.processing.files import PathPattern, read_events

    with tempfile.TemporaryDirectory(prefix="hw-perf-files-") as tmp:
        root = Path(tmp)
        size, paths = _write(root, args.format, args.events, args.files)
        pattern = PathPattern(f"{root}/{{date}}/{{time}}/*.{args.format}", [root])
        t0 = time.perf_counter()
        events = nbytes = 0
        for entry in pattern.files():
            bodies, _ = read_events(entry, 2**40)
            events += len(bodies)
            nbytes += sum(map(len, bodies))
        took = time.perf_counter() - t0
        t1 = time.perf_counter()
        peer_rows = _peer(args.format, paths)
        peer_took = time.perf_counter() - t1
    rate, peer_rate = events / took, peer_rows / peer_took
    result = {"format": args.format, "events": events, "files": len(paths), "file_mb": round(size / 1e6, 1),
              "events_per_s": round(rate), "mb_per_s": round(size / 1e6 / took, 1),
              "peer": "pyarrow" if args.format != "avro" else "fastavro",
              "peer_events_per_s": round(peer_rate), "ratio": round(rate / peer_rate, 2),
              "peak_rss_mb": round(peak_rss_mb(), 1)}
    emit(f"files ({args.format}): {events:,} events in {len(paths)} files ({size / 1e6:.1f} MB) read as a file "
         f"input reads them: {rate:,.0f} events/s, {size / 1e6 / took:.1f} MB/s; {result['peer']} alone "
         f"{peer_rate:,.0f} rows/s (x{rate / peer_rate:.2f})", result, args.json)
    return 0


def add_perf_commands(perf_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = perf_sub.add_parser("files", help="events/s of a file input's reading and decoding, per format")
    p.add_argument("--format", choices=("json", "csv", "parquet", "avro"), default="json")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--files", type=int, default=10)
    p.add_argument("--json", action="store_true", help="one JSON object as the last line")
    p.set_defaults(func=run)
