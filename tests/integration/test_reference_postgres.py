"""PostgreSQL reference sources against the machine's real PostgreSQL: a delta query's
inserts and deletes between @deltaStartTime and @deltaEndTime, and the size limit."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from headwater.errors import HeadwaterError
from headwater.services.processing.exec.join import BEGINNING
from headwater.services.processing.refdata import PostgresReference
from tests.integration.processing_support import PG_DSN, pg_drop, pg_reader, pg_table


def _us(t: dt.datetime) -> int:
    return int(t.timestamp() * 1e6)


def test_a_delta_query_applies_the_changes_between_two_refreshes():
    reader = pg_reader()
    table, changes = pg_table(), pg_table()
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE TABLE public."{table}" (device text, label text)')
        conn.execute(f'INSERT INTO public."{table}" VALUES (%s, %s), (%s, %s)', ("d1", "a", "d2", "b"))
        conn.execute(f'CREATE TABLE public."{changes}" (device text, label text, op int, at timestamptz)')
        # an update of d1 (delete + insert) inside the window, one change after it
        conn.execute(f'INSERT INTO public."{changes}" VALUES (%s, %s, -1, %s), (%s, %s, 1, %s), (%s, %s, 1, %s)',
                     ("d1", "a", t0 + dt.timedelta(seconds=5), "d1", "a2", t0 + dt.timedelta(seconds=5),
                      "d3", "c", t0 + dt.timedelta(seconds=99)))
    try:
        src = PostgresReference("R", reader, f'SELECT device, label FROM public."{table}" ORDER BY device',
                                f'SELECT device, label, op AS _operation FROM public."{changes}" '
                                "WHERE at > @deltaStartTime AND at <= @deltaEndTime ORDER BY at, op",
                                60, 10**6, 5)
        valid, rows = src.load(_us(t0), first=True)
        assert valid == BEGINNING and rows == [{"device": "d1", "label": "a"}, {"device": "d2", "label": "b"}]
        valid, rows = src.load(_us(t0 + dt.timedelta(seconds=10)), first=False)
        assert valid == _us(t0 + dt.timedelta(seconds=10))
        assert sorted(rows, key=lambda r: r["device"]) == [{"device": "d1", "label": "a2"},
                                                           {"device": "d2", "label": "b"}]
    finally:
        pg_drop(table)
        pg_drop(changes)


def test_a_snapshot_over_the_limit_is_refused_naming_it():
    src = PostgresReference("R", pg_reader(), "SELECT repeat('x', 1000) AS pad FROM generate_series(1, 100)", "", 0,
                            10_000, 5)
    with pytest.raises(HeadwaterError, match=r"over max_reference_bytes \(\d+ > 10000 bytes\)"):
        src.load(0, first=True)


@pytest.mark.parametrize("role", ["superuser", "pg_read_server_files"])
def test_a_role_that_can_read_the_servers_files_is_refused(role):
    """A reference query is a client's text: run as a superuser (or a member of
    pg_read_server_files), ``SELECT pg_read_file(...)`` would read the database host's files
    through a READ ONLY transaction. Such a role is refused before the query runs."""
    dsn = PG_DSN
    if role != "superuser":
        name = "headwater_files_reader"
        with psycopg.connect(PG_DSN) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(7046)")
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone() is None:
                conn.execute(f"CREATE ROLE {name} LOGIN NOSUPERUSER")
            conn.execute(f"GRANT pg_read_server_files TO {name}")
        dsn = f"postgresql://{name}@127.0.0.1:5432/test"
    src = PostgresReference("R", dsn, "SELECT pg_read_file('/etc/hostname') AS f", "", 0, 10**6, 5)
    with pytest.raises(HeadwaterError, match=r"may read the database server's files") as err:
        src.load(0, first=True)
    assert err.value.metadata.get("field") == "dsn"
    ok = PostgresReference("R", pg_reader(), "SELECT pg_read_file('/etc/hostname') AS f", "", 0, 10**6, 5)
    with pytest.raises(HeadwaterError, match="permission denied"):  # the reader role: PostgreSQL says no
        ok.load(0, first=True)
