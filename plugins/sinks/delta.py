"""``delta``: a Delta Lake table through the deltalake library (Spark's ``format("delta")``).

Append adds rows with ``schema_mode="merge"`` (Spark's ``mergeSchema``: new
fields become new columns); complete merges each trigger's rows by key (as update;
the key defaults to the non-numeric columns, see ``replace_keys``) and overwrites
the table on each trigger only for a result without a key;
update merges by the key columns. Rows are buffered and committed as one Delta
commit at the writer's checkpoint (flush), when the buffer reaches
``commit_rows`` rows, or ``commit_interval_s`` after its first row. Every
commit carries a Delta application transaction (``txn``: app id
``headwater:<sink>:<writer>``, version = the last write's checkpoint sequence),
so a replayed write is recognised from the table's own log. A local ``path``
lies under the service's ``allowed_paths``; object-store URIs (``s3://``,
``az://``, ...) are not server files and are taken as they are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any, cast

import pyarrow as pa

from headwater.errors import HeadwaterError, Reason
from headwater.paths import confine, is_remote
from headwater.sinks import (
    Checkpoint,
    OutputMode,
    Sink,
    SinkConfigError,
    SinkKind,
    SinkRowError,
    SinkSpec,
    check_keys,
    replace_keys,
    require,
)

__all__ = ["DeltaKind", "DeltaSink"]

_SETTINGS = ("path", "partition_by", "merge_schema", "commit_rows", "commit_interval_s", "storage_options")


class DeltaSink(Sink):
    exactly_once = True

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        cfg = spec.config
        self.path = str(cfg["path"])
        self.partition_by = cfg.get("partition_by") or None
        self.merge_schema = cfg.get("merge_schema", True)
        self.commit_rows = int(cfg.get("commit_rows", 100_000))
        self.commit_s = float(cfg.get("commit_interval_s", 1.0))
        self.storage = cfg.get("storage_options") or None
        self._buf: list[pa.Table] = []
        self._rows = 0
        self._since = 0.0
        self._pending: dict[str, Checkpoint] = {}
        self._last: dict[str, Checkpoint | None] = {}
        self._trigger: int | None = None
        self._lock = threading.RLock()

    def _app(self, writer: str) -> str:
        return f"headwater:{self.name}:{writer}"

    def _table(self) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.path, storage_options=self.storage)
        except TableNotFoundError:
            return None

    def last_checkpoint(self, writer: str) -> Checkpoint | None:
        with self._lock:
            if writer in self._pending:
                return self._pending[writer]
            if writer not in self._last:
                dt = self._table()
                version = dt.transaction_version(self._app(writer)) if dt is not None else None
                self._last[writer] = None if version is None else Checkpoint(version >> 20, version & 0xFFFFF,
                                                                             writer)
            return self._last[writer]

    def write_batch(self, batch: pa.Table, checkpoint: Checkpoint) -> Any:
        with self._lock:
            if checkpoint.tracked and not checkpoint.after(self.last_checkpoint(checkpoint.writer)):
                return "duplicate"
            if self.spec.output_mode is OutputMode.COMPLETE and not replace_keys(
                    OutputMode.COMPLETE, self.spec.key_columns, batch.schema) and (
                    not checkpoint.tracked or checkpoint.checkpoint_id != self._trigger):
                if self._buf:
                    self._commit()
                self._trigger = checkpoint.checkpoint_id
                self._replace = True
            if self.spec.output_mode is OutputMode.UPDATE:
                missing = [k for k in self.spec.key_columns if k not in batch.column_names]
                if missing:
                    raise SinkRowError(f"delta sink {self.name!r}: key column {missing[0]!r} is missing "
                                       "from the rows", rows=range(batch.num_rows))
            if not self._buf:
                self._since = time.monotonic()
            self._buf.append(batch)
            self._rows += batch.num_rows
            if checkpoint.tracked:
                self._pending[checkpoint.writer] = checkpoint
            if self._rows >= self.commit_rows:
                self._commit()
        return None

    def poll(self) -> None:
        with self._lock:
            if self._buf and time.monotonic() - self._since >= self.commit_s:
                self._commit()

    def flush(self) -> None:
        with self._lock:
            if self._buf:
                self._commit()

    def _commit(self) -> None:
        from deltalake import CommitProperties, Transaction, write_deltalake
        from deltalake.exceptions import DeltaError, SchemaMismatchError

        from headwater.plugins.sinks.memory import concat

        data = concat(self._buf)
        if not data.num_columns:  # an empty trigger with no schema: overwrite with nothing known
            if getattr(self, "_replace", False) and self._table() is not None:
                self._table().delete()
            self._reset()
            self._replace = False
            return
        txns = [Transaction(self._app(w), c.sequence) for w, c in self._pending.items()]
        props = CommitProperties(app_transactions=txns, custom_metadata={"headwater.sink": self.name})
        mode = self.spec.output_mode
        try:
            keys = replace_keys(mode, self.spec.key_columns, data.schema)
            if keys:  # update, and complete by key: one row per key, MERGEd into the table
                import polars as pl

                frame = cast(pl.DataFrame, pl.from_arrow(data))  # a Table converts to a DataFrame
                data = frame.unique(subset=keys, keep="last", maintain_order=True).to_arrow()
            if keys and self._table() is not None:
                pred = " AND ".join(f't."{k}" IS NOT DISTINCT FROM s."{k}"' for k in keys)
                (self._table().merge(data, pred, source_alias="s", target_alias="t", commit_properties=props,
                                     merge_schema=self.merge_schema)
                 .when_matched_update_all().when_not_matched_insert_all().execute())
            elif mode is OutputMode.COMPLETE and getattr(self, "_replace", False):
                write_deltalake(self.path, data, mode="overwrite", schema_mode="overwrite",
                                partition_by=self.partition_by, commit_properties=props,
                                storage_options=self.storage)
            else:
                write_deltalake(self.path, data, mode="append",
                                schema_mode="merge" if self.merge_schema else None,
                                partition_by=self.partition_by, commit_properties=props,
                                storage_options=self.storage)
        except SchemaMismatchError as exc:
            self._reset()
            raise SinkRowError(f"delta sink {self.name!r} ({self.path}): type conflict: {exc}",
                               rows=range(data.num_rows), reason=Reason.SCHEMA_INCOMPATIBLE) from None
        except DeltaError as exc:
            self._reset()
            raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                 f"delta sink {self.name!r} ({self.path}): {exc}") from None
        self._last.update(self._pending)
        self._reset()
        self._replace = False

    def _reset(self) -> None:
        self._buf, self._rows = [], 0
        self._pending.clear()


class DeltaKind(SinkKind):
    """``delta``: Delta Lake table, append with mergeSchema, complete overwrite, update merge."""

    name = "delta"
    description = "Delta Lake table (deltalake): append + mergeSchema, complete overwrite, update merge by key"
    exactly_once = True
    output_modes = (OutputMode.APPEND, OutputMode.UPDATE, OutputMode.COMPLETE)

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        check_keys(config, _SETTINGS, self.name)
        out = dict(config)
        require(out, "path", self.name)
        if spec.allowed_roots and not is_remote(str(out["path"])):
            out["path"] = str(confine(str(out["path"]), spec.allowed_roots, "path"))
        pb = out.get("partition_by")
        if isinstance(pb, str):
            out["partition_by"] = [pb]
        if spec.output_mode is OutputMode.UPDATE and not spec.key_columns:
            raise SinkConfigError("delta sink: output mode update needs key_columns", setting="key_columns")
        for key in ("commit_rows", "commit_interval_s"):
            if key in out and (isinstance(out[key], bool) or not isinstance(out[key], (int, float))
                               or out[key] <= 0):
                raise SinkConfigError(f"delta sink: setting {key!r} must be a number > 0", setting=key)
        return out

    def create(self, spec: SinkSpec) -> DeltaSink:
        return DeltaSink(spec)
