"""Fixtures for the sink plugins: the real PostgreSQL on this machine, unique tables."""

from __future__ import annotations

import uuid

import pytest

DSN = "host=127.0.0.1 port=5432 dbname=test user=postgres connect_timeout=3"


@pytest.fixture
def pg_dsn():
    psycopg = pytest.importorskip("psycopg")
    try:
        psycopg.connect(DSN).close()
    except psycopg.OperationalError as exc:  # pragma: no cover - the machine runs PostgreSQL
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    return DSN


@pytest.fixture
def pg_table(pg_dsn):
    """A unique table name, dropped (with its checkpoint rows) after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS public."{name}"')
        conn.execute("DELETE FROM public.headwater_sink_checkpoints WHERE sink LIKE %s", (f"%:public.{name}",))


def pg_rows(dsn: str, table: str, order: str = "1") -> list[tuple]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute(f'SELECT * FROM public."{table}" ORDER BY {order}').fetchall()


def pg_columns(dsn: str, table: str) -> dict[str, str]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                            (table,)).fetchall()
    return dict(rows)
