"""CLI fixes found by following the README: `job create --query` with a file that is not
there is one clear line (not a traceback), and the hub/send/read commands honour
$HEADWATER_INGESTION_CONNECTION_STRING and $HEADWATER_INGESTION_ADDRESS like the other
services' commands honour theirs."""

from __future__ import annotations

from headwater.cli import hub as hub_cli
from headwater.cli.main import build_parser, main

CONN = ("Endpoint=headwater://ingest.example:6000/;SharedAccessKeyName=Send;"
        "SharedAccessKey=c2VjcmV0;EntityPath=trips")
OLD = ("Endpoint=headwater://old.example:7000/;SharedAccessKeyName=Send;"
       "SharedAccessKey=c2VjcmV0;EntityPath=trips")


def test_job_create_missing_query_file_is_one_clear_line(tmp_path, capsys):
    missing = tmp_path / "nope.asaql"
    code = main(["job", "create", "book", "--query", str(missing), "--input", "Trips=trips",
                 "--output", "Out=out", "--address", "localhost:1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert "--query" in err and "nope.asaql" in err and "file with the query text" in err


def _conn(argv, monkeypatch, env):
    for name in ("HEADWATER_INGESTION_CONNECTION_STRING", "HEADWATER_CONNECTION_STRING",
                 "HEADWATER_INGESTION_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return hub_cli._conn(build_parser().parse_args(argv))


def test_hub_commands_read_the_ingestion_connection_string(monkeypatch):
    conn = _conn(["hub", "list"], monkeypatch,
                 {"HEADWATER_INGESTION_CONNECTION_STRING": CONN, "HEADWATER_CONNECTION_STRING": OLD})
    assert conn.address == "ingest.example:6000"


def test_hub_commands_still_read_the_generic_connection_string(monkeypatch):
    conn = _conn(["send", "trips"], monkeypatch, {"HEADWATER_CONNECTION_STRING": OLD})
    assert conn.address == "old.example:7000"


def test_hub_address_from_env_flag_wins_default_50051(monkeypatch, _isolated_home):
    import pytest

    from headwater.auth import PolicyStore
    from headwater.errors import HeadwaterError

    # The CLI never creates a key: without the services' auth.json it says where it looked.
    with pytest.raises(HeadwaterError, match="HEADWATER_HOME"):
        _conn(["hub", "list"], monkeypatch, {})
    assert not (_isolated_home / "auth.json").exists()
    PolicyStore(_isolated_home / "auth.json").ensure()  # as a starting service does
    assert _conn(["hub", "list"], monkeypatch, {}).address == "localhost:50051"
    env = {"HEADWATER_INGESTION_ADDRESS": "127.0.0.1:6001"}
    assert _conn(["read", "trips"], monkeypatch, env).address == "127.0.0.1:6001"
    assert _conn(["hub", "list", "--address", "127.0.0.1:6002"], monkeypatch, env).address == "127.0.0.1:6002"
    root = _conn(["hub", "list"], monkeypatch, env)
    assert root.shared_access_key_name == "RootManageSharedAccessKey"
