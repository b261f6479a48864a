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
from tests.wait import wait_until
from tests.zygote import run_headwater

ROOT = Path(__file__).resolve().parents[2]


def test_compose_file_shape():
    doc = yaml.safe_load((ROOT / "compose.yaml").read_text())
    headwater = {n: s for n, s in doc["services"].items() if s.get("command", [""])[0] == "headwater"}
    assert set(headwater) == {"ingestion", "registry", "processing", "sink"}
    for name, svc in headwater.items():
        assert svc["command"] == ["headwater", "serve", name]
        assert svc["image"] == "headwater:local"  # one image for all
        assert "headwater" in " ".join(svc["healthcheck"]["test"])
        assert svc["restart"] == "unless-stopped"  # `headwater up` restarts it too
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
        assert {"ingestion", "registry", "processing", "sink"} <= set(endpoints), "".join(lines)
        from tests.integration.test_foundation_services import reflected_services

        for _name, address in ((n, a) for n, a in endpoints.items() if not n.endswith("_url")):
            wait_healthy(address, timeout=10)
            # Any language's client can discover the services through reflection.
            assert "grpc.health.v1.Health" in reflected_services(address)
        # Logs are streamed with a service prefix.
        assert any(line.startswith("processing | ") for line in lines)
        from headwater.cli.up import read_pids

        named = read_pids(home / "up.pids")
        assert set(named) == {"driver", "ingestion", "registry", "processing", "sink"}
        pids = [pid for name, pid in named.items() if name != "driver"]
        # The CLI finds the services `headwater up` started, ephemeral ports and all.
        def cli(*argv):
            return run_headwater(list(argv), env=env, cwd=tmp_path, timeout=60)
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


def test_up_restarts_a_killed_service_and_the_pipeline_resumes(tmp_path):
    """compose.yaml says `restart: unless-stopped`: kill -9 the processing service under
    `headwater up`; up logs the restart, the service answers health on the same address
    and the running job picks up where its checkpoint left it (every event once)."""
    import threading

    home = tmp_path / "home"
    env = {**os.environ, "HEADWATER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*headwater_cmd(), "up", "-f", str(ROOT / "compose.yaml"), "--ephemeral-ports"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True).start()

    def wait_for(what, check, timeout=60.0):
        got = wait_until(check, timeout=timeout, every=0.2, fail=False, retry_on=())
        if not got:
            raise AssertionError(f"timed out waiting for {what}:\n{''.join(lines[-60:])}")
        return got

    def cli(*argv, stdin=None):
        done = run_headwater(list(argv), env=env, cwd=tmp_path, timeout=60, input=stdin)
        assert done.returncode == 0, f"{argv}: {done.stderr}"
        return done.stdout

    def trip_ids():
        out = run_headwater(["table", "show", "up-out", "--format", "json"], env=env, cwd=tmp_path, timeout=60)
        return [json.loads(r)["tripId"] for r in out.stdout.splitlines() if r.strip()] if out.returncode == 0 else []

    def send(ids):
        cli("send", "up-trips", stdin="".join(json.dumps({"tripId": i}) + "\n" for i in ids))

    try:
        wait_for("the stack", lambda: any(line.startswith("headwater up: ingestion") for line in lines))
        endpoints = json.loads((home / "endpoints.json").read_text())
        cli("hub", "create", "up-trips", "--partitions", "1")
        cli("sink", "create", "up-out", "--kind", "memory")
        (tmp_path / "q.asaql").write_text("SELECT tripId INTO [out] FROM [trips]")
        cli("job", "create", "up-copy", "--query", str(tmp_path / "q.asaql"), "--input", "trips=up-trips",
            "--output", "out=up-out", "--start")
        send([f"a{i}" for i in range(5)])
        wait_for("the first rows", lambda: len(trip_ids()) == 5)

        from headwater.cli.up import read_pids

        pids = read_pids(home / "up.pids")  # `driver PID` and `name PID` lines
        os.kill(pids["processing"], signal.SIGKILL)
        wait_for("the restart", lambda: any("processing restarted" in line for line in lines))
        assert any("processing exited (code -9)" in line and "unless-stopped" in line for line in lines)
        wait_healthy(endpoints["processing"], timeout=30)  # the same address as before
        new_pids = read_pids(home / "up.pids")
        assert new_pids["processing"] != pids["processing"] and new_pids["sink"] == pids["sink"]

        send([f"b{i}" for i in range(5)])
        wait_for("the rows after the restart", lambda: len(trip_ids()) >= 10)
        assert sorted(trip_ids()) == sorted([f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)])
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0, "".join(lines[-40:])
