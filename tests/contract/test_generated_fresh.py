"""The generated code in headwater/v1 matches the .proto files (run `make proto` when this fails)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = sorted((ROOT / "protos" / "headwater" / "v1").glob("*.proto"))


def test_every_proto_has_generated_modules():
    for proto in PROTOS:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (ROOT / "headwater" / "v1" / f"{proto.stem}{suffix}").exists(), f"{proto.name}: run make proto"


def test_generated_code_is_fresh(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", f"-I{ROOT / 'protos'}", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *map(str, PROTOS)],
        check=True, cwd=ROOT,
    )
    # `make proto` then sets the stubs' grpc version check to the Makefile's GRPC_FLOOR.
    floor = re.search(r"^GRPC_FLOOR := ([\d.]+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    stale = []
    for fresh in sorted((tmp_path / "headwater" / "v1").iterdir()):
        kept = ROOT / "headwater" / "v1" / fresh.name
        data = fresh.read_bytes()
        if fresh.name.endswith("_pb2_grpc.py"):
            data = re.sub(rb"(?m)^GRPC_GENERATED_VERSION = .*$", f"GRPC_GENERATED_VERSION = '{floor}'".encode(), data)
        if not kept.exists() or kept.read_bytes() != data:
            stale.append(fresh.name)
    assert not stale, f"generated code is stale against protos/ (run `make proto`): {stale}"
