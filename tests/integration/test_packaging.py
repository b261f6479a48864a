"""Packaging: `pip install headwater` is the SDK and the CLI without the servers' libraries.

The wheel is built from a copy of the source tree and installed, with its own dependencies resolved
by pip (the pip cache keeps this to seconds), into a fresh venv with nothing else in it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import ROOT

# One build and one install for the whole module; it must not run twice in parallel.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("packaging"), pytest.mark.timeout(600)]

#: Libraries of the extras: none may come with a bare install.
SERVER_LIBRARIES = ("polars", "numpy", "pyarrow", "numba", "psycopg", "deltalake", "nats", "kafka",
                    "pyspark", "prometheus_client", "aiohttp", "msgpack", "re2", "quickjs", "shapely")

PROBE = f"""
import importlib.util, sys
import headwater
from headwater import HeadwaterError, Reason, hookimpl
from headwater.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from headwater.eventhub.aio import EventHubProducerClient as AioProducer
from headwater.schemaregistry import SchemaRegistryClient
from headwater.schemaregistry.avroencoder import AvroEncoder
from headwater.v1 import ingestion_pb2_grpc
present = [m for m in {SERVER_LIBRARIES!r} if importlib.util.find_spec(m) is not None]
typed = importlib.util.find_spec("headwater").submodule_search_locations[0] + "/py.typed"
import os
print("present=" + ",".join(present), "typed=" + str(os.path.exists(typed)))
"""


def _copy_tree(dst: Path) -> None:
    """The files setuptools reads, without the venv, git data, node_modules or build leftovers."""
    ignore = shutil.ignore_patterns(".venv", ".git", "node_modules", "build", "dist", "*.egg-info",
                                    "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "tests")
    shutil.copytree(ROOT, dst, ignore=ignore, symlinks=True)


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("packaging")
    src = tmp / "src"
    _copy_tree(src)
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run([*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
                            str(src)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp / "dist").glob("headwater-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # The test environment's pip installs into the new venv: the wheel and what it declares, no extras.
    installed = subprocess.run([*pip, "--python", str(venv / "bin" / "python"), "install", "-q", str(wheel)],
                               capture_output=True, text=True, timeout=400)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return venv


def test_bare_install_is_the_sdk_and_cli_without_the_servers_libraries(bare_venv: Path) -> None:
    probe = subprocess.run([str(bare_venv / "bin" / "python"), "-c", PROBE], capture_output=True, text=True,
                           timeout=120, cwd=bare_venv)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["present=", "typed=True"], probe.stdout

    help_ = subprocess.run([str(bare_venv / "bin" / "headwater"), "--help"], capture_output=True, text=True,
                           timeout=120, cwd=bare_venv)
    assert help_.returncode == 0, help_.stderr
    assert "hub" in help_.stdout and "job" in help_.stdout and "schema" in help_.stdout
    assert help_.stderr == ""  # no plugin or import complaint on a bare install


def test_grpcio_is_a_range_the_generated_code_accepts() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    grpcio = next(d for d in deps if re.match(r"grpcio[><=]", d))
    floor = re.search(r">=([\d.]+)", grpcio).group(1)
    assert "<2" in grpcio and "==" not in grpcio
    makefile_floor = re.search(r"^GRPC_FLOOR := ([\d.]+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert makefile_floor.split(".")[:2] == floor.split(".")[:2]
    stubs = sorted((ROOT / "headwater" / "v1").glob("*_pb2_grpc.py"))
    assert stubs
    for stub in stubs:
        generated = re.search(r"^GRPC_GENERATED_VERSION = '([\d.]+)'", stub.read_text(), re.M).group(1)
        assert generated == makefile_floor, f"{stub.name}: run make proto"
