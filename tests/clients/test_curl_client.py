"""docs/clients.md's curl example (tests/clients/curl/send.sh): SAS signed with openssl, HTTP ingest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).resolve().parent / "curl" / "send.sh"
pytestmark = pytest.mark.xdist_group("clients")


def test_curl_example_publishes_over_http(client_stack):
    missing = [t for t in ("bash", "curl", "openssl", "base64") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"curl example not run: {', '.join(missing)} missing")
    hub = f"curl-{uuid.uuid4().hex[:8]}"
    assert client_stack.cli("hub", "create", hub, "--partitions", "1").returncode == 0
    url = json.loads(client_stack.cli("namespace", "--json").stdout)["http_ingest_url"]
    assert url == client_stack.endpoints["http_ingest_url"]
    out = subprocess.run(["bash", str(SCRIPT), hub, url], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "HEADWATER_CONNECTION_STRING": client_stack.connection_string})
    assert out.returncode == 0, out.stderr
    sent, error = (json.loads(line) for line in out.stdout.strip().splitlines())
    assert sent["firstSequenceNumber"] == 0 and sent["lastSequenceNumber"] == 1
    assert error["error"]["reason"] == "RESOURCE_NOT_FOUND"
    # The ErrorInfo metadata of the same error over gRPC (test_node_client, test_go_client).
    assert error["error"]["metadata"] == {"resource": "hubs/no-such-hub", "service": "ingestion"}
    read = client_stack.cli("read", hub, "--from", "earliest", "--count", "2")
    bodies = [json.loads(line)["body"]["tripId"] for line in read.stdout.splitlines() if line.strip()]
    assert bodies == ["c1", "c2"], read.stderr


def test_docs_carry_the_tested_curl_example():
    doc = (ROOT / "docs" / "clients.md").read_text()
    assert SCRIPT.read_text().strip() in doc
