"""Shared fixtures: isolated HEADWATER_HOME, plugin autoload off, services as real processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from headwater.auth import ConnectionString, PolicyStore
from headwater.interpreter import tune_interpreter
from headwater.procs import ServiceProcess, headwater_cmd
from tests.zygote import ForkedServiceProcess

# pytest keeps the test modules it rewrites (assertions) in __pycache__ only where Python may
# write bytecode. This machine sets PYTHONDONTWRITEBYTECODE=1, so each pytest process rewrote
# and compiled every test module again, every run (collection 5.5 -> 2.3 CPU s a process once
# cached, and the suite has five of them). Only these processes: the services and commands the
# tests start follow the environment (their modules' bytecode comes from `make bytecode`).
sys.dont_write_bytecode = False

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config) -> None:
    """The test process runs the engine and services in process: it is an entry point like
    ``headwater serve`` and tunes the interpreter the same way, once."""
    tune_interpreter()


def _weight(item: pytest.Item) -> int:
    if item.get_closest_marker("slow") is not None:
        return 0
    parts = Path(str(item.fspath)).relative_to(ROOT).parts
    return 1 if len(parts) > 1 and parts[1] in ("e2e", "integration", "clients") else 2


def pytest_collection_modifyitems(session, config, items: list[pytest.Item]) -> None:
    """The longest tests first (``slow``, then the e2e, integration and client tests), each
    group in its collected order: under ``pytest -n 2`` the workers share them from the start,
    and the short unit tests fill the end, so neither worker is left alone with a long test."""
    items.sort(key=_weight)
    _mark_xdist_groups(config, items)


def _mark_xdist_groups(config, items: list[pytest.Item]) -> None:
    """``--dist loadgroup`` runs the tests of one ``xdist_group`` on one worker: pytest-xdist
    3.8 appends ``@group`` to ``item._nodeid``, which pytest 9.2 no longer reads (the id is
    ``item._id``), so every group was split over both workers (two ``headwater up`` stacks and
    two Spark sessions for tests/clients; the two mypy runs free to run at once on one cache). The same
    suffix, where pytest 9.2 keeps the id."""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        suffix = "@" + "_".join(names)
        if names and not item.nodeid.endswith(suffix):
            item._id = coerce_node_id(item.nodeid + suffix)


#: A stream on the machine's NATS server that the tests never delete. nats-server (2.9, Debian's)
#: removes an account's stream folder when its last stream is deleted, in a goroutine that
#: races with a stream being created at that moment ("could not create storage directory -
#: mkdir .../jetstream/$G/streams: no such file or directory", 10077): with tests creating and
#: deleting streams in parallel, the account's streams can drop to none for an instant.
NATS_ANCHOR_STREAM = "HEADWATER_TEST_ANCHOR"


@pytest.fixture(scope="session", autouse=True)
def _nats_anchor_stream():
    """Keep one stream on the test NATS server (when it runs) so the race above cannot happen."""
    import asyncio
    import os
    import socket
    from urllib.parse import urlparse

    url = os.environ.get("HEADWATER_TEST_NATS_URL", "nats://127.0.0.1:4222")
    where = urlparse(url)
    try:
        socket.create_connection((where.hostname or "127.0.0.1", where.port or 4222), timeout=1).close()
    except OSError:
        yield  # no NATS here: its tests say so themselves
        return

    async def ensure() -> None:
        import nats
        from nats.js.api import StorageType, StreamConfig

        nc = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
        try:
            await nc.jetstream().add_stream(StreamConfig(name=NATS_ANCHOR_STREAM, subjects=["headwater.test.anchor"],
                                                         storage=StorageType.FILE, max_msgs=1))
        finally:
            await nc.close()

    try:
        asyncio.run(ensure())
    except Exception as exc:  # noqa: BLE001 - another worker made it first with the same config, or no JetStream
        if "already in use" not in str(exc):
            print(f"conftest: the NATS anchor stream: {exc!r}", file=sys.stderr)
    yield


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
                "HEADWATER_SINK_DASHBOARD_PORT": "0",
                # Hundreds of services start in the suite: the compiled kernels load at the first
                # large batch (tests/integration/test_ingestion_service.py checks the preload).
                "HEADWATER_INGESTION_PRELOAD_KERNELS": "0"}
        proc = ForkedServiceProcess(name, argv, env={**base, **(env or {})})
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.kill()
