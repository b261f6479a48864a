"""SQL shared by both stores; subclasses give the connection, placeholders and locking.

Tables (prefixed by the PostgreSQL schema in the PostgreSQL store):

``schema_groups(group_id PK, format, compatibility, create_time, update_time)``
``schemas(id PK, group_id, name, version, format, definition, fingerprint,
create_time, deleted)`` with ``UNIQUE(group_id, name, version)``.

Deletion is soft (``deleted = 1``) so a version number and an id are never
given out twice. Registration runs in one transaction that holds a lock on
(group, name): the duplicate lookup, the compatibility check and the insert
see the same versions, so concurrent registrations of one definition yield
one id.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.services.registry.model import Group, Version

__all__ = ["SqlStore"]

_VERSION_COLS = "id, group_id, name, version, format, definition, fingerprint, create_time"


class SqlStore(ABC):
    """Groups and versions in SQL tables."""

    #: Parameter marker of the driver (``?`` or ``%s``).
    marker = "?"
    #: Table name prefix (``"schema".`` for PostgreSQL).
    prefix = ""

    @abstractmethod
    def open(self) -> SqlStore:
        """Connect and create the tables when missing."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    @contextlib.contextmanager
    def _tx(self, lock_key: str = "") -> Iterator[Any]:
        """A cursor inside one transaction; with ``lock_key``, serialized with others on that key."""

    @abstractmethod
    def _is_unique_violation(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the driver's unique-constraint violation."""

    # -- helpers -----------------------------------------------------------------
    def _sql(self, text: str) -> str:
        text = text.replace("{g}", f"{self.prefix}schema_groups").replace("{s}", f"{self.prefix}schemas")
        return text.replace("?", self.marker) if self.marker != "?" else text

    def _ddl(self) -> list[str]:
        return [self._sql(q) for q in (
            ("CREATE TABLE IF NOT EXISTS {g} (group_id TEXT PRIMARY KEY, format TEXT NOT NULL, "
             "compatibility TEXT NOT NULL, create_time DOUBLE PRECISION NOT NULL, "
             "update_time DOUBLE PRECISION NOT NULL)"),
            ("CREATE TABLE IF NOT EXISTS {s} (id TEXT PRIMARY KEY, group_id TEXT NOT NULL, "
             "name TEXT NOT NULL, version INTEGER NOT NULL, format TEXT NOT NULL, definition TEXT NOT NULL, "
             "fingerprint TEXT NOT NULL, create_time DOUBLE PRECISION NOT NULL, "
             "deleted INTEGER NOT NULL DEFAULT 0, UNIQUE (group_id, name, version))"),
            "CREATE INDEX IF NOT EXISTS schemas_by_content ON {s} (group_id, name, fingerprint)",
        )]

    @staticmethod
    def _group(row: Sequence[Any] | None) -> Group | None:
        return None if row is None else Group(row[0], row[1], row[2], float(row[3]), float(row[4]))

    @staticmethod
    def _version(row: Sequence[Any] | None) -> Version | None:
        if row is None:
            return None
        return Version(row[0], row[1], row[2], int(row[3]), row[4], row[5], row[6], float(row[7]))

    def _one(self, cur: Any, sql: str, *params: Any) -> Any:
        cur.execute(self._sql(sql), params)
        return cur.fetchone()

    def _all(self, cur: Any, sql: str, *params: Any) -> list[Any]:
        cur.execute(self._sql(sql), params)
        return cur.fetchall()

    # -- groups ------------------------------------------------------------------
    def create_group(self, group: Group, *, idempotent: bool = False) -> Group:
        """Insert ``group``; RESOURCE_ALREADY_EXISTS if taken (unless ``idempotent`` and identical)."""
        with self._tx(lock_key=f"group:{group.group_id}") as cur:
            existing = self._group(self._one(cur, "SELECT * FROM {g} WHERE group_id = ?", group.group_id))
            if existing is not None:
                if idempotent and (existing.format, existing.compatibility) == (group.format, group.compatibility):
                    return existing
                raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS,
                                     f"schema group {group.group_id!r} already exists "
                                     f"(format {existing.format}, compatibility {existing.compatibility})",
                                     metadata={"resource": f"schemaGroups/{group.group_id}"})
            cur.execute(self._sql("INSERT INTO {g} VALUES (?, ?, ?, ?, ?)"),
                        (group.group_id, group.format, group.compatibility, group.create_time, group.update_time))
        return group

    def get_group(self, group_id: str) -> Group | None:
        with self._tx() as cur:
            return self._group(self._one(cur, "SELECT * FROM {g} WHERE group_id = ?", group_id))

    def list_groups(self, after: str, limit: int) -> list[Group]:
        with self._tx() as cur:
            rows = self._all(cur, "SELECT * FROM {g} WHERE group_id > ? ORDER BY group_id LIMIT ?", after, limit)
        return [self._group(r) for r in rows]  # type: ignore[misc]

    def set_compatibility(self, group_id: str, mode: str, now: float) -> Group | None:
        with self._tx(lock_key=f"group:{group_id}") as cur:
            cur.execute(self._sql("UPDATE {g} SET compatibility = ?, update_time = ? WHERE group_id = ?"),
                        (mode, now, group_id))
            return self._group(self._one(cur, "SELECT * FROM {g} WHERE group_id = ?", group_id))

    # -- versions ----------------------------------------------------------------
    def register(
        self,
        group_id: str,
        name: str,
        fingerprint: str,
        make: Callable[[Group, list[Version], int], Version],
        missing_group: Callable[[], Group],
    ) -> tuple[Version, bool]:
        """Find the version of ``fingerprint`` or insert ``make(group, previous, next_number)``.

        ``make`` checks compatibility (raising SCHEMA_INCOMPATIBLE) and builds the
        row; ``missing_group`` creates the group's record or raises NOT_FOUND.
        Returns (version, created).
        """
        for attempt in range(5):
            try:
                return self._register_once(group_id, name, fingerprint, make, missing_group)
            except Exception as exc:
                if not self._is_unique_violation(exc) or attempt == 4:
                    raise
        raise AssertionError("unreachable")

    def _register_once(self, group_id, name, fingerprint, make, missing_group) -> tuple[Version, bool]:
        with self._tx(lock_key=f"schema:{group_id}/{name}") as cur:
            group = self._group(self._one(cur, "SELECT * FROM {g} WHERE group_id = ?", group_id))
            if group is None:
                group = missing_group()
                cur.execute(self._sql("INSERT INTO {g} VALUES (?, ?, ?, ?, ?)"),
                            (group.group_id, group.format, group.compatibility, group.create_time,
                             group.update_time))
            found = self._version(self._one(
                cur, f"SELECT {_VERSION_COLS} FROM {{s}} WHERE group_id = ? AND name = ? AND fingerprint = ? "
                "AND deleted = 0 ORDER BY version LIMIT 1", group_id, name, fingerprint))
            if found is not None:
                return found, False
            previous = [self._version(r) for r in self._all(
                cur, f"SELECT {_VERSION_COLS} FROM {{s}} WHERE group_id = ? AND name = ? AND deleted = 0 "
                "ORDER BY version", group_id, name)]
            top = self._one(cur, "SELECT MAX(version) FROM {s} WHERE group_id = ? AND name = ?", group_id, name)
            number = int(top[0] or 0) + 1
            row = make(group, previous, number)
            cur.execute(self._sql("INSERT INTO {s} (id, group_id, name, version, format, definition, fingerprint, "
                                  "create_time, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)"),
                        (row.id, row.group_id, row.name, row.version, row.format, row.definition,
                         row.fingerprint, row.create_time))
            return row, True

    def get_by_id(self, schema_id: str) -> Version | None:
        with self._tx() as cur:
            return self._version(self._one(
                cur, f"SELECT {_VERSION_COLS} FROM {{s}} WHERE id = ? AND deleted = 0", schema_id))

    def get_version(self, group_id: str, name: str, version: int) -> Version | None:
        """A version by number; 0 means the latest."""
        with self._tx() as cur:
            if version == 0:
                return self._version(self._one(
                    cur, f"SELECT {_VERSION_COLS} FROM {{s}} WHERE group_id = ? AND name = ? AND deleted = 0 "
                    "ORDER BY version DESC LIMIT 1", group_id, name))
            return self._version(self._one(
                cur, f"SELECT {_VERSION_COLS} FROM {{s}} WHERE group_id = ? AND name = ? AND version = ? "
                "AND deleted = 0", group_id, name, version))

    def find(self, group_id: str, name: str, fingerprint: str) -> Version | None:
        with self._tx() as cur:
            return self._version(self._one(
                cur, f"SELECT {_VERSION_COLS} FROM {{s}} WHERE group_id = ? AND name = ? AND fingerprint = ? "
                "AND deleted = 0 ORDER BY version LIMIT 1", group_id, name, fingerprint))

    def list_versions(self, group_id: str, name: str, after: int, limit: int) -> list[Version]:
        with self._tx() as cur:
            rows = self._all(
                cur, f"SELECT {_VERSION_COLS} FROM {{s}} WHERE group_id = ? AND name = ? AND deleted = 0 "
                "AND version > ? ORDER BY version LIMIT ?", group_id, name, after, limit)
        return [self._version(r) for r in rows]  # type: ignore[misc]

    def delete_version(self, group_id: str, name: str, version: int) -> Version | None:
        """Soft-delete; returns the version deleted, or None when there is no such live version."""
        with self._tx(lock_key=f"schema:{group_id}/{name}") as cur:
            row = self._version(self._one(
                cur, f"SELECT {_VERSION_COLS} FROM {{s}} WHERE group_id = ? AND name = ? AND version = ? "
                "AND deleted = 0", group_id, name, version))
            if row is not None:
                cur.execute(self._sql("UPDATE {s} SET deleted = 1 WHERE id = ?"), (row.id,))
            return row

    def get_any(self, group_id: str, name: str, version: int) -> tuple[Version, bool] | None:
        """A version by number, deleted or not: (version, deleted)."""
        with self._tx() as cur:
            row = self._one(cur, f"SELECT {_VERSION_COLS}, deleted FROM {{s}} WHERE group_id = ? AND name = ? "
                            "AND version = ?", group_id, name, version)
        return None if row is None else (self._version(row[:8]), bool(row[8]))  # type: ignore[return-value]
