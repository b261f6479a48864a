"""`headwater up --profile scaled`: a 3-node NATS cluster, two ingestion instances on it behind
one (round-robin) address, the registry on PostgreSQL, two processing replicas and the sink,
as local processes. A job created and started once runs on both processing replicas and
its output (PostgreSQL) is exact while one of each service is killed with SIGKILL in turn
(an ingestion instance, a processing replica, the registry, the sink, a NATS node), each
restarted by `headwater up`'s supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from google.protobuf import struct_pb2

from headwater.auth import PolicyStore
from headwater.cli.up import read_pids
from headwater.compose import load_compose
from headwater.eventhub import EventData
from headwater.eventhub.aio import EventHubProducerClient
from headwater.nats_cluster import find_nats_server
from headwater.procs import headwater_cmd, wait_healthy
from headwater.retry import RetryPolicy
from tests.e2e.test_processing_faults import _exactly_once
from tests.integration.ingestion_support import conn_str
from tests.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("HEADWATER_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def test_scaled_profile_shape():
    services = {s.name: s for s in load_compose(ROOT / "compose.yaml", ("scaled",))}
    assert {"nats-1", "nats-2", "nats-3", "postgres"} <= set(services)
    assert services["ingestion"].replicas == 2 and services["processing"].replicas == 2
    assert services["ingestion"].environment["HEADWATER_INGESTION_LOG_BACKEND"] == "nats"
    assert services["ingestion"].environment["HEADWATER_INGESTION_NATS_REPLICAS"] == "3"
    assert services["registry"].environment["HEADWATER_REGISTRY_STORE"] == "postgres"
    single = {s.name: s for s in load_compose(ROOT / "compose.yaml")}
    assert single["ingestion"].replicas == 1
    assert single["ingestion"].environment["HEADWATER_INGESTION_LOG_BACKEND"] == "embedded"


def _have_nats() -> bool:
    try:
        find_nats_server()
        return True
    except FileNotFoundError:
        return False


PATIENT = RetryPolicy(max_attempts=200, max_delay_s=60, initial_backoff_s=0.05, max_backoff_s=0.5)


@contextlib.contextmanager
def _up_scaled(tmp_path):
    """``headwater up --profile scaled`` in its own home: (home, endpoints, its output lines, the process)."""
    home = tmp_path / "home"
    prefix = f"T{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "HEADWATER_HOME": str(home), "PYTHONUNBUFFERED": "1",
           "HEADWATER_REGISTRY_POSTGRES_DSN": PG_DSN,
           "HEADWATER_REGISTRY_POSTGRES_SCHEMA": f"hw_scaled_{uuid.uuid4().hex[:8]}",
           "HEADWATER_INGESTION_NATS_PREFIX": prefix, "HEADWATER_PROCESSING_CHECKPOINT_INTERVAL_S": "0.5"}
    proc = subprocess.Popen([*headwater_cmd(), "up", "-f", str(ROOT / "compose.yaml"), "--profile", "scaled",
                             "--ephemeral-ports"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    def read() -> None:
        for line in iter(proc.stdout.readline, ""):
            lines.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        def up() -> bool:
            assert proc.poll() is None, "".join(lines[-60:])
            return any(line.startswith("headwater up: ingestion") for line in lines)

        assert wait_until(up, timeout=150, every=0.1, fail=False), "".join(lines[-60:])
        endpoints = json.loads((home / "endpoints.json").read_text())
        yield home, endpoints, lines, proc
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=90)
        finally:
            reader.join(5)
    assert proc.returncode == 0, "".join(lines[-60:])
    assert not (home / "endpoints.json").exists()


def _stub(address: str, policy, module, cls):
    from headwater.channel import sync_channel
    from tests.conftest import conn_for

    ch = sync_channel(conn_for(address, policy))
    return ch, getattr(module, cls)(ch)


def _call(address: str, policy, service: str, method: str, request):
    from headwater.v1 import ingestion_pb2_grpc, processing_pb2_grpc, sink_pb2_grpc

    module, cls = {"ingestion": (ingestion_pb2_grpc, "IngestionServiceStub"),
                   "sink": (sink_pb2_grpc, "SinkServiceStub"),
                   "processing": (processing_pb2_grpc, "ProcessingServiceStub")}[service]
    ch, stub = _stub(address, policy, module, cls)
    try:
        return getattr(stub, method)(request, timeout=30)
    finally:
        ch.close()


def _wait(what: str, fact, timeout: float = 60.0, every: float = 0.2):
    """Until ``fact()`` is truthy (returned); a failed call counts as not yet."""
    # Any error counts as "not yet": a service restarting.
    last = wait_until(fact, timeout=timeout, every=every, fail=False, retry_on=(Exception,))
    if not last or isinstance(last, Exception):
        raise AssertionError(f"{what}: not after {timeout:.0f} s (last: {last!r})")
    return last


class _Producer(threading.Thread):
    """Trips with unique ids through the ingestion pair, from an idempotent producer that
    retries through kills: every acknowledged trip must come out exactly once."""

    def __init__(self, address: str, policy, hub: str, partitions: int) -> None:
        super().__init__(daemon=True)
        self.conn = conn_str(address, policy, hub)
        self.partitions = partitions
        self.acked: list[str] = []
        self.error: BaseException | None = None
        self.halt = threading.Event()

    def run(self) -> None:
        try:
            asyncio.run(self._send())
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    async def _send(self) -> None:
        async with EventHubProducerClient.from_connection_string(
                self.conn, enable_idempotent_partitions=True, retry_policy=PATIENT) as producer:
            n = 0
            while not self.halt.is_set():
                ids = [f"t{n + i:07d}" for i in range(20)]
                await producer.send_batch([EventData(json.dumps({"tripId": t})) for t in ids],
                                          partition_id=str((n // 20) % self.partitions))
                self.acked.extend(ids)
                n += 20
                await asyncio.sleep(0.02)

    def stop(self) -> list[str]:
        self.halt.set()
        self.join(120)
        assert self.error is None, f"the producer failed: {self.error!r}"
        return list(self.acked)


# Five kill -9 and restarts: 164 s alone at load average 10, past the default 120 s.
@pytest.mark.timeout(600)
@pytest.mark.skipif(not _have_nats(), reason="no nats-server binary")
def test_headwater_up_scaled_keeps_a_job_exact_while_one_of_each_service_is_killed(tmp_path):
    from headwater.v1 import ingestion_pb2 as ipb
    from headwater.v1 import processing_pb2 as ppb
    from headwater.v1 import sink_pb2 as spb
    from tests.integration.processing_support import pg_drop, pg_rows, pg_table

    table = pg_table()
    with _up_scaled(tmp_path) as (home, endpoints, lines, _proc):
        assert {"ingestion", "registry", "processing", "sink"} <= set(endpoints), "".join(lines)
        assert len(endpoints["ingestion"].split(",")) == 2 and len(endpoints["processing"].split(",")) == 2
        assert any("3-node JetStream cluster" in line for line in lines)
        for address in ",".join(endpoints[s] for s in ("ingestion", "registry", "processing", "sink")).split(","):
            wait_healthy(address, timeout=10)
        root = PolicyStore(home / "auth.json").ensure().root()
        ing, sink = endpoints["ingestion"], endpoints["sink"]
        proc_a, proc_b = endpoints["processing"].split(",")

        _call(ing, root, "ingestion", "CreateHub",
              ipb.CreateHubRequest(hub_id="trips", hub=ipb.Hub(partition_count=4)))
        cfg = struct_pb2.Struct()
        cfg.update({"dsn": PG_DSN, "table": table})
        _call(sink, root, "sink", "CreateSink",
              spb.CreateSinkRequest(sink_id="pg", sink=spb.Sink(kind="postgres", config=cfg)))
        job = ppb.Job(name="jobs/copy", query="SELECT tripId INTO [Out] FROM [Trips]",
                      inputs=[ppb.JobInput(alias="Trips", kind=ppb.INPUT_KIND_STREAM, hub="hubs/trips",
                                           format="json")],
                      outputs=[ppb.JobOutput(alias="Out", sink="sinks/pg")],
                      output_error_policy=ppb.OUTPUT_ERROR_POLICY_RETRY)
        # Created and started once, through replica A; B joins from the shared catalogue.
        _call(proc_a, root, "processing", "CreateJob", ppb.CreateJobRequest(job=job))
        _call(proc_a, root, "processing", "StartJob",
              ppb.StartJobRequest(name="jobs/copy", start_mode=ppb.JOB_START_MODE_EARLIEST))

        def owners() -> dict[str, str]:
            resp = _call(ing, root, "ingestion", "ListOwnerships",
                         ipb.ListOwnershipsRequest(hub="trips", consumer_group="$Default"))
            now = time.time()
            return {o.partition_id: o.owner_id for o in resp.ownerships
                    if o.owner_id and o.expire_time.ToNanoseconds() / 1e9 > now}

        _wait("both replicas own partitions", lambda: len(set(owners().values())) == 2)

        def rows() -> list[str]:
            return pg_rows(table, "tripId")

        producer = _Producer(ing, root, "trips", 4)
        producer.start()
        try:
            for name in ("ingestion-1", "processing-1", "registry", "sink", "nats-1"):
                _wait("trips flowing", lambda: len(producer.acked) >= 200 and len(rows()) >= 100)
                before = read_pids(home / "up.pids")[name]
                os.killpg(before, signal.SIGKILL)
                new = _wait(f"{name} restarted", lambda n=name, b=before: read_pids(home / "up.pids").get(n, b) != b
                            and read_pids(home / "up.pids")[n], timeout=90)
                _wait(f"{name}'s restart said", lambda n=name: any(f"{n} restarted" in line for line in lines))
                # The pipeline runs through it: what was sent before the kill comes out.
                sent = len(producer.acked)
                _wait(f"the job's output after {name} came back (pid {new})",
                      lambda s=sent: len(set(rows())) >= s, timeout=90)
        finally:
            acked = producer.stop()
        _wait("every acknowledged trip in the sink", lambda: set(rows()) >= set(acked), timeout=90)
        # Stopped through B: A leaves the job too (its tasks stop, its claims go back).
        _call(proc_b, root, "processing", "StopJob", ppb.StopJobRequest(name="jobs/copy"))
        _wait("no replica owns a partition", lambda: not owners())
        try:
            _exactly_once(acked, rows(), "scaled stack, one of each service killed")
        finally:
            pg_drop(table)
