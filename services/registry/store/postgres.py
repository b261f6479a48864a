"""The PostgreSQL store: tables in one PostgreSQL schema, shared by registry replicas.

A small pool of connections serves the service's worker threads. A
registration takes a transaction-scoped advisory lock on (group, name)
(``pg_advisory_xact_lock``), so replicas register one definition once; the
``UNIQUE(group_id, name, version)`` constraint backs it up.
"""

from __future__ import annotations

import contextlib
import queue
import re
from collections.abc import Iterator
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.services.registry.store.base import SqlStore

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresStore(SqlStore):
    marker = "%s"

    def __init__(self, dsn: str, schema: str = "headwater_registry", pool_size: int = 4) -> None:
        if not _SCHEMA_NAME.match(schema):
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"setting 'postgres_schema': {schema!r} must be lower-case letters, digits "
                                 "and _ (a PostgreSQL schema name)", metadata={"field": "postgres_schema"})
        if not dsn:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 "setting 'postgres_dsn' is empty: give a libpq connection string "
                                 "(postgresql://user@host:5432/db)", metadata={"field": "postgres_dsn"})
        self.dsn, self.schema, self.pool_size = dsn, schema, max(1, pool_size)
        self.prefix = f'"{schema}".'
        self._pool: queue.Queue = queue.Queue()
        self._conns: list[Any] = []

    def open(self) -> PostgresStore:
        import psycopg

        for _ in range(self.pool_size):
            try:
                conn = psycopg.connect(self.dsn, autocommit=True)
            except psycopg.OperationalError as exc:
                self.close()
                raise HeadwaterError(Reason.SERVICE_BUSY,
                                     f"cannot connect to PostgreSQL ({self.dsn}): {exc}".strip()) from None
            self._conns.append(conn)
            self._pool.put(conn)
        with self._tx(lock_key="ddl") as cur:
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            for stmt in self._ddl():
                cur.execute(stmt)
        return self

    def close(self) -> None:
        for conn in self._conns:
            with contextlib.suppress(Exception):
                conn.close()
        self._conns.clear()

    def drop(self) -> None:
        """Drop the schema and everything in it (tests)."""
        with self._tx() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    @contextlib.contextmanager
    def _tx(self, lock_key: str = "") -> Iterator[Any]:
        import psycopg

        conn = self._pool.get()
        try:
            if conn.closed or conn.broken:  # PostgreSQL restarted or the link dropped: reconnect
                conn = self._reconnect(conn)
            with conn.transaction(), conn.cursor() as cur:
                if lock_key:
                    cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                                (f"{self.schema}/{lock_key}",))
                yield cur
        except psycopg.OperationalError as exc:
            raise HeadwaterError(Reason.SERVICE_BUSY, f"PostgreSQL is unavailable: {exc}".strip(),
                                 retry_after=1.0) from None
        finally:
            self._pool.put(conn)

    def _reconnect(self, old: Any) -> Any:
        import psycopg

        with contextlib.suppress(Exception):
            old.close()
        conn = psycopg.connect(self.dsn, autocommit=True)
        self._conns = [c for c in self._conns if c is not old] + [conn]
        return conn

    def _is_unique_violation(self, exc: BaseException) -> bool:
        import psycopg

        return isinstance(exc, psycopg.errors.UniqueViolation)
