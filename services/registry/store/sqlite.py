"""The default store: one SQLite file in WAL mode.

One connection serves the process, behind a lock; a registration is one
``BEGIN IMMEDIATE`` transaction, which also serializes writers from other
processes that open the same file.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.services.registry.store.base import SqlStore

__all__ = ["SqliteStore"]


class SqliteStore(SqlStore):
    marker = "?"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None

    def open(self) -> SqliteStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        self._conn = conn
        with self._tx(lock_key="ddl") as cur:
            for stmt in self._ddl():
                cur.execute(stmt)
        return self

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextlib.contextmanager
    def _tx(self, lock_key: str = "") -> Iterator[Any]:
        with self._lock:
            conn = self._conn
            if conn is None:
                raise RuntimeError("the SQLite store is closed")
            cur = conn.cursor()
            try:
                cur.execute("BEGIN IMMEDIATE" if lock_key else "BEGIN")
                try:
                    yield cur
                except BaseException:
                    conn.rollback()
                    raise
                else:
                    conn.commit()
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):  # another process held the file too long
                    raise HeadwaterError(Reason.SERVICE_BUSY, f"the registry's SQLite file is busy: {exc}",
                                         retry_after=0.5) from None
                raise
            finally:
                cur.close()

    def _is_unique_violation(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)
