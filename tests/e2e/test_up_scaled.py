"""`headwater up --profile scaled`: a 3-node NATS cluster, two ingestion instances on it behind
one (round-robin) address, the registry on PostgreSQL, two processing replicas and the sink,
as local processes; events go in through the pair and come out through either instance."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from headwater.auth import PolicyStore
from headwater.compose import load_compose
from headwater.eventhub import EventData
from headwater.eventhub.aio import EventHubProducerClient
from headwater.nats_cluster import find_nats_server
from headwater.procs import headwater_cmd, wait_healthy
from tests.integration.ingestion_support import conn_str, create_hub, read_all

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("HEADWATER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def test_scaled_profile_shape():
    services = {s.name: s for s in load_compose(ROOT / "compose.yaml", ("scaled",))}
    assert {"nats-1", "nats-2", "nats-3", "postgres"} <= set(services)
    assert services["ingestion"].replicas == 2 and services["processing"].replicas == 2
    assert services["ingestion"].environment["HEADWATER_INGESTION_LOG_BACKEND"] == "nats"
    assert services["ingestion"].environment["HEADWATER_INGESTION_NATS_REPLICAS"] == "3"
    assert services["registry"].environment["HEADWATER_REGISTRY_STORE"] == "postgres"
    single = {s.name: s for s in load_compose(ROOT / "compose.yaml")}
    assert single["ingestion"].replicas == 1
    assert single["ingestion"].environment["HEADWATER_INGESTION_LOG_BACKEND"] == "embedded"


def _have_nats() -> bool:
    try:
        find_nats_server()
        return True
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not _have_nats(), reason="no nats-server binary")
def test_headwater_up_scaled_runs_the_stack_on_a_nats_cluster(tmp_path):
    home = tmp_path / "home"
    prefix = f"T{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "HEADWATER_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "HEADWATER_REGISTRY_POSTGRES_DSN": PG_DSN,
           "HEADWATER_REGISTRY_POSTGRES_SCHEMA": f"hw_scaled_{uuid.uuid4().hex[:8]}",
           "HEADWATER_INGESTION_NATS_PREFIX": prefix}
    proc = subprocess.Popen([*headwater_cmd(), "up", "-f", str(ROOT / "compose.yaml"), "--profile", "scaled",
                             "--ephemeral-ports"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("headwater up: ingestion"):
                break
        endpoints = json.loads((home / "endpoints.json").read_text())
        assert {"ingestion", "registry", "processing", "sink"} <= set(endpoints), "".join(lines)
        assert len(endpoints["ingestion"].split(",")) == 2 and len(endpoints["processing"].split(",")) == 2
        services = ("ingestion", "registry", "processing", "sink")
        for address in ",".join(endpoints[s] for s in services).split(","):
            wait_healthy(address, timeout=10)
        assert any("3-node JetStream cluster" in line for line in lines)
        a, b = endpoints["ingestion"].split(",")
        root = PolicyStore(home / "auth.json").ensure().root()

        async def pipeline():
            await create_hub(endpoints["ingestion"], root, "scaled", 2)
            async with EventHubProducerClient.from_connection_string(
                    conn_str(endpoints["ingestion"], root, "scaled")) as p:
                for i in range(10):
                    await p.send_batch([EventData(f"{i}-{j}") for j in range(10)], partition_id=str(i % 2))
            return [await read_all(addr, root, "scaled", pid, expect=50) for addr in (a, b) for pid in "01"]

        got = asyncio.run(pipeline())
        for events in got:
            assert len(events) == 50
        assert sorted(e.body_as_str() for e in got[0] + got[1]) == sorted(
            f"{i}-{j}" for i in range(10) for j in range(10))
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=90)
        from headwater.services.ingestion.log.nats import delete_prefix

        try:
            asyncio.run(delete_prefix("nats://127.0.0.1:4222", prefix))  # nothing there: the cluster was local
        except Exception:  # noqa: BLE001, S110 - the machine's NATS may be absent
            pass
    assert proc.returncode == 0, out
    assert not (home / "endpoints.json").exists()
