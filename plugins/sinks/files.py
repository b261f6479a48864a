"""``files``: JSON lines, CSV, Parquet or Avro files in a folder, partitioned by a path pattern.

Settings: ``path`` (the folder), ``format`` (``jsonl``, ``csv``, ``parquet``,
``avro``), ``path_pattern`` (Stream Analytics' path pattern: ``{date}``,
``{time}`` and ``{field}`` tokens, for example ``{startLocation}/{date}/{time}``),
``date_format`` (``YYYY/MM/DD``, ``YYYY-MM-DD``, ``DD/MM/YYYY``, ``MM/DD/YYYY``),
``time_format`` (``HH``, ``HH/mm``, ``HH-mm``), ``time_field`` (the column
whose time fills ``{date}``/``{time}``; default the write time, UTC),
``roll_size_mb`` and ``roll_interval_s`` (a file is closed when it reaches the
size or the age), ``prefix``.

A file is written under a hidden name (``.<name>.inprogress``, skipped by
Spark, pandas and pyarrow datasets) and renamed into place when it is closed:
at the writer's checkpoint (flush), on roll, or at shutdown; a reader never sees
half a file. Names are deterministic per writer checkpoint
(``part-<writer>-<checkpoint>-<n>.<ext>``) and ``_headwater/<sink>.json``
records the last committed checkpoint of each writer: on restart the files of
checkpoints that were never committed are removed (their writer replays them),
and a replayed checkpoint that was committed is skipped. The sink removes only
files it wrote: names carry a tag of the sink and writer (recorded in the
manifest), so files already in the folder, or another sink's, are never deleted.
``path`` lies under the service's ``allowed_paths``; every folder a
``path_pattern`` renders is checked to stay inside ``path`` (an empty field
renders as ``_``). Avro files with the
columns of a captured event (``body``, ``sequence_number``, ``offset``,
``enqueued_time``, ``partition_id``, ``properties``) are Event Hubs Capture's
shape.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from headwater.paths import confine
from headwater.secrets import write_private
from headwater.sinks import (
    Checkpoint,
    OutputMode,
    Sink,
    SinkConfigError,
    SinkKind,
    SinkRowError,
    SinkSpec,
    check_keys,
    require,
)
from headwater.storage import publish

__all__ = ["FilesKind", "FilesSink", "render_dirs"]

FORMATS = {"jsonl": "jsonl", "json": "jsonl", "csv": "csv", "parquet": "parquet", "avro": "avro"}
DATE_FORMATS = {"YYYY/MM/DD": "%Y/%m/%d", "YYYY-MM-DD": "%Y-%m-%d", "DD/MM/YYYY": "%d/%m/%Y",
                "MM/DD/YYYY": "%m/%d/%Y"}
TIME_FORMATS = {"HH": "%H", "HH/mm": "%H/%M", "HH-mm": "%H-%M"}
_SETTINGS = ("path", "format", "path_pattern", "date_format", "time_format", "time_field",
             "roll_size_mb", "roll_interval_s", "prefix")
_TOKEN = re.compile(r"\{([^{}]+)\}")
_NAME = re.compile(r"^(?P<prefix>.+)-(?P<tag>[0-9a-f]{8})-(?P<ckpt>\d{12})-(?P<n>\d{4})\.\w+$")
_UNSAFE = re.compile(r"[^\w.=@+-]")
_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}")


def render_dirs(table: pa.Table, pattern: str, date_fmt: str, time_fmt: str, time_field: str | None,
                now: datetime | None = None) -> list[str]:
    """The partition folder of each row for a path ``pattern`` (``{date}``, ``{time}``, ``{field}``)."""
    import polars as pl

    if not pattern:
        return [""] * table.num_rows
    now = now or datetime.now(UTC)
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    exprs: list[Any] = []
    pos = 0
    for m in _TOKEN.finditer(pattern):
        if m.start() > pos:
            exprs.append(pl.lit(pattern[pos:m.start()]))
        token = m.group(1)
        if token in ("date", "time"):
            fmt = date_fmt if token == "date" else time_fmt
            if time_field:
                col = pl.col(time_field)
                if df.schema[time_field] == pl.Utf8:
                    col = col.str.to_datetime(strict=False, time_zone="UTC")
                elif not isinstance(df.schema[time_field], pl.Datetime):
                    raise SinkRowError(f"time_field {time_field!r} is not a time column "
                                       f"(type {df.schema[time_field]})", rows=range(table.num_rows))
                exprs.append(col.dt.strftime(fmt).fill_null("unknown"))
            else:
                exprs.append(pl.lit(now.strftime(fmt)))
        else:
            if token not in df.columns:
                raise SinkRowError(f"path pattern field {{{token}}} is missing from the rows",
                                   rows=range(table.num_rows))
            exprs.append(pl.col(token).cast(pl.Utf8).fill_null("null")
                         .str.replace_all(r"[^\w.=@+-]", "_").str.replace(r"^\.+", "_").str.replace(r"^$", "_"))
        pos = m.end()
    if pos < len(pattern):
        exprs.append(pl.lit(pattern[pos:]))
    return df.select(pl.concat_str(exprs).alias("d"))["d"].to_list()


def _avro_type(t: pa.DataType) -> Any:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "long" if t.bit_width > 32 or not pa.types.is_signed_integer(t) else "int"
    if pa.types.is_floating(t):
        return "double"
    if pa.types.is_timestamp(t):
        return {"type": "long", "logicalType": "timestamp-micros"}
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "bytes"
    if pa.types.is_map(t):
        return {"type": "map", "values": "string"}
    return "string"


def _avro_schema(schema: pa.Schema) -> dict:
    return {"type": "record", "name": "Row", "namespace": "headwater",
            "fields": [{"name": _UNSAFE.sub("_", f.name), "type": ["null", _avro_type(f.type)], "default": None}
                       for f in schema]}


def _avro_rows(table: pa.Table) -> list[dict]:
    cols = {}
    for f in table.schema:
        col = table.column(f.name)
        if pa.types.is_timestamp(f.type):
            col = col.cast(pa.timestamp("us", f.type.tz)).cast(pa.int64())
        values = col.to_pylist()
        if _avro_type(f.type) == "string" and not (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)):
            values = [None if v is None else (json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v))
                      for v in values]
        elif pa.types.is_map(f.type):
            values = [None if v is None else {str(k): str(x) for k, x in v} for v in values]
        cols[_UNSAFE.sub("_", f.name)] = values
    names = list(cols)
    return [dict(zip(names, vals)) for vals in zip(*cols.values())]


@dataclass
class _OpenFile:
    final: Path
    tmp: Path
    schema: pa.Schema
    opened: float
    handle: Any
    writer: Any = None
    rows: int = 0


class FilesSink(Sink):
    exactly_once = True

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        cfg = spec.config
        self.root = Path(cfg["path"])
        self.fmt = FORMATS[cfg.get("format", "jsonl")]
        self.pattern = cfg.get("path_pattern", "")
        self.date_fmt = DATE_FORMATS[cfg.get("date_format", "YYYY/MM/DD")]
        self.time_fmt = TIME_FORMATS[cfg.get("time_format", "HH")]
        self.time_field = cfg.get("time_field") or None
        self.roll_bytes = int(float(cfg.get("roll_size_mb", 64)) * 1024 * 1024)
        self.roll_s = float(cfg.get("roll_interval_s", 300))
        self.prefix = cfg.get("prefix", "part")
        self._open: dict[str, _OpenFile] = {}
        self._counters: dict[tuple[str, str, int], int] = {}
        self._last: dict[str, Checkpoint] = {}
        self._pending: dict[str, Checkpoint] = {}
        self._current: dict[str, Checkpoint] = {}
        self._lock = threading.RLock()
        self._manifest = self.root / "_headwater" / f"{spec.name}.json"

    def _tag(self, writer: str) -> str:
        """Names of this sink's files carry it: a file without a known tag is never ours to delete."""
        return hashlib.sha1(f"{self.name}\0{writer}".encode()).hexdigest()[:8]

    # -- recovery ----------------------------------------------------------------------
    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._manifest.exists():
            data = json.loads(self._manifest.read_text())
            self._last = {w: Checkpoint(c, b, w) for w, (c, b) in data.get("last", {}).items()}
        # Tags of the writers this sink committed for, with their last checkpoint. Names written
        # before tags included the sink (sha1 of the writer only) are recognised too.
        committed: dict[str, int] = {}
        for w, c in self._last.items():
            committed[self._tag(w)] = committed[hashlib.sha1(w.encode()).hexdigest()[:8]] = c.checkpoint_id
        if not committed:
            return  # nothing in the folder is known to be this sink's
        for path in self.root.rglob("*"):
            hidden = path.name.startswith(".") and path.name.endswith(".inprogress")
            m = _NAME.match(path.name[1:-len(".inprogress")] if hidden else path.name)
            if not (m and m.group("prefix") == self.prefix and m.group("tag") in committed) or not path.is_file():
                continue  # not a file this sink wrote: never deleted
            if hidden or int(m.group("ckpt")) > committed[m.group("tag")]:
                path.unlink(missing_ok=True)  # an uncommitted checkpoint: its writer replays it

    def last_checkpoint(self, writer: str) -> Checkpoint | None:
        return self._last.get(writer)

    # -- writing -----------------------------------------------------------------------
    def write_batch(self, batch: pa.Table, checkpoint: Checkpoint) -> Any:
        with self._lock:
            if checkpoint.tracked and not checkpoint.after(self._last.get(checkpoint.writer)):
                return "duplicate"
            dirs = render_dirs(batch, self.pattern, self.date_fmt, self.time_fmt, self.time_field)
            self._check_dirs(dirs)
            if len(set(dirs)) == 1:
                groups = [(dirs[0], batch)]
            else:
                import pyarrow.compute as pc

                arr = pa.array(dirs)
                groups = [(d, batch.filter(pc.equal(arr, d))) for d in dict.fromkeys(dirs)]
            for d, part in groups:
                self._append(d, part, checkpoint)
            if checkpoint.tracked:
                self._pending[checkpoint.writer] = checkpoint
            self.poll()
        return None

    def _check_dirs(self, dirs: list[str]) -> None:
        """Every rendered folder stays inside ``path`` (checked after rendering, symlinks resolved)."""
        root = self.root.resolve()
        for d in set(dirs):
            target = (self.root / d).resolve() if d else root
            if Path(d).is_absolute() or ".." in Path(d).parts or not target.is_relative_to(root):
                rows = [i for i, x in enumerate(dirs) if x == d]
                raise SinkRowError(f"files sink {self.name!r}: path_pattern rendered {d!r}, which leads outside "
                                   "the sink's folder", rows=rows)

    def _new_name(self, d: str, checkpoint: Checkpoint) -> str:
        ext = self.fmt
        if not checkpoint.tracked:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            return f"{self.prefix}-{stamp}-{uuid.uuid4().hex[:8]}.{ext}"
        tag = self._tag(checkpoint.writer)
        key = (d, tag, checkpoint.checkpoint_id)
        n = self._counters.get(key, 0)
        self._counters[key] = n + 1
        return f"{self.prefix}-{tag}-{checkpoint.checkpoint_id:012d}-{n:04d}.{ext}"

    def _append(self, d: str, part: pa.Table, checkpoint: Checkpoint) -> None:
        f = self._open.get(d)
        if f is not None and (not f.schema.equals(part.schema)
                              or self._current.get(d, checkpoint).checkpoint_id != checkpoint.checkpoint_id):
            self._close(d)
            f = None
        if f is None:
            folder = self.root / d if d else self.root
            folder.mkdir(parents=True, exist_ok=True)
            name = self._new_name(d, checkpoint)
            final = folder / name
            tmp = folder / f".{name}.inprogress"
            f = _OpenFile(final, tmp, part.schema, time.monotonic(), None)
            self._start(f)
            self._open[d] = f
            self._current[d] = checkpoint
        self._write(f, part)
        f.rows += part.num_rows
        if f.handle is not None and f.handle.tell() >= self.roll_bytes:
            self._close(d)

    def _start(self, f: _OpenFile) -> None:
        f.handle = open(f.tmp, "wb")  # noqa: SIM115 - open until the file is rolled or flushed
        if self.fmt == "csv":
            import pyarrow.csv as pacsv

            f.writer = pacsv.CSVWriter(f.handle, f.schema)
        elif self.fmt == "parquet":
            import pyarrow.parquet as pq

            f.writer = pq.ParquetWriter(f.handle, f.schema)
        elif self.fmt == "avro":
            from fastavro import parse_schema
            from fastavro.write import Writer

            f.writer = Writer(f.handle, parse_schema(_avro_schema(f.schema)))

    def _write(self, f: _OpenFile, part: pa.Table) -> None:
        if self.fmt == "jsonl":
            import orjson

            f.handle.write(b"".join(orjson.dumps(r, default=str) + b"\n" for r in part.to_pylist()))
        elif self.fmt == "csv" or self.fmt == "parquet":
            f.writer.write_table(part)
        else:
            for row in _avro_rows(part):
                f.writer.write(row)
            f.writer.flush()

    def _close(self, d: str) -> None:
        f = self._open.pop(d, None)
        if f is None:
            return
        if self.fmt in ("csv", "parquet"):
            f.writer.close()
        elif self.fmt == "avro":
            f.writer.flush()
        f.handle.flush()
        os.fsync(f.handle.fileno())
        f.handle.close()
        publish(f.tmp, f.final)

    def poll(self) -> None:
        """Close files older than ``roll_interval_s``."""
        with self._lock:
            now = time.monotonic()
            for d, f in list(self._open.items()):
                if now - f.opened >= self.roll_s:
                    self._close(d)

    def flush(self) -> None:
        with self._lock:
            for d in list(self._open):
                self._close(d)
            if self._pending:
                self._last.update(self._pending)
                self._pending.clear()
                self._manifest.parent.mkdir(parents=True, exist_ok=True)
                data = {"last": {w: [c.checkpoint_id, c.batch_id] for w, c in self._last.items()},
                        "tags": sorted({self._tag(w) for w in self._last})}
                write_private(self._manifest, json.dumps(data).encode())
            self._counters = {k: v for k, v in self._counters.items()
                              if k[2] > max((c.checkpoint_id for c in self._last.values()), default=0)}


class FilesKind(SinkKind):
    """``files``: JSON lines / CSV / Parquet / Avro files, rolled and partitioned by path."""

    name = "files"
    description = "JSON lines, CSV, Parquet or Avro files; path patterns {date} {time} {field}; rolled by size or time"
    exactly_once = True
    output_modes = (OutputMode.APPEND,)

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        check_keys(config, _SETTINGS, self.name)
        out = dict(config)
        require(out, "path", self.name)
        if spec.allowed_roots:
            out["path"] = str(confine(str(out["path"]), spec.allowed_roots, "path"))
        fmt = out.setdefault("format", "jsonl")
        if fmt not in FORMATS:
            raise SinkConfigError(f"files sink: setting 'format' must be one of {', '.join(FORMATS)}, got {fmt!r}",
                                  setting="format")
        for key, table in (("date_format", DATE_FORMATS), ("time_format", TIME_FORMATS)):
            if key in out and out[key] not in table:
                raise SinkConfigError(f"files sink: setting {key!r} must be one of {', '.join(table)}, "
                                      f"got {out[key]!r}", setting=key)
        for key in ("roll_size_mb", "roll_interval_s"):
            if key in out and (isinstance(out[key], bool) or not isinstance(out[key], (int, float))
                               or out[key] <= 0):
                raise SinkConfigError(f"files sink: setting {key!r} must be a number > 0, got {out[key]!r}",
                                      setting=key)
        prefix = out.get("prefix", "part")
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise SinkConfigError("files sink: setting 'prefix' must be letters, digits, '_', '-', '.' (at most 64, "
                                  f"not starting with '.'), got {prefix!r}", setting="prefix")
        pattern = out.get("path_pattern", "")
        if not isinstance(pattern, str) or ".." in pattern or pattern.startswith("/"):
            raise SinkConfigError("files sink: setting 'path_pattern' must be a relative path pattern",
                                  setting="path_pattern")
        if spec.output_mode is not OutputMode.APPEND:
            raise SinkConfigError("files sink: only output mode append is supported", setting="output_mode")
        return out

    def create(self, spec: SinkSpec) -> FilesSink:
        return FilesSink(spec)
