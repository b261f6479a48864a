"""The memory table (Spark's memory sink) and the dashboard dataset (Power BI streaming dataset).

Rows live in memory as Arrow tables; a flush (the writer's checkpoint) writes a
snapshot to the sink's data folder with the last applied checkpoint of each
writer in the same file, so a restarted service serves the same table and a
replayed write is not applied twice.

Output modes: append adds rows; update replaces rows with the same key columns;
complete replaces the whole table on the first write of each trigger
(checkpoint id; every write when the writer sends none).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Mapping

import pyarrow as pa

from headwater.sinks import (
    Checkpoint,
    OutputMode,
    ReadableSink,
    SinkConfigError,
    SinkKind,
    SinkSpec,
    check_keys,
)

__all__ = ["MemoryKind", "DashboardKind", "MemorySink"]

_SNAPSHOT = "table.arrow"


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
        self.max_rows = int(spec.config.get("max_rows") or 0)

    # -- persistence -----------------------------------------------------------------
    def _path(self) -> Path | None:
        return None if self.spec.data_dir is None else Path(self.spec.data_dir) / _SNAPSHOT

    def open(self) -> None:
        path = self._path()
        if path is None or not path.exists():
            return
        with pa.memory_map(str(path)) as source:
            table = pa.ipc.open_file(source).read_all()
        meta = json.loads((table.schema.metadata or {}).get(b"headwater", b"{}"))
        self._parts = [table.replace_schema_metadata(None)] if table.num_columns else []
        self._last = {w: Checkpoint(c, b, w) for w, (c, b) in meta.get("last", {}).items()}
        self._trigger = meta.get("trigger")

    def flush(self) -> None:
        path = self._path()
        with self._lock:
            if path is None or not self._dirty:
                return
            table = self._table_locked()
            meta = {"last": {w: [c.checkpoint_id, c.batch_id] for w, c in self._last.items()},
                    "trigger": self._trigger}
            self._dirty = False
        table = table.replace_schema_metadata({"headwater": json.dumps(meta)})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def drop(self) -> None:
        with self._lock:
            self._parts = []
        path = self._path()
        if path is not None and path.exists():
            path.unlink()

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
            if mode is OutputMode.COMPLETE:
                if not checkpoint.tracked or checkpoint.checkpoint_id != self._trigger:
                    self._parts = []
                self._trigger = checkpoint.checkpoint_id
                self._parts.append(batch)
            elif mode is OutputMode.UPDATE:
                self._parts = [self._upsert(self._table_locked(), batch)]
            else:
                self._parts.append(batch)
            if self.max_rows:
                table = self._table_locked()
                if table.num_rows > self.max_rows:
                    self._parts = [table.slice(table.num_rows - self.max_rows)]
            if checkpoint.tracked:
                self._last[checkpoint.writer] = checkpoint
            self._dirty = True
        return None

    def _upsert(self, table: pa.Table, batch: pa.Table) -> pa.Table:
        import polars as pl

        keys = list(self.spec.key_columns)
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
    settings: tuple[str, ...] = ("max_rows",)

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        check_keys(config, self.settings, self.name)
        out = dict(config)
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
    settings = ("max_rows", "key", "value", "time", "title", "chart")
    #: ``chart: {x, y, series}`` (the demo's shape) is accepted for key, value, time.
    _chart_names = {"x": "key", "y": "value", "series": "time", "key": "key", "value": "value", "time": "time"}

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        out = super().validate(config, spec)
        chart = out.pop("chart", None)
        if chart is not None:
            if not isinstance(chart, dict) or set(chart) - set(self._chart_names):
                raise SinkConfigError("dashboard sink: setting 'chart' must be a mapping with x (key column), "
                                      "y (value column) and series (time column)", setting="chart")
            for name, column in chart.items():
                out.setdefault(self._chart_names[name], column)
        if not out["max_rows"]:
            out["max_rows"] = 10_000
        for key in ("key", "value", "time", "title"):
            if key in out and not isinstance(out[key], str):
                raise SinkConfigError(f"dashboard sink: setting {key!r} must be a column name (string)",
                                      setting=key)
        return out
