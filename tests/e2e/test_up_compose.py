"""`headwater up` runs compose.yaml's services as local processes; each answers health."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from headwater.compose import load_compose
from headwater.procs import headwater_cmd, wait_healthy

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_shape():
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    headwater = {n: s for n, s in doc["services"].items() if s.get("command", [""])[0] == "headwater"}
    assert set(headwater) == {"ingestion", "registry", "processing", "sink"}
    for name, svc in headwater.items():
        assert svc["command"] == ["headwater", "serve", name]
        assert svc["image"] == "headwater:local"  # one image for all
        assert "headwater" in " ".join(svc["healthcheck"]["test"])
    assert all(c["condition"] == "service_healthy" for c in doc["services"]["processing"]["depends_on"].values())
    assert {"postgres", "nats-1", "nats-2", "nats-3"} <= {n for n, s in doc["services"].items()
                                                          if "scaled" in s.get("profiles", [])}
    order = [s.name for s in load_compose(ROOT / "compose.yaml")]
    assert order.index("processing") > max(order.index(n) for n in ("ingestion", "registry", "sink"))
    assert "postgres" in [s.name for s in load_compose(ROOT / "compose.yaml", ("scaled",))]


def test_headwater_up_starts_every_service_and_stops_them(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "HEADWATER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*headwater_cmd(), "up", "-f", str(ROOT / "compose.yaml"), "--ephemeral-ports"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("headwater up: ingestion"):
                break
        endpoints = json.loads((home / "endpoints.json").read_text())
        assert set(endpoints) == {"ingestion", "registry", "processing", "sink"}, "".join(lines)
        from tests.integration.test_foundation_services import reflected_services

        for _name, address in endpoints.items():
            wait_healthy(address, timeout=10)
            # Any language's client can discover the services through reflection.
            assert "grpc.health.v1.Health" in reflected_services(address)
        # Logs are streamed with a service prefix.
        assert any(line.startswith("processing | ") for line in lines)
        pids = [int(p) for p in (home / "up.pids").read_text().split()]
        assert len(pids) == 4
        # The CLI finds the services `headwater up` started, ephemeral ports and all.
        def cli(*argv):
            return subprocess.run([*headwater_cmd(), *argv], env=env, cwd=tmp_path, capture_output=True,
                                  text=True, timeout=60)
        made = cli("hub", "create", "up-trips", "--partitions", "2")
        assert made.returncode == 0, made.stderr
        assert "up-trips" in cli("hub", "list").stdout
        assert cli("job", "list", "--json").stdout.strip() == "[]"
        assert cli("sink", "list").returncode == 0
        assert cli("schema", "group", "list").returncode == 0
        assert f"headwater://{endpoints['ingestion']}/" in cli("connection-string").stdout
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert not (home / "endpoints.json").exists()  # no stale addresses after the stack stops
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        raise AssertionError(f"service process {pid} still running after headwater up stopped")


def test_compose_variables_are_substituted(monkeypatch):
    monkeypatch.setenv("HEADWATER_REGISTRY_STORE", "postgres")
    registry = next(s for s in load_compose(ROOT / "compose.yaml") if s.name == "registry")
    assert registry.environment["HEADWATER_REGISTRY_STORE"] == "postgres"
    monkeypatch.delenv("HEADWATER_REGISTRY_STORE")
    registry = next(s for s in load_compose(ROOT / "compose.yaml") if s.name == "registry")
    assert registry.environment["HEADWATER_REGISTRY_STORE"] == "sqlite"
