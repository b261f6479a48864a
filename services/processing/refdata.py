"""Reference data that refreshes, as Stream Analytics has it.

Sources: PostgreSQL (a snapshot query, optionally a delta query, every
``refresh_interval``) and files named by a ``{date}``/``{time}`` path pattern (a new
file per period, picked up at its time). Each load is a **snapshot** valid from a
time; a stream event joins the snapshot valid at its event time (the newest whose
``valid_from`` is at or before the event's timestamp):

- the first snapshot (at job start) is valid from the beginning of time;
- a PostgreSQL refresh at wall time T is valid from T (``@deltaEndTime`` of its delta
  query); a file is valid from the time its path names.

A refresh that fails keeps the last good snapshot (the caller counts the failure
and logs it); a snapshot over ``max_reference_bytes`` is refused with the limit.
The SQL that runs is the configured query only, as a role that cannot read the database
server's files (a superuser or a member of pg_read_server_files / pg_execute_server_program
is refused before the query runs), inside a READ ONLY transaction, as
one server-side cursor (``DECLARE ... CURSOR FOR`` takes one SELECT or VALUES, so a
second statement or a write is refused by PostgreSQL itself), with a statement
timeout; the delta query's times go as bound parameters, never as text.
"""

from __future__ import annotations

import datetime as dt
import decimal
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from headwater.errors import HeadwaterError, Reason
from headwater.services.processing.exec.join import BEGINNING, ReferenceVersions
from headwater.v1 import processing_pb2 as pb

__all__ = ["ReferenceVersions", "ReferenceSource", "RefreshState", "reference_source", "check_reference_input"]

log = logging.getLogger("headwater.processing.reference")

@dataclass
class RefreshState:
    """What JobMetrics.references shows of one input."""

    refreshes: int = 0
    failures: int = 0
    rows: int = 0
    valid_from_us: int = 0
    last_error: str = ""
    interval_s: float = 0.0
    extra: dict = field(default_factory=dict)


def _plain(v: Any) -> Any:
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, bytes | memoryview):
        return bytes(v).decode(errors="replace")
    return str(v)


def _too_big(alias: str, size: int, limit: int) -> HeadwaterError:
    return HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {alias}: the snapshot is over "
                          f"max_reference_bytes ({size} > {limit} bytes): narrow the query or raise the "
                          "processing setting", metadata={"field": "max_reference_bytes"})


class ReferenceSource:
    """Loads snapshots of one reference input."""

    alias: str
    interval_s: float

    def load(self, now_us: int, first: bool) -> tuple[int, list[dict]] | None:
        """The next snapshot (valid from, rows), or None when nothing changed."""
        raise NotImplementedError


class PostgresReference(ReferenceSource):
    def __init__(self, alias: str, dsn: str, query: str, delta_query: str, interval_s: float,
                 max_bytes: int, timeout_s: float) -> None:
        self.alias, self.dsn, self.query, self.delta = alias, dsn, query.strip().rstrip(";"), delta_query.strip().rstrip(";")
        self.interval_s, self.max_bytes, self.timeout_s = interval_s, max_bytes, timeout_s
        self.rows: list[dict] = []
        self.last_us = 0

    def _run(self, query: str, params: dict | None) -> list[dict]:
        import psycopg
        from psycopg.rows import dict_row

        try:
            with psycopg.connect(self.dsn, connect_timeout=max(1, int(self.timeout_s)), autocommit=False) as conn:
                conn.execute("SET TRANSACTION READ ONLY")
                _refuse_file_rights(conn, self.alias)
                conn.execute(f"SET LOCAL statement_timeout = {int(self.timeout_s * 1000)}")
                with conn.cursor(name="headwater_reference", row_factory=dict_row) as cur:
                    cur.execute(query, params)
                    rows, size = [], 0
                    while batch := cur.fetchmany(2000):
                        for r in batch:
                            enc = orjson.dumps(r, default=_plain)
                            size += len(enc)
                            if size > self.max_bytes:
                                raise _too_big(self.alias, size, self.max_bytes)
                            rows.append(orjson.loads(enc))
                conn.rollback()
                return rows
        except psycopg.Error as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {self.alias}: PostgreSQL refused the "
                                 f"query: {str(exc).strip()}", metadata={"field": "reference_query"}) from None

    def load(self, now_us: int, first: bool) -> tuple[int, list[dict]] | None:
        if first or not self.delta:
            rows = self._run(self.query, None)
        else:
            start = dt.datetime.fromtimestamp(self.last_us / 1e6, dt.UTC)
            end = dt.datetime.fromtimestamp(now_us / 1e6, dt.UTC)
            q = self.delta.replace("%", "%%").replace("@deltaStartTime", "%(delta_start_time)s") \
                .replace("@deltaEndTime", "%(delta_end_time)s")
            changes = self._run(q, {"delta_start_time": start, "delta_end_time": end})
            rows = _apply_delta(self.alias, list(self.rows), changes)
        self.rows, self.last_us = rows, now_us
        return (BEGINNING if first else now_us), rows


#: What lets a PostgreSQL session read or run things on the database server's host: a
#: SELECT is enough for pg_read_file, pg_ls_dir, lo_import or COPY ... PROGRAM's roles.
_FILE_RIGHTS = """
SELECT r.rolsuper OR pg_has_role(current_user, 'pg_read_server_files', 'MEMBER')
       OR pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER')
FROM pg_roles r WHERE r.rolname = current_user
"""


def _refuse_file_rights(conn: Any, alias: str) -> None:
    """The query a job carries is a client's text: it runs only as a role that cannot reach
    the server's files or programs (a superuser's ``SELECT pg_read_file('/etc/passwd')``
    is read-only, so READ ONLY alone does not stop it)."""
    row = conn.execute(_FILE_RIGHTS).fetchone()
    if row is None or row[0]:
        who = conn.execute("SELECT current_user").fetchone()[0]
        raise HeadwaterError(
            Reason.INVALID_ARGUMENT,
            f"reference input {alias}: the PostgreSQL role {who!r} may read the database server's files "
            "(superuser, pg_read_server_files or pg_execute_server_program): connect as a role that has "
            "only SELECT on the reference tables", metadata={"field": "dsn"})


def _apply_delta(alias: str, rows: list[dict], changes: list[dict]) -> list[dict]:
    """Changes in order: ``_operation`` 1 / ``insert`` adds the row, -1 / ``delete``
    removes one row equal to it (an update is a delete and an insert)."""
    def key(r: dict) -> bytes:
        return orjson.dumps(r, option=orjson.OPT_SORT_KEYS)

    for ch in changes:
        op = ch.pop("_operation", None)
        op = str(op).strip().lower() if op is not None else ""
        if op in ("1", "insert", "i"):
            rows.append(ch)
        elif op in ("-1", "delete", "d"):
            k = key(ch)
            for i, r in enumerate(rows):
                if key(r) == k:
                    del rows[i]
                    break
        else:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {alias}: a delta query row needs "
                                 f"_operation 1 (insert) or -1 (delete), got {op or 'none'!r}",
                                 metadata={"field": "reference_delta_query"})
    return rows


class FilesReference(ReferenceSource):
    def __init__(self, alias: str, pattern: Any, interval_s: float, max_bytes: int) -> None:
        self.alias, self.pattern, self.interval_s, self.max_bytes = alias, pattern, interval_s, max_bytes
        self.current: tuple[str, int, int] | None = None

    def load(self, now_us: int, first: bool) -> tuple[int, list[dict]] | None:
        from headwater.services.processing.files import read_events

        files = [f for f in self.pattern.files() if f.time_us <= now_us]
        if not files:
            if first:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {self.alias}: no file matches "
                                     f"{self.pattern.text} yet", metadata={"field": "path_pattern"})
            return None
        f = files[-1]
        mtime = int(f.path.stat().st_mtime_ns)
        ident = (str(f.path), f.time_us, mtime)
        if ident == self.current:
            return None
        if f.size > self.max_bytes:
            raise _too_big(self.alias, f.size, self.max_bytes)
        bodies, _ = read_events(f, self.max_bytes)
        rows = [orjson.loads(b) for b in bodies]
        self.current = ident
        if first:
            return BEGINNING, rows
        # A file valid from the time its path names; a single file changed in place from now.
        return (f.time_us if self.pattern.timed else now_us), rows


def _roots(config: Any) -> list[Path]:
    from headwater.config import headwater_home
    from headwater.paths import allowed_roots

    return allowed_roots(config) if config is not None else [headwater_home() / "processing"]


def is_refreshed(inp: pb.JobInput) -> bool:
    return inp.kind == pb.INPUT_KIND_REFERENCE and bool(inp.reference_query or inp.path_pattern)


def check_reference_input(inp: pb.JobInput, config: Any) -> None:
    """CreateJob's checks of a PostgreSQL or path-pattern reference input (INVALID_ARGUMENT naming the field)."""
    from headwater.services.processing.files import PathPattern

    def bad(msg: str, fld: str) -> HeadwaterError:
        return HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {inp.alias}: {msg}", metadata={"field": fld})

    if inp.reference_query and inp.path_pattern:
        raise bad("give reference_query (PostgreSQL) or path_pattern (files), not both", "reference_query")
    if inp.reference_query:
        if not inp.dsn:
            raise bad("reference_query needs dsn (the PostgreSQL connection, or secret:NAME)", "dsn")
        if not inp.dsn.startswith("secret:"):
            _check_dsn(inp.alias, inp.dsn, config)
        if inp.reference_delta_query and not (inp.refresh_interval.seconds or inp.refresh_interval.nanos):
            raise bad("reference_delta_query needs refresh_interval", "refresh_interval")
    elif inp.reference_delta_query or inp.dsn:
        raise bad("reference_delta_query and dsn go with reference_query", "reference_query")
    if inp.path_pattern:
        PathPattern(inp.path_pattern, _roots(config), "path_pattern", inp.date_format, inp.time_format)


def _check_dsn(alias: str, dsn: str, config: Any) -> None:
    """A DSN that parses, whose files (``sslkey=``, ``passfile=``, ...) lie under ``allowed_paths``."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    from headwater.paths import confine_dsn_files

    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {alias}: dsn is not a PostgreSQL connection "
                             "string (key=value ... or postgresql://...)", metadata={"field": "dsn"}) from None
    confine_dsn_files(params, _roots(config), "dsn")


def reference_source(inp: pb.JobInput, config: Any) -> ReferenceSource | None:
    """The source of a refreshed reference input (None for static rows or a file read once)."""
    if not is_refreshed(inp):
        return None
    check_reference_input(inp, config)
    interval = inp.refresh_interval.ToNanoseconds() / 1e9 if inp.HasField("refresh_interval") else 0.0
    max_bytes = int(getattr(config, "max_reference_bytes", 100 * 2**20))
    if inp.reference_query:
        from headwater.secrets import SecretStore, resolve

        store = SecretStore(config.secrets_path()) if config is not None and hasattr(config, "secrets_path") else None
        dsn = resolve(inp.dsn, store, "dsn") if store is not None else inp.dsn
        _check_dsn(inp.alias, dsn, config)
        return PostgresReference(inp.alias, dsn, inp.reference_query, inp.reference_delta_query, interval, max_bytes,
                                 float(getattr(config, "reference_query_timeout_s", 30.0)))
    from headwater.services.processing.files import PathPattern

    pattern = PathPattern(inp.path_pattern, _roots(config), "path_pattern", inp.date_format, inp.time_format)
    return FilesReference(inp.alias, pattern, interval, max_bytes)


def now_us() -> int:
    return int(time.time() * 1_000_000)
