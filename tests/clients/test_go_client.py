"""docs/clients.md's Go example (tests/clients/go/main.go) against real services.

Runs when a Go toolchain and the Go gRPC packages are present: Debian's golang-go,
golang-google-grpc-dev, golang-google-genproto-dev, golang-github-golang-protobuf-1-5-dev,
protoc-gen-go and protoc-gen-go-grpc (`make setup-go`). The code is generated from
protos/ with grpc_tools' protoc and built in GOPATH mode against those packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GO_DIR = Path(__file__).resolve().parent / "go"
GOCODE = Path("/usr/share/gocode")
pytestmark = pytest.mark.xdist_group("clients")


def _toolchain() -> dict[str, str]:
    missing = [t for t in ("go", "protoc-gen-go", "protoc-gen-go-grpc") if shutil.which(t) is None]
    if not (GOCODE / "src" / "google.golang.org" / "grpc").exists():
        missing.append("golang-google-grpc-dev")
    if missing:
        pytest.skip(f"Go example not run: {', '.join(missing)} missing (make setup-go installs Debian's packages)")
    return {"go": shutil.which("go"), "protoc-gen-go": shutil.which("protoc-gen-go"),
            "protoc-gen-go-grpc": shutil.which("protoc-gen-go-grpc")}


def test_go_example_against_real_services(client_stack, tmp_path):
    tools = _toolchain()
    src = tmp_path / "src"
    (src / "hwexample").mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'protos'}",
                    f"--plugin=protoc-gen-go={tools['protoc-gen-go']}",
                    f"--plugin=protoc-gen-go-grpc={tools['protoc-gen-go-grpc']}",
                    f"--go_out={src}", f"--go-grpc_out={src}",
                    *map(str, sorted((ROOT / "protos" / "headwater" / "v1").glob("*.proto")))], check=True)
    shutil.copy(GO_DIR / "main.go", src / "hwexample" / "main.go")
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": f"{tmp_path}:{GOCODE}", "GOFLAGS": ""}
    built = subprocess.run([tools["go"], "build", "-o", str(tmp_path / "hwexample"), "."], cwd=src / "hwexample",
                           env=env, capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    run_id = uuid.uuid4().hex[:8]
    out = subprocess.run([str(tmp_path / "hwexample")], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HEADWATER_CONNECTION_STRING": client_stack.connection_string,
                              "HEADWATER_RUN_ID": run_id})
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["registry"] == client_stack.endpoints["registry"]
    assert result["published"] == 10 and result["read"] == 10
    assert result["rows"] == sorted(f"g{i}" for i in range(10))
    assert len(result["schemaId"]) == 32
    assert result["error"]["reason"] == "RESOURCE_NOT_FOUND" and result["error"]["code"] == "NotFound"
    assert result["error"]["metadata"] == {"resource": "hubs/no-such-hub", "service": "ingestion"}


def test_docs_carry_the_tested_go_example():
    doc = (ROOT / "docs" / "clients.md").read_text()
    assert (GO_DIR / "main.go").read_text().strip() in doc
