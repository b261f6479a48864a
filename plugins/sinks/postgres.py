"""``postgres``: insert into a PostgreSQL table, or upsert by document id.

Insert (output mode append): rows go in with one ``COPY`` per batch. Upsert
(output mode update, or ``id_field`` set), after Stream Analytics' Cosmos DB
output: the batch is copied into a session staging table and applied with one
``INSERT ... SELECT ... ON CONFLICT (id) DO UPDATE``:

- compatibility level ``1.2`` (default): insert, or replace the whole stored
  row (columns the batch lacks become NULL);
- ``1.0`` / ``1.1``: merge the row's properties into the stored one (PATCH):
  columns the batch lacks, and NULL values, keep the stored value.

Complete mode replaces the stored rows with the same key as the trigger's rows
(``DELETE ... USING`` the staged rows, null-safe, then ``INSERT``) and keeps the
other groups; the key is ``key_columns`` or every non-numeric column (see
:func:`headwater.sinks.replace_keys`); a result without a key is replaced on each
trigger. The table is created on
the first write and columns are added when the rows gain fields (schema drift).
Each write runs in one transaction that also stores the writer's last applied
checkpoint in ``headwater_sink_checkpoints``, so a replayed write is skipped.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from headwater.errors import HeadwaterError, Reason
from headwater.sinks import (
    Checkpoint,
    OutputMode,
    Sink,
    SinkConfigError,
    SinkKind,
    SinkRowError,
    SinkSpec,
    SinkTransientError,
    check_keys,
    replace_keys,
    require,
)

__all__ = ["PostgresKind", "PostgresSink", "pg_type"]

SIDE_TABLE = "headwater_sink_checkpoints"
_SETTINGS = ("dsn", "table", "schema", "id_field", "compatibility_level", "create_table",
             "add_columns", "connect_timeout_s")


def pg_type(t: pa.DataType) -> str:
    """The PostgreSQL column type for an Arrow type."""
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t) or pa.types.is_uint8(t) \
            or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_uint64(t):
        return "numeric"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_time(t):
        return "time"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    if pa.types.is_nested(t):
        return "jsonb"
    if pa.types.is_dictionary(t):
        return pg_type(t.value_type)
    return "text"


def _csv_ready(table: pa.Table) -> pa.Table:
    """Columns PostgreSQL's CSV COPY reads: nested values as JSON, bytes as hex, µs timestamps."""
    import pyarrow.compute as pc  # here, not at the top: a sink service starts without it

    cols = {}
    for name in table.column_names:
        col = table.column(name)
        t = col.type
        if pa.types.is_dictionary(t):
            col = col.cast(t.value_type)
            t = col.type
        if pa.types.is_nested(t):
            import orjson

            col = pa.array([None if v is None else orjson.dumps(v, default=str).decode()
                            for v in col.to_pylist()], pa.string())
        elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
            col = pa.array([None if v is None else "\\x" + v.hex() for v in col.to_pylist()], pa.string())
        elif pa.types.is_timestamp(t) and t.unit == "ns":
            col = col.cast(pa.timestamp("us", t.tz), safe=False)
        elif pa.types.is_null(t) or pa.types.is_duration(t):
            col = col.cast(pa.string()) if not pa.types.is_duration(t) else pc.cast(col, pa.int64())
        cols[name] = col
    return pa.table(cols)


def _csv(table: pa.Table) -> bytes:
    import pyarrow.csv as pacsv

    buf = io.BytesIO()
    pacsv.write_csv(_csv_ready(table), buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return buf.getvalue()


class PostgresSink(Sink):
    exactly_once = True

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        cfg = spec.config
        self.dsn: str = cfg["dsn"]
        self.schema: str = cfg.get("schema") or "public"
        self.table: str = cfg["table"]
        self.ids: list[str] = list(cfg.get("id_field") or spec.key_columns)
        self.upsert = spec.output_mode is OutputMode.UPDATE or bool(cfg.get("id_field"))
        self.merge = str(cfg.get("compatibility_level", "1.2")) in ("1.0", "1.1")
        self.create_table = cfg.get("create_table", True)
        self.add_columns = cfg.get("add_columns", True)
        self.timeout = int(cfg.get("connect_timeout_s") or 5)
        self._conn: Any = None
        self._columns: dict[str, str] | None = None
        self._stage_cols: tuple[str, ...] | None = None
        self._lock = threading.Lock()
        self._key = f"{spec.name}:{self.schema}.{self.table}"

    # -- connection ------------------------------------------------------------------
    def _where(self) -> str:
        return f"postgres sink {self.name!r} (table {self.schema}.{self.table})"

    def _connect(self) -> Any:
        import psycopg

        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        self._columns, self._stage_cols = None, None
        try:
            self._conn = psycopg.connect(self.dsn, connect_timeout=self.timeout, autocommit=True)
        except psycopg.OperationalError as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            sqlstate = getattr(exc, "sqlstate", None)
            if sqlstate in ("28P01", "28000") or "authentication" in text or "role" in text:
                raise HeadwaterError(Reason.UNAUTHORIZED,
                                     f"{self._where()}: bad credentials: {text}") from None
            if sqlstate == "3D000" or "does not exist" in text:
                raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                     f"{self._where()}: cannot connect: {text}") from None
            raise SinkTransientError(f"{self._where()}: cannot connect: {text}") from None
        except psycopg.ProgrammingError as exc:
            raise SinkConfigError(f"{self._where()}: bad dsn: {exc}", setting="dsn") from None
        return self._conn

    def open(self) -> None:
        conn = self._connect()
        from psycopg import sql

        with conn.transaction():
            conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (sink text, writer text, checkpoint_id bigint NOT NULL, "
                "batch_id bigint NOT NULL, update_time timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (sink, writer))").format(sql.Identifier(self.schema), sql.Identifier(SIDE_TABLE)))

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None

    drop = close

    # -- exactly-once bookkeeping ------------------------------------------------------
    def last_checkpoint(self, writer: str) -> Checkpoint | None:
        with self._lock:
            return self._guard(lambda conn: self._last(conn, writer))

    def _last(self, conn: Any, writer: str, lock: bool = False) -> Checkpoint | None:
        from psycopg import sql

        q = sql.SQL("SELECT checkpoint_id, batch_id FROM {}.{} WHERE sink = %s AND writer = %s").format(
            sql.Identifier(self.schema), sql.Identifier(SIDE_TABLE))
        if lock:
            q = q + sql.SQL(" FOR UPDATE")
        row = conn.execute(q, (self._key, writer)).fetchone()
        return Checkpoint(row[0], row[1], writer) if row else None

    def _guard(self, fn: Any) -> Any:
        import psycopg

        conn = self._connect()
        try:
            return fn(conn)
        except psycopg.OperationalError as exc:
            if conn.broken or conn.closed:
                self._conn = None
                raise SinkTransientError(f"{self._where()}: connection lost: {exc}") from None
            raise SinkTransientError(f"{self._where()}: {exc}") from None
        except psycopg.errors.SerializationFailure as exc:
            raise SinkTransientError(f"{self._where()}: {exc}") from None
        except psycopg.errors.DeadlockDetected as exc:
            raise SinkTransientError(f"{self._where()}: {exc}") from None

    # -- schema ------------------------------------------------------------------------
    def _load_columns(self, conn: Any) -> dict[str, str]:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            (self.schema, self.table)).fetchall()
        return {r[0]: r[1] for r in rows}

    def _ensure_table(self, conn: Any, batch: pa.Table) -> None:
        from psycopg import sql

        if self._columns is None:
            self._columns = self._load_columns(conn)
        tname = sql.Identifier(self.schema, self.table)
        if not self._columns:
            if not self.create_table:
                raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                     f"{self._where()}: the table does not exist and create_table is off")
            defs = [sql.SQL("{} {}").format(sql.Identifier(f.name), sql.SQL(pg_type(f.type)))
                    for f in batch.schema]
            if self.upsert:
                defs.append(sql.SQL("PRIMARY KEY ({})").format(
                    sql.SQL(", ").join(sql.Identifier(i) for i in self.ids)))
            conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(tname, sql.SQL(", ").join(defs)))
            self._columns = self._load_columns(conn)
            return
        new = [f for f in batch.schema if f.name not in self._columns]
        if new:
            if not self.add_columns:
                raise SinkRowError(f"{self._where()}: the rows have field {new[0].name!r} that the table "
                                   "lacks and add_columns is off", rows=range(batch.num_rows),
                                   reason=Reason.SCHEMA_INCOMPATIBLE)
            for f in new:
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    tname, sql.Identifier(f.name), sql.SQL(pg_type(f.type))))
            self._columns = self._load_columns(conn)
            self._stage_cols = None

    # -- writing -----------------------------------------------------------------------
    def write_batch(self, batch: pa.Table, checkpoint: Checkpoint) -> Any:
        if self.upsert:
            batch = self._check_ids(batch)
        with self._lock:
            return self._guard(lambda conn: self._write(conn, batch, checkpoint))

    def _check_ids(self, batch: pa.Table) -> pa.Table:
        import pyarrow.compute as pc

        for field in self.ids:
            if field not in batch.column_names:
                raise SinkRowError(f"{self._where()}: document id field {field!r} is missing from the rows "
                                   f"(row 0 has fields {', '.join(batch.column_names)})",
                                   rows=range(batch.num_rows))
            nulls = pc.is_null(batch.column(field))
            if pc.any(nulls).as_py():
                bad = pc.indices_nonzero(nulls).to_pylist()
                raise SinkRowError(f"{self._where()}: row {bad[0]}: document id field {field!r} is missing "
                                   f"(null){f' in {len(bad)} rows' if len(bad) > 1 else ''}", rows=bad)
        return batch

    def _write_tx(self, conn: Any, batch: pa.Table, checkpoint: Checkpoint) -> Any:
        from psycopg import sql

        try:
            with conn.transaction():
                previous: int | None = None
                if checkpoint.tracked:
                    # Claim the write first: one statement locks the writer's row, refuses a
                    # replay and returns the trigger (checkpoint id) stored before.
                    row = conn.execute(sql.SQL(
                        "WITH old AS (SELECT checkpoint_id FROM {side} WHERE sink = %s AND writer = %s FOR UPDATE) "
                        "INSERT INTO {side} AS s (sink, writer, checkpoint_id, batch_id) VALUES (%s, %s, %s, %s) "
                        "ON CONFLICT (sink, writer) DO UPDATE SET checkpoint_id = EXCLUDED.checkpoint_id, "
                        "batch_id = EXCLUDED.batch_id, update_time = now() "
                        "WHERE (s.checkpoint_id, s.batch_id) < (EXCLUDED.checkpoint_id, EXCLUDED.batch_id) "
                        "RETURNING (SELECT checkpoint_id FROM old)").format(
                            side=sql.Identifier(self.schema, SIDE_TABLE)),
                        (self._key, checkpoint.writer, self._key, checkpoint.writer, checkpoint.checkpoint_id,
                         checkpoint.batch_id)).fetchone()
                    if row is None:
                        return "duplicate"
                    previous = row[0]
                tname = sql.Identifier(self.schema, self.table)
                if not batch.num_rows:  # an empty trigger of a complete output changes nothing
                    return None
                self._ensure_table(conn, batch)
                cols = sql.SQL(", ").join(sql.Identifier(c) for c in batch.column_names)
                keys = replace_keys(self.spec.output_mode, self.ids, batch.schema)
                if self.spec.output_mode is OutputMode.COMPLETE and not self.upsert:
                    if keys:
                        self._replace_rows(conn, self._dedupe(batch, keys), cols, keys)
                        return None
                    if not checkpoint.tracked or previous != checkpoint.checkpoint_id:
                        conn.execute(sql.SQL("TRUNCATE {}").format(tname))
                if self.upsert:
                    self._upsert(conn, self._dedupe(batch), cols)
                else:
                    with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
                            tname, cols)) as cp:
                        cp.write(_csv(batch))
        except BaseException:
            # The transaction rolled back: staging table and added columns with it.
            self._columns, self._stage_cols = None, None
            raise
        return None

    def _write(self, conn: Any, batch: pa.Table, checkpoint: Checkpoint) -> Any:
        import psycopg

        try:
            return self._write_tx(conn, batch, checkpoint)
        except (psycopg.errors.DataError, psycopg.errors.IntegrityError) as exc:
            raise self._row_error(exc, batch) from None
        except psycopg.errors.UndefinedTable:
            self._columns, self._stage_cols = None, None
            raise SinkTransientError(f"{self._where()}: the table vanished; recreating it") from None
        except psycopg.errors.InvalidColumnReference as exc:
            raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                 f"{self._where()}: upsert needs a unique index or primary key on "
                                 f"{', '.join(self.ids)}: {exc}") from None
        return None

    def _row_error(self, exc: Exception, batch: pa.Table) -> SinkRowError:
        import re

        diag = getattr(exc, "diag", None)
        context = (getattr(diag, "context", None) or "") if diag else ""
        primary = (getattr(diag, "message_primary", None) or str(exc)).strip()
        m = re.search(r"line (\d+)", context)
        if m:
            row = int(m.group(1)) - 1
            col = re.search(r"column (\w+)", context)
            where = f", column {col.group(1)!r}" if col else ""
            value = ""
            if col and col.group(1) in batch.column_names and 0 <= row < batch.num_rows:
                value = f" (value {batch.column(col.group(1))[row].as_py()!r})"
            return SinkRowError(f"{self._where()}: row {row}{where}{value}: type conflict: {primary}",
                                rows=[row], reason=Reason.SCHEMA_INCOMPATIBLE)
        return SinkRowError(f"{self._where()}: {primary}", rows=range(batch.num_rows),
                            reason=Reason.SCHEMA_INCOMPATIBLE)

    def _dedupe(self, batch: pa.Table, ids: list[str] | None = None) -> pa.Table:
        """One row per id (an upsert cannot touch a row twice): the last, or all merged in order."""
        import polars as pl
        import pyarrow.compute as pc

        ids = self.ids if ids is None else ids
        if len(ids) == 1 and pc.count_distinct(batch.column(ids[0])).as_py() == batch.num_rows:
            return batch
        df = pl.from_arrow(batch)
        assert isinstance(df, pl.DataFrame)
        if not df.select(pl.struct(ids).is_duplicated().any()).item():
            return batch
        if not self.merge:
            return df.unique(subset=ids, keep="last", maintain_order=True).to_arrow()
        others = [c for c in df.columns if c not in ids]
        return df.group_by(ids, maintain_order=True).agg(
            [pl.col(c).drop_nulls().last() for c in others]).select(df.columns).to_arrow()

    def _stage(self, conn: Any, batch: pa.Table, cols: Any) -> Any:
        """Copy the batch into this session's staging table (shaped like the table); its name."""
        from psycopg import sql

        stage = sql.Identifier(f"hw_stage_{abs(hash(self._key)) % 10**8}")
        names = tuple(batch.column_names)
        if self._stage_cols != names:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(stage))
            conn.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {}) ON COMMIT DELETE ROWS").format(
                stage, sql.Identifier(self.schema, self.table)))
            self._stage_cols = names
        with conn.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(stage, cols)) as cp:
            cp.write(_csv(batch))
        return stage

    def _replace_rows(self, conn: Any, batch: pa.Table, cols: Any, keys: list[str]) -> None:
        """Complete mode: the staged rows replace the stored rows with the same key (nulls match)."""
        from psycopg import sql

        stage = self._stage(conn, batch, cols)
        tname = sql.Identifier(self.schema, self.table)
        match = sql.SQL(" AND ").join(sql.SQL("t.{0} IS NOT DISTINCT FROM s.{0}").format(sql.Identifier(k))
                                     for k in keys)
        conn.execute(sql.SQL("DELETE FROM {} AS t USING {} AS s WHERE ").format(tname, stage) + match)
        conn.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(tname, cols, cols, stage))

    def _upsert(self, conn: Any, batch: pa.Table, cols: Any) -> None:
        from psycopg import sql

        assert self._columns is not None
        names = tuple(batch.column_names)
        stage = self._stage(conn, batch, cols)
        tname = sql.Identifier(self.schema, self.table)
        if self.merge:
            targets = [c for c in names if c not in self.ids]
            sets = [sql.SQL("{0} = COALESCE(EXCLUDED.{0}, t.{0})").format(sql.Identifier(c)) for c in targets]
        else:
            targets = [c for c in self._columns if c not in self.ids]
            sets = [sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in targets]
        action = sql.SQL("DO UPDATE SET ") + sql.SQL(", ").join(sets) if sets else sql.SQL("DO NOTHING")
        conn.execute(sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM {} ON CONFLICT ({}) ").format(
            tname, cols, cols, stage, sql.SQL(", ").join(sql.Identifier(i) for i in self.ids)) + action)


def _check_dsn_files(dsn: str, roots: Any) -> None:
    """Files a DSN names (``sslkey=``, ``passfile=``...) lie under the service's ``allowed_paths``."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from headwater.paths import confine_dsn_files

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise SinkConfigError("postgres sink: setting 'dsn' is not a connection string (key=value ... or "
                              "postgresql://...)", setting="dsn") from None
    confine_dsn_files(params, roots, "dsn")


class PostgresKind(SinkKind):
    """``postgres``: insert into a table, or upsert by document id (Cosmos DB semantics)."""

    name = "postgres"
    description = "PostgreSQL table: COPY inserts, or upserts by document id (compatibility 1.0/1.1 merge, 1.2 replace)"
    exactly_once = True
    output_modes = (OutputMode.APPEND, OutputMode.UPDATE, OutputMode.COMPLETE)

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        check_keys(config, _SETTINGS, self.name)
        out = dict(config)
        require(out, "dsn", self.name)
        require(out, "table", self.name)
        if spec.allowed_roots:
            _check_dsn_files(str(out["dsn"]), spec.allowed_roots)
        ids = out.get("id_field")
        if isinstance(ids, str):
            ids = [ids]
        if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids)):
            raise SinkConfigError("postgres sink: setting 'id_field' must be a column name or a list of them",
                                  setting="id_field")
        if ids:
            out["id_field"] = ids
        else:
            out.pop("id_field", None)
        if spec.output_mode is OutputMode.UPDATE and not ids and not spec.key_columns:
            raise SinkConfigError("postgres sink: an upsert output needs the document id field: set 'id_field' "
                                  "(or the sink's key_columns)", setting="id_field")
        level = str(out.get("compatibility_level", "1.2"))
        if level not in ("1.0", "1.1", "1.2"):
            raise SinkConfigError(f"postgres sink: setting 'compatibility_level' must be 1.0, 1.1 or 1.2, "
                                  f"got {level!r}", setting="compatibility_level")
        out["compatibility_level"] = level
        for flag in ("create_table", "add_columns"):
            if flag in out and not isinstance(out[flag], bool):
                raise SinkConfigError(f"postgres sink: setting {flag!r} must be true or false", setting=flag)
        return out

    def create(self, spec: SinkSpec) -> PostgresSink:
        return PostgresSink(spec)
