"""The book's Event Hubs examples (examples/book_*.py), run as written against a
real ingestion process: producer, checkpointing consumer, replay, single partition."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest

from headwater.auth import generate_sas_token
from headwater.eventhub import EventData, EventHubProducerClient, ServiceCheckpointStore
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.integration.ingestion_support import conn_str
from tests.wait import wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


class Script:
    """An example running in its own process, its output collected line by line."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-u", str(EXAMPLES / name)], env={**os.environ, **env},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, predicate, timeout: float = 30.0) -> list[str]:
        def holds() -> bool:
            if predicate(self.lines):
                return True
            if self.proc.poll() is not None:
                self._pump_thread.join(10)  # the rest of its output, up to end of file
                if not predicate(self.lines):
                    raise AssertionError(f"{self.proc.args[-1]} exited {self.proc.returncode}:\n"
                                         + "\n".join(self.lines))
                return True
            return False

        if not wait_until(holds, timeout=timeout, every=0.05, fail=False):
            raise AssertionError("timed out; output:\n" + "\n".join(self.lines))
        return self.lines

    def interrupt(self) -> None:
        """Ctrl-C: the consumer closes and hands its partitions back."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(15)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def hub(service_process, tmp_path, root_policy):
    proc = service_process("ingestion", "--data-dir", str(tmp_path / "data"))
    token = generate_sas_token(f"headwater://{proc.address}/", root_policy.name, root_policy.key)
    with grpc.insecure_channel(proc.address) as ch:
        ingestion_pb2_grpc.IngestionServiceStub(ch).CreateHub(
            ingestion_pb2.CreateHubRequest(hub_id="trips", hub=ingestion_pb2.Hub(partition_count=2)),
            metadata=[("authorization", token)])
    env = {"HEADWATER_CONNECTION_STRING": conn_str(proc.address, root_policy), "HEADWATER_EVENTHUB": "trips"}
    scripts: list[Script] = []

    def run(name: str, **extra: str) -> Script:
        script = Script(name, {**env, **extra})
        scripts.append(script)
        return script

    yield proc, run
    for script in scripts:
        script.stop()


def test_book_producer_then_checkpointing_consumer_then_replay(hub, root_policy):
    proc, run = hub
    producer = run("book_producer.py", TRIPS="30")
    producer.wait_for(lambda lines: "sent" in lines)
    assert producer.proc.wait(10) == 0
    consumer = run("book_checkpoint_consumer.py")
    lines = consumer.wait_for(lambda ls: sum(1 for x in ls if x.startswith("partition")) >= 30)
    trips = [json.loads(x.split(": ", 1)[1]) for x in lines if x.startswith("partition")]
    assert len({t["tripId"] for t in trips}) == 30 and {"startLocation", "fare", "distancia"} <= set(trips[0])
    # Checkpoints were written to the service's store, per partition.
    store = ServiceCheckpointStore.from_connection_string(conn_str(proc.address, root_policy))
    cps = wait_until(lambda: store.list_checkpoints("", "trips", "$Default"),
                     lambda cps: sum(c["sequence_number"] + 1 for c in cps) == 30, timeout=10, what="30 checkpointed")
    consumer.interrupt()
    # A restarted checkpointing consumer resumes after the checkpoints: only new trips.
    again = run("book_checkpoint_consumer.py")
    run("book_producer.py", TRIPS="2").wait_for(lambda ls: "sent" in ls)
    again.wait_for(lambda ls: sum(1 for x in ls if x.startswith("partition")) >= 2)
    # A marker last on each partition: an old trip read again would be printed before it.
    with EventHubProducerClient.from_connection_string(conn_str(proc.address, root_policy, "trips")) as p:
        for pid in ("0", "1"):
            p.send_batch([EventData("end")], partition_id=pid)
    again.wait_for(lambda ls: {"partition 0: end", "partition 1: end"} <= set(ls))
    assert sum(1 for x in again.lines if x.startswith("partition") and not x.endswith(": end")) == 2
    # The processor reads exclusively (owner level, as Event Hubs' processor);
    # stop it before replaying in the same consumer group.
    again.interrupt()
    # Replay reads partition 0 from its start.
    replay = run("book_replay.py")
    p0 = next((c for c in cps if c["partition_id"] == "0"), None)
    expected = p0["sequence_number"] + 1 if p0 else 0
    replay.wait_for(lambda ls: sum(1 for x in ls if x.startswith("replayed")) >= expected)
    numbers = [int(x.split()[1].rstrip(":")) for x in replay.lines if x.startswith("replayed")]
    assert numbers[:expected] == list(range(expected))


def test_book_single_partition_reads_only_partition_0_new_events(hub, root_policy):
    proc, run = hub
    with EventHubProducerClient.from_connection_string(conn_str(proc.address, root_policy, "trips")) as p:
        p.send_batch([EventData("old")], partition_id="0")
        reader = run("book_single_partition.py")
        reader.wait_for(lambda ls: "reading partition 0" in ls)

        # Its read opens at "latest" after that line: probes go to partition 0 until one is
        # printed, so the reader is reading (the probes before are rightly skipped).
        def probe() -> list[str]:
            p.send_batch([EventData("probe")], partition_id="0")
            return reader.lines

        wait_until(probe, lambda ls: "partition 0: probe" in ls, timeout=30, what="the reader reading")
        p.send_batch([EventData("new-0")], partition_id="0")
        p.send_batch([EventData("new-1")], partition_id="1")
        # A marker last on partition 0: anything else it would print comes before it.
        p.send_batch([EventData("end")], partition_id="0")
    reader.wait_for(lambda ls: "partition 0: end" in ls)
    assert [x for x in reader.lines if x.startswith("partition") and not x.endswith(": probe")] == [
        "partition 0: new-0", "partition 0: end"]
