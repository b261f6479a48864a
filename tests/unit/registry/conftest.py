"""Stores for the registry tests: SQLite in tmp_path, PostgreSQL in a schema of its own per test."""

from __future__ import annotations

import os
import uuid

import pytest

from headwater.services.registry.registry import Registry

PG_DSN = os.environ.get("HEADWATER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        from headwater.services.registry.store.sqlite import SqliteStore

        s = SqliteStore(tmp_path / "registry.sqlite3").open()
        yield s
        s.close()
        return
    from headwater.services.registry.store.postgres import PostgresStore

    s = PostgresStore(PG_DSN, f"hw_reg_{uuid.uuid4().hex[:12]}", pool_size=4).open()
    yield s
    s.drop()
    s.close()


@pytest.fixture
def registry(store):
    return Registry(store, default_compatibility="BACKWARD")
