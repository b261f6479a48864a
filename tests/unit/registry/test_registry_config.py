"""Registry settings: environment and file, and clear refusals of bad values."""

from __future__ import annotations

import pytest

from headwater.config import load_config
from headwater.errors import HeadwaterError, Reason
from headwater.services.registry.config import RegistryConfig
from headwater.services.registry.registry import Registry
from headwater.services.registry.store import open_store
from headwater.services.registry.store.postgres import PostgresStore
from headwater.services.registry.store.sqlite import SqliteStore


def test_settings_from_env_and_file(tmp_path):
    cfg = load_config(RegistryConfig, "registry", env={"HEADWATER_REGISTRY_STORE": "postgres",
                                                        "HEADWATER_REGISTRY_AUTO_CREATE_GROUPS": "false"})
    assert cfg.store == "postgres" and cfg.auto_create_groups is False and cfg.grpc_port == 50052
    path = tmp_path / "r.yaml"
    path.write_text("registry:\n  default_compatibility: full-transitive\n  sqlite_path: %s\n"
                    % (tmp_path / "x.db"))
    cfg = load_config(RegistryConfig, "registry", path, env={})
    store = open_store(cfg)
    try:
        assert isinstance(store, SqliteStore) and (tmp_path / "x.db").exists()
        assert Registry(store, default_compatibility=cfg.default_compatibility).default_compatibility == \
            "FULL_TRANSITIVE"
    finally:
        store.close()


def test_bad_values_are_refused_by_name(tmp_path):
    cfg = load_config(RegistryConfig, "registry", env={"HEADWATER_REGISTRY_STORE": "mongo"},
                      data_dir=str(tmp_path))
    with pytest.raises(HeadwaterError, match="setting 'store'"):
        open_store(cfg)
    with pytest.raises(HeadwaterError, match="postgres_schema"):
        PostgresStore("postgresql://postgres@127.0.0.1:5432/test", "Bad-Name")
    with pytest.raises(HeadwaterError, match="postgres_dsn"):
        PostgresStore("", "ok")
    with pytest.raises(HeadwaterError) as err:
        PostgresStore("postgresql://postgres@127.0.0.1:1/test", "ok").open()
    assert err.value.reason is Reason.SERVICE_BUSY and "cannot connect to PostgreSQL" in err.value.message
    with pytest.raises(HeadwaterError, match="unknown compatibility mode"):
        Registry(SqliteStore(tmp_path / "y.db").open(), default_compatibility="sometimes")


def test_auto_create_off_refuses_unknown_group(tmp_path):
    store = SqliteStore(tmp_path / "z.db").open()
    try:
        registry = Registry(store, auto_create_groups=False)
        with pytest.raises(HeadwaterError) as err:
            registry.register("nogroup", "T", '{"type": "record", "name": "T", "fields": []}', "avro")
        assert err.value.reason is Reason.RESOURCE_NOT_FOUND and "create it first" in err.value.message
    finally:
        store.close()


def test_sqlite_file_held_by_another_writer_is_busy_not_internal(tmp_path):
    import sqlite3

    store = SqliteStore(tmp_path / "busy.db").open()
    other = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        store._conn.execute("PRAGMA busy_timeout = 100")
        with pytest.raises(HeadwaterError) as err:
            Registry(store).create_group("g", "avro")
        assert err.value.reason is Reason.SERVICE_BUSY and err.value.is_transient
        other.execute("ROLLBACK")
        assert Registry(store).create_group("g", "avro").group_id == "g"
    finally:
        other.close()
        store.close()
