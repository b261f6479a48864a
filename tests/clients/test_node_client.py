"""docs/clients.md's Node example (tests/clients/node/quickstart.js) against real services.

Runs only when node is on PATH and `make setup` installed the npm packages
(tests/clients/node/node_modules); otherwise it is skipped saying which is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = Path(__file__).resolve().parent / "node"
pytestmark = pytest.mark.xdist_group("clients")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the Node client example is not run (apt-get install nodejs npm)")
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        pytest.skip("npm packages missing in tests/clients/node: run `make setup` (npm ci there)")
    return node


def test_node_quickstart_against_real_services(client_stack):
    node = _node()
    run_id = uuid.uuid4().hex[:8]
    out = subprocess.run([node, "quickstart.js"], cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HEADWATER_CONNECTION_STRING": client_stack.connection_string,
                              "HEADWATER_RUN_ID": run_id, "HEADWATER_EVENTS": "30"})
    assert out.returncode == 0, out.stderr + out.stdout
    result = json.loads(out.stdout.strip().splitlines()[-1])
    ns = result["namespace"]
    for name in ("ingestion", "registry", "processing", "sink"):
        assert ns[f"{name}_address"] == client_stack.endpoints[name]
    ids = sorted(f"t{i}" for i in range(30))
    assert result["published"] == 30 and result["read"] == 30 and result["readIds"] == ids
    assert result["checkpoints"] == 2  # one per partition
    assert result["keysStored"] is True
    # Sent with bare ids, answered with resource names (AIP-122).
    assert result["checkpointNames"] == [f"hubs/node-trips-{run_id}", f"hubs/node-trips-{run_id}/consumerGroups/$Default"]
    assert len(result["schemaId"]) == 32 and result["schemaVersion"] == 1
    assert result["sinkMaxRows"] == "1000"  # typed settings: an int64 (longs: String), not a mangled Struct
    assert result["rows"] == 30 and result["rowIds"] == ids
    assert result["error"] == {"code": "NOT_FOUND", "message": "hub 'no-such-hub' does not exist",
                               "reason": "RESOURCE_NOT_FOUND", "domain": "headwater",
                               "metadata": {"resource": "hubs/no-such-hub", "service": "ingestion"}}
    # What the Node client made is there for every other client.
    listed = client_stack.cli("hub", "list", "--json")
    assert f"node-trips-{run_id}" in listed.stdout


def test_docs_carry_the_tested_node_example():
    doc = (ROOT / "docs" / "clients.md").read_text()
    assert (NODE_DIR / "quickstart.js").read_text().strip() in doc


def test_perf_node_read_reads_every_event_per_window():
    _node()
    from headwater.procs import headwater_cmd

    out = subprocess.run([*headwater_cmd(), "perf", "node-read", "--events", "3000", "--partitions", "2",
                          "--windows", "default,16MiB", "--json"], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Every event in the hub is read in each run, whatever the window.
    assert [r["window"] for r in result["runs"]] == [0, 16 * 1024 * 1024]
    assert result["stored"] >= 3000 and [r["events"] for r in result["runs"]] == [result["stored"]] * 2
    assert "flow-control window 64 KiB (grpc-js default)" in out.stdout
