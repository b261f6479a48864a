"""Side endpoints bind at start and load their library at the first connection
(headwater/listeners.py): the ingestion service's Kafka endpoint (kafka-python) and HTTP ingest
(aiohttp), and the sink's dashboard (aiohttp).

Each service runs in a fresh interpreter (``python -c``) that starts it in process and reports which
of these libraries it has imported; this test process is the client. Right after start the service
has imported neither, yet the ports are bound and printed; the first connections (which arrive
before the library is loaded) are served: Kafka records produced with kafka-python and an HTTP
ingest POST are stored and read back over gRPC, and the dashboard's page answers. Then the
libraries are loaded, and the service stops cleanly.
"""

from __future__ import annotations

import asyncio
import json
import struct
import subprocess
import sys
import urllib.request

import pytest

from headwater.auth import generate_sas_token
from tests.conftest import ROOT
from tests.integration.ingestion_support import create_hub, read_all
from tests.integration.kafka_support import Raw, kafka_python_conf

pytestmark = pytest.mark.timeout(180)

#: Starts the service in process and reports (one JSON line per line read on stdin) which of the
#: side endpoints' libraries this interpreter has imported; stops the service at EOF.
CHILD = """
import asyncio, json, sys
from headwater.config import load_config
from headwater.server import serve_in_process

LIBS = ("kafka", "aiohttp")

def report(**extra):
    print(json.dumps({"loaded": [m for m in LIBS if m in sys.modules], **extra}), flush=True)

async def main(kind):
    if kind == "ingestion":
        from headwater.services.ingestion.config import IngestionConfig
        from headwater.services.ingestion.server import IngestionService
        cfg = load_config(IngestionConfig, "ingestion", None, env={}, grpc_port=0, metrics_port=-1, http_port=0,
                          kafka_port=0, preload_kernels=False, data_dir=sys.argv[2])
        service = IngestionService(cfg)
    else:
        from headwater.services.sink.config import SinkConfig
        from headwater.services.sink.server import SinkService
        cfg = load_config(SinkConfig, "sink", None, env={}, grpc_port=0, metrics_port=-1, dashboard_port=0,
                          data_dir=sys.argv[2])
        service = SinkService(cfg)
    async with serve_in_process(service) as running:
        s = running.service
        report(address=running.address, kafka_port=getattr(s, "kafka_port", -1),
               http_port=getattr(s, "http_port", -1), dashboard_url=getattr(s, "dashboard_url", ""))
        while await asyncio.to_thread(sys.stdin.readline):
            report()

asyncio.run(main(sys.argv[1]))
"""


class _Child:
    """The service in its own interpreter; ``report()`` asks it what it has imported."""

    def __init__(self, kind: str, data_dir: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", CHILD, kind, data_dir], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.started = self._read()
        self.address = self.started["address"]

    def _read(self) -> dict:
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"the service exited: {self.proc.wait()}\n{self.proc.stderr.read()[-4000:]}")
            if line.startswith("{"):
                return json.loads(line)

    def report(self) -> dict:
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        return self._read()

    def stop(self) -> str:
        """Close stdin (the service stops); its stderr, after a clean exit."""
        _, err = self.proc.communicate(timeout=60)
        assert self.proc.returncode == 0, err[-4000:]
        return err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def child(tmp_path):
    started: list[_Child] = []

    def start(kind: str) -> _Child:
        c = _Child(kind, str(tmp_path / kind))
        started.append(c)
        return c

    yield start
    for c in started:
        c.kill()


def _api_versions_at_once(port: int, n: int) -> list[int]:
    """``n`` connections, each sending an ApiVersions request before any answer is read: the
    error code of each answer."""
    from kafka.protocol.metadata import ApiVersionsRequest, ApiVersionsResponse

    conns = [Raw(port) for _ in range(n)]
    try:
        for i, raw in enumerate(conns):
            request = ApiVersionsRequest[0]()
            request.with_header(correlation_id=i + 1, client_id="deferred-test")
            raw.sock.sendall(request.encode(version=0, header=True, framed=True))
        codes = []
        for i, raw in enumerate(conns):
            size = struct.unpack(">i", raw._read(4))[0]
            resp = ApiVersionsResponse[0].decode(raw._read(size), version=0, header=True)
            assert resp.header.correlation_id == i + 1
            codes.append(resp.error_code)
        return codes
    finally:
        for raw in conns:
            raw.close()


def _produce(port: int, child: _Child, policy, hub: str, values: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(**kafka_python_conf(port, child, policy), api_version=(2, 5))
    try:
        for i, v in enumerate(values):
            producer.send(hub, v, key=f"k{i}".encode())
        producer.flush(30)
    finally:
        producer.close(10)


def _post(url: str, body: bytes, token: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Authorization": token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, json.loads(resp.read())


def test_ingestion_loads_kafka_and_aiohttp_at_the_first_connection(child, root_policy) -> None:
    svc = child("ingestion")
    assert svc.started["loaded"] == [], "kafka-python and aiohttp are loaded at the first connection, not at start"
    kafka_port, http_port = svc.started["kafka_port"], svc.started["http_port"]
    assert kafka_port > 0 and http_port > 0

    # The first Kafka connections, several at once, each sending a request before kafka-python is
    # loaded (they wait in the listen backlog meanwhile): each is answered.
    assert _api_versions_at_once(kafka_port, 4) == [0, 0, 0, 0]
    asyncio.run(create_hub(svc.address, root_policy, "h", 2))
    _produce(kafka_port, svc, root_policy, "h", [f"kafka-{i}".encode() for i in range(10)])

    token = generate_sas_token(f"headwater://{svc.address}/", root_policy.name, root_policy.key)
    status, body = _post(f"http://127.0.0.1:{http_port}/h/partitions/0/messages", b'[{"n": 1}, {"n": 2}]', token)
    assert status == 201 and body["lastSequenceNumber"] - body["firstSequenceNumber"] == 1

    async def read() -> list[bytes]:
        got = []
        for pid in ("0", "1"):
            got += [e.body_as_str().encode() for e in await read_all(svc.address, root_policy, "h", pid)]
        return got

    events = asyncio.run(read())
    assert {f"kafka-{i}".encode() for i in range(10)} <= set(events)
    assert {b'{"n":1}', b'{"n":2}'} <= set(events)
    assert svc.report()["loaded"] == ["kafka", "aiohttp"]
    err = svc.stop()
    assert "failed to start at its first connection" not in err, err[-4000:]


def test_sink_dashboard_loads_aiohttp_at_the_first_connection(child) -> None:
    sink = child("sink")
    assert sink.started["loaded"] == [], "aiohttp is loaded at the dashboard's first connection, not at start"
    url = sink.started["dashboard_url"].replace("localhost", "127.0.0.1")
    with urllib.request.urlopen(url + "/", timeout=30) as resp:  # the first connection: served
        assert resp.status == 200 and b"<html" in resp.read().lower()
    with urllib.request.urlopen(url + "/api/datasets", timeout=30) as resp:
        assert json.loads(resp.read()) == []
    assert sink.report()["loaded"] == ["aiohttp"]
    sink.stop()
