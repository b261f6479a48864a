"""Helpers for the registry's integration tests: policies, clients, PostgreSQL settings."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from headwater.auth import Policy, PolicyStore, Right, new_key
from headwater.retry import RetryPolicy
from headwater.schemaregistry import SchemaRegistryClient, SharedAccessKeyCredential

PG_DSN = os.environ.get("HEADWATER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

TRIP_V1 = """{"namespace": "demo", "type": "record", "name": "Trip",
 "fields": [{"name": "tripId", "type": "string"}, {"name": "fare", "type": "double"}]}"""
TRIP_V2 = """{"namespace": "demo", "type": "record", "name": "Trip",
 "fields": [{"name": "tripId", "type": "string"}, {"name": "fare", "type": "double"},
            {"name": "tip", "type": "double", "default": 0.0}]}"""
TRIP_BAD = """{"namespace": "demo", "type": "record", "name": "Trip",
 "fields": [{"name": "tripId", "type": "string"}, {"name": "fare", "type": "double"},
            {"name": "passengers", "type": "int"}]}"""

ONE_TRY = RetryPolicy(max_attempts=1, max_delay_s=5)


def add_policy(home: Path, name: str, *rights: Right) -> Policy:
    store = PolicyStore(home / "auth.json").ensure()
    policy = Policy(name, new_key(), frozenset(rights))
    store.put(policy)
    return policy


def client(address: str, policy: Policy, **kwargs) -> SchemaRegistryClient:
    return SchemaRegistryClient(fully_qualified_namespace=address,
                                credential=SharedAccessKeyCredential(policy.name, policy.key), **kwargs)


def postgres_config(tmp_path: Path) -> tuple[Path, str]:
    """A config file for the PostgreSQL store in a schema of its own; returns (file, schema)."""
    schema = f"hw_reg_{uuid.uuid4().hex[:12]}"
    path = tmp_path / "registry.yaml"
    path.write_text(f"store: postgres\npostgres_dsn: {PG_DSN}\npostgres_schema: {schema}\n")
    return path, schema


def drop_pg_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def store_args(request, tmp_path):
    """Arguments for `headwater serve registry` selecting the store (import this fixture to use it)."""
    if request.param == "sqlite":
        yield ["--data-dir", str(tmp_path / "registry-data")]
        return
    path, schema = postgres_config(tmp_path)
    yield ["--config", str(path), "--data-dir", str(tmp_path / "registry-data")]
    drop_pg_schema(schema)
