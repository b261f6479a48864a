"""Shared fixtures: isolated HEADWATER_HOME, plugin autoload off, services as real processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from headwater.auth import ConnectionString, PolicyStore
from headwater.procs import ServiceProcess, headwater_cmd

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own state folder and policies file."""
    home = tmp_path / "hwhome"
    home.mkdir()
    monkeypatch.setenv("HEADWATER_HOME", str(home))
    yield home


@pytest.fixture
def root_policy(_isolated_home):
    return PolicyStore(_isolated_home / "auth.json").ensure().root()


def conn_for(address: str, policy, hub: str = "") -> ConnectionString:
    return ConnectionString(endpoint=f"headwater://{address}/", shared_access_key_name=policy.name,
                            shared_access_key=policy.key, entity_path=hub)


@pytest.fixture
def service_process(_isolated_home, tmp_path):
    """Start services as real processes: ``service_process("ingestion", "--data-dir", d)``.

    Returns a started :class:`headwater.procs.ServiceProcess` (``.address``,
    ``.kill()`` for kill -9, ``.terminate()``); all are killed at teardown.
    """
    started: list[ServiceProcess] = []

    def start(name: str, *args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        argv = [*headwater_cmd(), "serve", name, "--port", "0", "--metrics-port", "-1", *args]
        # No fixed ports: HTTP ingest and the dashboard bind free ones too.
        base = {"HEADWATER_HOME": str(_isolated_home), "HEADWATER_INGESTION_HTTP_PORT": "0",
                "HEADWATER_SINK_DASHBOARD_PORT": "0"}
        proc = ServiceProcess(name, argv, env={**base, **(env or {})})
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.kill()
