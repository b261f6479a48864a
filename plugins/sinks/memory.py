"""The memory table (Spark's memory sink) and the dashboard dataset (Power BI streaming dataset).

Rows live in memory as Arrow tables; a flush (the writer's checkpoint) writes the
new rows to the sink's data folder as Arrow files, then the last applied
checkpoint of each writer with the list of files in one atomic rename, so a
restarted service serves the same table and a replayed write is not applied twice.

Output modes: append adds rows; update replaces rows with the same key columns;
complete replaces rows with the same key (``key_columns``, by default every
non-numeric column: see :func:`headwater.sinks.replace_keys`) and keeps every
other group, so a job emitting only its closed windows and a writer sending the
whole result each trigger both leave the whole result. A complete result without
a key (one global aggregate) is replaced on the first write of each trigger.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import pyarrow as pa

from headwater.sinks import (
    Checkpoint,
    OutputMode,
    ReadableSink,
    SinkConfigError,
    SinkKind,
    SinkSpec,
    check_keys,
    replace_keys,
)
from headwater.storage import write_atomic

__all__ = ["DashboardKind", "MemoryKind", "MemorySink"]

_STATE = "state.json"
#: A flush rewrites the table as one segment when it has more segments than this.
_MAX_SEGMENTS = 64


def _write_arrow(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def concat(tables: list[pa.Table]) -> pa.Table:
    """Concatenate tables whose schemas drifted (new columns become null before they appear)."""
    tables = [t for t in tables if t.num_columns]
    if not tables:
        return pa.table({})
    if len(tables) == 1:
        return tables[0]
    try:
        return pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Incompatible types for one column (int then string): fall back to strings.
        names: list[str] = []
        for t in tables:
            names += [n for n in t.column_names if n not in names]
        fixed = []
        for t in tables:
            cols = {}
            for n in names:
                if n in t.column_names:
                    col = t.column(n)
                    cols[n] = col if pa.types.is_string(col.type) else col.cast(pa.string())
                else:
                    cols[n] = pa.nulls(t.num_rows, pa.string())
            fixed.append(pa.table(cols))
        return pa.concat_tables(fixed)


class MemorySink(ReadableSink):
    """A named in-memory table, snapshotted to disk at every flush."""

    exactly_once = True

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        self._lock = threading.Lock()
        self._parts: list[pa.Table] = []
        self._last: dict[str, Checkpoint] = {}
        self._trigger: int | None = None
        self._dirty = False
        self._segments: list[str] = []
        self._persisted = 0  # rows of the table already in segments (append mode)
        self._full = True  # the next flush writes the whole table
        self._seq = 0
        self.max_rows = int(spec.config.get("max_rows") or 0)

    # -- persistence -----------------------------------------------------------------
    # A flush writes the rows added since the last flush as one Arrow file (a segment)
    # and then, atomically, ``state.json`` naming the live segments with the last
    # checkpoint of each writer. Update and complete modes (and trims) write the whole
    # table as one segment. A segment that state.json does not name is a leftover of
    # a crash and is removed on open.
    def _dir(self) -> Path | None:
        return None if self.spec.data_dir is None else Path(self.spec.data_dir)

    def open(self) -> None:
        folder = self._dir()
        if folder is None or not (folder / _STATE).exists():
            return
        state = json.loads((folder / _STATE).read_text())
        parts = []
        for name in state["segments"]:
            with pa.memory_map(str(folder / name)) as source:
                parts.append(pa.ipc.open_file(source).read_all())
        for path in folder.glob("seg-*.arrow"):
            if path.name not in state["segments"]:
                path.unlink()
        self._parts = [concat(parts)] if parts else []
        self._segments = list(state["segments"])
        self._persisted = sum(p.num_rows for p in parts)
        self._last = {w: Checkpoint(c, b, w) for w, (c, b) in state.get("last", {}).items()}
        self._trigger = state.get("trigger")
        self._full = False

    def flush(self) -> None:
        folder = self._dir()
        with self._lock:
            if folder is None or not self._dirty:
                return
            table = self._table_locked()
            full = self._full or len(self._segments) >= _MAX_SEGMENTS
            rows = table if full else table.slice(self._persisted)
            state = {"last": {w: [c.checkpoint_id, c.batch_id] for w, c in self._last.items()},
                     "trigger": self._trigger}
            self._dirty = False
            self._seq += 1
            name = f"seg-{time.time_ns():020d}-{self._seq:06d}.arrow"
            old = list(self._segments)
            segments = [name] if full else [*old, name]
            self._segments, self._persisted, self._full = segments, table.num_rows, False
        folder.mkdir(parents=True, exist_ok=True)
        _write_arrow(folder / name, rows)
        write_atomic(folder / _STATE, json.dumps({**state, "segments": segments}).encode())
        if full:
            for stale in old:
                (folder / stale).unlink(missing_ok=True)

    def drop(self) -> None:
        with self._lock:
            self._parts = []
        folder = self._dir()
        if folder is not None:
            for path in [*folder.glob("seg-*.arrow"), folder / _STATE]:
                path.unlink(missing_ok=True)

    # -- rows --------------------------------------------------------------------------
    def _table_locked(self) -> pa.Table:
        if len(self._parts) > 1:
            self._parts = [concat(self._parts)]
        return self._parts[0] if self._parts else pa.table({})

    def read(self) -> pa.Table:
        with self._lock:
            return self._table_locked()

    def last_checkpoint(self, writer: str) -> Checkpoint | None:
        return self._last.get(writer)

    def write_batch(self, batch: pa.Table, checkpoint: Checkpoint) -> Any:
        with self._lock:
            if checkpoint.tracked and not checkpoint.after(self._last.get(checkpoint.writer)):
                return "duplicate"
            mode = self.spec.output_mode
            if mode is not OutputMode.APPEND:
                self._full = True
            keys = replace_keys(mode, self.spec.key_columns, batch.schema)
            if mode is OutputMode.COMPLETE and not keys:
                if not checkpoint.tracked or checkpoint.checkpoint_id != self._trigger:
                    self._parts = []
                self._parts.append(batch)
            elif mode is not OutputMode.APPEND:
                self._parts = [self._upsert(self._table_locked(), batch, keys)]
            else:
                self._parts.append(batch)
            if mode is OutputMode.COMPLETE:
                self._trigger = checkpoint.checkpoint_id
            if self.max_rows:
                table = self._table_locked()
                if table.num_rows > self.max_rows:
                    self._parts = [table.slice(table.num_rows - self.max_rows)]
                    self._full = True
            if checkpoint.tracked:
                self._last[checkpoint.writer] = checkpoint
            self._dirty = True
        return None

    def _upsert(self, table: pa.Table, batch: pa.Table, keys: list[str]) -> pa.Table:
        import polars as pl

        missing = [k for k in keys if k not in batch.column_names]
        if missing:
            from headwater.sinks import SinkRowError

            raise SinkRowError(f"key column {missing[0]!r} is missing from the batch",
                               rows=range(batch.num_rows))
        both = concat([table, batch]) if table.num_columns else batch
        df = pl.from_arrow(both)
        assert isinstance(df, pl.DataFrame)
        return df.unique(subset=keys, keep="last", maintain_order=True).to_arrow()


class MemoryKind(SinkKind):
    """``memory``: a table a person or a test reads back (``headwater table show NAME``)."""

    name = "memory"
    description = "in-memory table read back with ReadTable / `headwater table show` (Spark's memory sink)"
    exactly_once = True
    output_modes = (OutputMode.APPEND, OutputMode.UPDATE, OutputMode.COMPLETE)
    #: ``key``/``value``/``time``/``title`` (or ``chart: {x, y, series}``, the demo's shape)
    #: choose the dashboard's chart columns: every memory table is also a dashboard dataset.
    settings: tuple[str, ...] = ("max_rows", "key", "value", "time", "title", "chart")
    _chart_names: ClassVar[dict[str, str]] = {"x": "key", "y": "value", "series": "time", "key": "key", "value": "value", "time": "time"}

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        check_keys(config, self.settings, self.name)
        out = dict(config)
        chart = out.pop("chart", None)
        if chart is not None:
            if not isinstance(chart, dict) or set(chart) - set(self._chart_names):
                raise SinkConfigError(f"{self.name} sink: setting 'chart' must be a mapping with x (key column), "
                                      "y (value column) and series (time column)", setting="chart")
            for name, column in chart.items():
                out.setdefault(self._chart_names[name], column)
        for key in ("key", "value", "time", "title"):
            if key in out and not isinstance(out[key], str):
                raise SinkConfigError(f"{self.name} sink: setting {key!r} must be a column name (string)",
                                      setting=key)
        max_rows = out.get("max_rows", 0)
        if isinstance(max_rows, float) and max_rows.is_integer():
            max_rows = int(max_rows)
        if not isinstance(max_rows, int) or isinstance(max_rows, bool) or max_rows < 0:
            raise SinkConfigError(f"{self.name} sink: setting 'max_rows' must be a whole number >= 0, "
                                  f"got {max_rows!r}", setting="max_rows")
        out["max_rows"] = max_rows
        if spec.output_mode is OutputMode.UPDATE and not spec.key_columns:
            raise SinkConfigError(f"{self.name} sink: output mode update needs key_columns",
                                  setting="key_columns")
        return out

    def create(self, spec: SinkSpec) -> MemorySink:
        return MemorySink(spec)


class DashboardKind(MemoryKind):
    """``dashboard``: a live dataset shown on the dashboard page (Power BI streaming dataset)."""

    name = "dashboard"
    description = "live dataset on the dashboard page: chart and table updating as rows arrive"

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        out = super().validate(config, spec)
        if not out["max_rows"]:
            out["max_rows"] = 10_000
        return out
