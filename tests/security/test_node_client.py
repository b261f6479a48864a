"""The Node.js example of docs/security.md, run with node against a real ingestion service,
and the rights table of docs/security.md checked against the matrix's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import grpc
import pytest

from headwater.auth import Policy, PolicyStore, Right, generate_sas_token, new_key
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.security.test_auth_matrix import TABLE

DOC = Path(__file__).resolve().parents[2] / "docs" / "security.md"


def test_docs_rights_table_is_the_tested_one():
    rows = re.findall(r"^\| (\w+Service) \| (\w+) \| (Send|Listen|Manage) \| (yes|no) \|$", DOC.read_text(), re.M)
    documented = {(svc, rpc): (right, hub == "yes") for svc, rpc, right, hub in rows}
    tested = {(full.rsplit(".", 1)[-1], rpc): spec for full, (_s, _st, _pb, rpcs) in TABLE.items()
              for rpc, spec in rpcs.items()}
    assert documented == tested


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed: the Node.js example is not run")
def test_node_example_signs_and_publishes(service_process, _isolated_home, tmp_path):
    code = re.search(r"```js\n(.*?)```", DOC.read_text(), re.S).group(1)
    script = tmp_path / "publish.js"
    script.write_text(code)
    store = PolicyStore(_isolated_home / "auth.json").ensure()
    sender = Policy("node-sender", new_key(), frozenset({Right.SEND}))
    store.put(sender)
    root = store.root()
    proc = service_process("ingestion")
    http = re.search(r"ingestion http on \S+:(\d+)", proc.output()).group(1)
    md = [("authorization", generate_sas_token("headwater://localhost/", root.name, root.key))]
    with grpc.insecure_channel(proc.address) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id="node-trips", hub=ingestion_pb2.Hub(partition_count=1)),
                       metadata=md)
        env = {**os.environ, "HEADWATER_HTTP": f"http://127.0.0.1:{http}", "HEADWATER_HUB": "node-trips",
               "HEADWATER_KEY_NAME": sender.name, "HEADWATER_KEY": sender.key}
        done = subprocess.run(["node", str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and done.stdout.startswith("201"), done.stdout + done.stderr
        props = stub.GetPartitionProperties(ingestion_pb2.GetPartitionPropertiesRequest(
            name="hubs/node-trips/partitions/0"), metadata=md).partition
        assert props.last_enqueued_sequence_number == 1  # both events of the batch
        # A wrong key: the one message, exit code 1.
        bad = subprocess.run(["node", str(script)], env={**env, "HEADWATER_KEY": new_key()}, capture_output=True,
                             text=True, timeout=60)
        assert bad.returncode == 1 and bad.stdout.startswith("401"), bad.stdout
