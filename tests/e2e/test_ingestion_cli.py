"""``headwater hub|consumer-group|send|read|faults`` against a real ingestion process."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.integration.ingestion_support import conn_str
from tests.zygote import run_headwater


@pytest.fixture
def cli(service_process, tmp_path, root_policy):
    proc = service_process("ingestion", "--data-dir", str(tmp_path / "data"))
    env = {**os.environ, "HEADWATER_CONNECTION_STRING": conn_str(proc.address, root_policy)}

    def run(*args: str, input: str | None = None, ok: bool = True) -> subprocess.CompletedProcess:
        res = run_headwater(list(args), env=env, input=input, timeout=60)
        if ok:
            assert res.returncode == 0, res.stderr + res.stdout
        return res

    return run


def test_hub_and_consumer_group_commands(cli):
    created = json.loads(cli("hub", "create", "trips", "--partitions", "3", "--retention", "2d", "--json").stdout)
    assert created["partitions"] == 3 and created["retention"] == "2d"
    assert [h["name"] for h in json.loads(cli("hub", "list", "--json").stdout)] == ["trips"]
    again = cli("hub", "create", "trips", ok=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    bad = cli("hub", "create", "x", "--retention", "soon", ok=False)
    assert bad.returncode == 1 and "not like 7d" in bad.stderr
    cli("consumer-group", "create", "trips", "asa")
    assert json.loads(cli("consumer-group", "list", "trips", "--json").stdout) == ["$Default", "asa"]
    cli("consumer-group", "delete", "trips", "asa")
    shown = json.loads(cli("hub", "show", "trips", "--json").stdout)
    assert [p["partition"] for p in shown["partition_properties"]] == ["0", "1", "2"]
    cli("hub", "delete", "trips")
    assert "no hubs" in cli("hub", "list").stdout


def test_send_with_partition_key_and_read_from_positions(cli, tmp_path):
    cli("hub", "create", "trips", "--partitions", "4")
    lines = "\n".join(json.dumps({"tripId": str(i), "car": f"car-{i % 2}"}) for i in range(10))
    res = cli("send", "trips", "--partition-key", "car", input=lines + "\n")
    assert "sent 10 events" in res.stderr
    read = [json.loads(x) for x in cli("read", "trips", "--wait", "0.2").stdout.splitlines()]
    assert sorted(e["body"]["tripId"] for e in read) == [str(i) for i in range(10)]
    by_car = {}
    for e in read:
        by_car.setdefault(e["body"]["car"], set()).add(e["partition"])
    assert all(len(parts) == 1 for parts in by_car.values()), "a key always lands in one partition"
    part = read[0]["partition"]
    in_part = [e for e in read if e["partition"] == part]
    from_seq = cli("read", "trips", "--partition", part, "--from", "seq:2", "--wait", "0.2").stdout.splitlines()
    assert [json.loads(x)["sequence_number"] for x in from_seq] == [e["sequence_number"] for e in in_part][2:]
    offset = in_part[1]["offset"]
    from_off = cli("read", "trips", "--partition", part, "--from", f"offset:{offset}", "--count", "1").stdout
    assert json.loads(from_off)["sequence_number"] == 1
    assert cli("read", "trips", "--from", "latest", "--wait", "0.1").stdout == ""
    bad = cli("send", "trips", "--partition-key", "nope", input='{"a": 1}\n', ok=False)
    assert bad.returncode == 1 and "line 1" in bad.stderr
    bad = cli("read", "trips", "--from", "yesterday", ok=False)
    assert "earliest, latest" in bad.stderr


def test_faults_set_list_clear(cli):
    cli("hub", "create", "h", "--partitions", "1")
    out = cli("faults", "set", "h", "--reason", "service_busy", "--count", "2", "--operation", "publish",
              "--id", "busy").stdout
    assert "busy" in out and "SERVICE_BUSY" in out
    rules = json.loads(cli("faults", "list", "h", "--json").stdout)
    assert rules[0]["remaining"] == 2
    # The SDK in `send` retries through the two injected failures.
    assert "sent 1 events" in cli("send", "h", input='{"x": 1}\n').stderr
    assert json.loads(cli("faults", "list", "h", "--json").stdout)[0]["injected"] == 2
    assert "removed 1" in cli("faults", "clear", "h").stdout
    bad = cli("faults", "set", "h", "--reason", "NOPE", "--count", "1", ok=False)
    assert "not one of" in bad.stderr
