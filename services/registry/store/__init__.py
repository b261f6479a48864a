"""Registry storage: SQLite (default, one file) and PostgreSQL (shared by replicas)."""

from __future__ import annotations

from headwater.services.registry.store.base import SqlStore

__all__ = ["SqlStore", "open_store"]


def open_store(config) -> SqlStore:
    """The store ``config.store`` names (``sqlite`` or ``postgres``), opened."""
    if config.store not in ("sqlite", "postgres"):
        from headwater.config import ConfigError

        raise ConfigError(f"setting 'store': {config.store!r} is not one of sqlite, postgres", setting="store")
    if config.store == "postgres":
        from headwater.services.registry.store.postgres import PostgresStore

        return PostgresStore(config.postgres_dsn, config.postgres_schema, config.postgres_pool_size).open()
    from headwater.services.registry.store.sqlite import SqliteStore

    path = config.sqlite_path or str(config.data_path() / "registry.sqlite3")
    return SqliteStore(path).open()
