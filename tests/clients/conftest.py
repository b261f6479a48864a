"""One `headwater up --ephemeral-ports` stack for the client tests (Node, Go, curl, Spark).

The tests of this folder share it (one xdist group): each uses its own hub, group, sink
and job names.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from headwater.procs import headwater_cmd
from tests.zygote import run_headwater

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ClientStack:
    home: Path
    endpoints: dict[str, str]
    connection_string: str
    proc: subprocess.Popen

    def cli(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        env = {**os.environ, "HEADWATER_HOME": str(self.home)}
        return run_headwater(list(argv), env=env, timeout=60, **kw)


@pytest.fixture(scope="session")
def client_stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("client-stack") / "home"
    env = {**os.environ, "HEADWATER_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([*headwater_cmd(), "up", "-f", str(ROOT / "compose.yaml"), "--ephemeral-ports"],
                            env=env, cwd=home.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("headwater up exited:\n" + "".join(lines[-40:]))
        lines.append(line)
        if line.startswith("headwater up: ") and "localhost:" in line:
            break
    import threading

    threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # keep the pipe drained
    endpoints = json.loads((home / "endpoints.json").read_text())
    conn = subprocess.run([*headwater_cmd(), "connection-string"], env=env, capture_output=True, text=True,
                          timeout=60, check=True).stdout.strip()
    stack = ClientStack(home, endpoints, conn, proc)
    yield stack
    stack.cli("down")
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
