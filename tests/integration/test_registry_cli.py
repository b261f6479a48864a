"""`headwater schema ...` against a real registry process."""

from __future__ import annotations

import json

import pytest

from headwater.cli.main import main
from tests.integration.registry_support import TRIP_BAD, TRIP_V1, TRIP_V2


@pytest.fixture
def run(service_process, tmp_path, root_policy, capsys, monkeypatch):
    """Run `headwater schema ARGS` against a real registry; the key comes from the local policies file."""
    proc = service_process("registry", "--data-dir", str(tmp_path / "registry-data"))
    monkeypatch.setenv("HEADWATER_REGISTRY_ADDRESS", proc.address)

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(["schema", *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_schema_commands(run, tmp_path):
    v1, v2, bad = tmp_path / "v1.avsc", tmp_path / "v2.avsc", tmp_path / "bad.avsc"
    v1.write_text(TRIP_V1)
    v2.write_text(TRIP_V2)
    bad.write_text(TRIP_BAD)

    code, out, _ = run("group", "create", "trips", "--format", "avro", "--compatibility", "full-transitive")
    assert code == 0 and "compatibility=full-transitive" in out
    code, out, _ = run("group", "create", "events", "--format", "json", "--compatibility", "none", "--json")
    assert json.loads(out)["format"] == "Json"
    code, out, _ = run("group", "list")
    assert out.splitlines()[0].startswith("events") and out.splitlines()[1].startswith("trips")
    code, out, _ = run("group", "show", "trips", "--json")
    assert json.loads(out)["compatibility"] == "FULL_TRANSITIVE"

    code, out, _ = run("register", "trips", "demo.Trip", str(v1), "--json")
    first = json.loads(out)
    assert code == 0 and first["version"] == 1 and first["format"] == "Avro"
    code, out, _ = run("register", "trips", "demo.Trip", str(v1), "--json")
    assert json.loads(out)["id"] == first["id"]
    code, out, _ = run("register", "trips", "demo.Trip", str(v2))
    assert code == 0 and "version 2" in out
    code, out, err = run("register", "trips", "demo.Trip", str(bad))
    assert code == 1 and "SCHEMA_INCOMPATIBLE" in err and "passengers" in err

    code, out, _ = run("get", first["id"])
    assert code == 0 and out.splitlines()[0].startswith(f"# {first['id']} trips/demo.Trip version 1")
    assert json.loads("\n".join(out.splitlines()[1:])) == json.loads(TRIP_V1)
    code, out, _ = run("versions", "trips", "demo.Trip")
    assert [line.split("\t")[0] for line in out.splitlines()] == ["1", "2"]

    code, out, _ = run("group", "set-compatibility", "trips", "none")
    assert "compatibility=none" in out
    code, out, _ = run("register", "trips", "demo.Trip", str(bad))
    assert code == 0 and "version 3" in out
    code, out, _ = run("delete", "trips", "demo.Trip", "3")
    assert code == 0 and "deleted" in out

    code, _, err = run("get", "0" * 32)
    assert code == 1 and "RESOURCE_NOT_FOUND" in err
    code, _, err = run("register", "trips", "demo.Trip", str(tmp_path / "missing.avsc"))
    assert code == 1 and "cannot read schema file" in err
    with pytest.raises(SystemExit):
        run("group", "create", "x", "--format", "avro", "--compatibility", "sideways")
