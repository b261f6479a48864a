"""kill -9 the ingestion process under several producers, restart it, and read back
every acknowledged event exactly once, in per-partition order."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict

import grpc
import pytest

from headwater.auth import generate_sas_token
from headwater.errors import HeadwaterError
from headwater.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from headwater.procs import free_port
from headwater.retry import RetryPolicy
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.integration.ingestion_support import conn_str
from tests.wait import wait_until

PRODUCERS = 4
PARTITIONS = 4
PATIENT = RetryPolicy(max_attempts=50, max_delay_s=30, initial_backoff_s=0.05, max_backoff_s=0.5)


def _producer(conn: str, name: str, stop: threading.Event, acked: list, errors: list) -> None:
    """Sends batches of 20 to partitions in turn; a failed batch is re-sent as is
    (same idempotent sequence) until acknowledged."""
    producer = EventHubProducerClient.from_connection_string(conn, enable_idempotent_partitions=True,
                                                             retry_policy=PATIENT)
    n = 0
    try:
        while not stop.is_set():
            pid = str(n // 20 % PARTITIONS)
            batch = producer.create_batch(partition_id=pid)
            bodies = []
            for _ in range(20):
                body = json.dumps({"p": name, "n": n})
                batch.add(EventData(body))
                bodies.append(body)
                n += 1
            while True:
                try:
                    resp = producer.send_batch(batch, timeout=5)
                    break
                except HeadwaterError as exc:
                    if not exc.is_transient and "UNAVAILABLE" not in str(exc):
                        errors.append(exc)
                    # A backoff before the same batch goes again (the service is restarting):
                    # a pace, not a synchronisation.
                    time.sleep(0.1)
            acked.append((resp.partition_id, resp.first_sequence_number, bodies))
    finally:
        producer.close()


@pytest.mark.slow
def test_acknowledged_events_survive_kill_9_exactly_once_in_order(service_process, tmp_path, root_policy):
    port = free_port()
    data = str(tmp_path / "data")
    proc = service_process("ingestion", "--data-dir", data, "--port", str(port))
    conn = conn_str(proc.address, root_policy, "trips")
    with grpc.insecure_channel(proc.address) as ch:
        ingestion_pb2_grpc.IngestionServiceStub(ch).CreateHub(
            ingestion_pb2.CreateHubRequest(hub_id="trips", hub=ingestion_pb2.Hub(partition_count=PARTITIONS)),
            metadata=[("authorization", generate_sas_token(f"headwater://{proc.address}/", root_policy.name,
                                                           root_policy.key))])

    stop = threading.Event()
    acked: list = []
    errors: list = []
    threads = [threading.Thread(target=_producer, args=(conn, f"p{i}", stop, acked, errors), daemon=True)
               for i in range(PRODUCERS)]
    for t in threads:
        t.start()
    def progress(batches: int) -> None:
        """Wait until the producers have had ``batches`` more batches acknowledged."""
        base = len(acked)
        wait_until(lambda: len(acked), lambda n: n >= base + batches, timeout=60, what=f"{batches} more batches")

    for _ in range(3):
        progress(10)
        proc.kill()  # kill -9, mid-stream
        proc = service_process("ingestion", "--data-dir", data, "--port", str(port))
    progress(10)
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(acked) > 20, "the producers made progress"

    # Read everything back.
    consumer = EventHubConsumerClient.from_connection_string(conn, "$Default")
    stored: dict[str, list] = defaultdict(list)
    expected_total = sum(len(b) for _, _, b in acked)

    caught_up: set[str] = set()

    def on_batch(ctx, events):
        if not events:
            caught_up.add(ctx.partition_id)
            if len(caught_up) == PARTITIONS:
                consumer.close()
            return
        stored[ctx.partition_id].extend((e.sequence_number, e.body_as_str()) for e in events)

    consumer.receive_batch(on_batch, max_batch_size=1000, starting_position="-1", max_wait_time=1.0)

    everything = [body for part in stored.values() for _, body in part]
    assert len(everything) == len(set(everything)), "no event is stored twice"
    acked_bodies = [b for _, _, bodies in acked for b in bodies]
    assert len(acked_bodies) == expected_total
    assert set(acked_bodies) <= set(everything), "every acknowledged event is there"
    for pid, events in stored.items():
        seqs = [s for s, _ in events]
        assert seqs == list(range(len(seqs))), f"partition {pid}: sequence numbers are gap-free from 0"
        last: dict[str, int] = {}
        for _, body in events:
            ev = json.loads(body)
            assert ev["n"] > last.get(ev["p"], -1), f"partition {pid}: {ev['p']} out of order"
            last[ev["p"]] = ev["n"]
    for pid, first, bodies in acked:  # each ack points at exactly its events
        part = dict(stored[pid])
        assert [part[first + i] for i in range(len(bodies))] == bodies


def test_sigterm_drains_and_a_restart_keeps_everything(service_process, tmp_path, root_policy):
    """A graceful restart under a long-polling reader: nothing lost, the reader carries on."""
    data, port = str(tmp_path / "data"), free_port()
    proc = service_process("ingestion", "--data-dir", data, "--port", str(port))
    token = generate_sas_token(f"headwater://{proc.address}/", root_policy.name, root_policy.key)
    with grpc.insecure_channel(proc.address) as ch:
        ingestion_pb2_grpc.IngestionServiceStub(ch).CreateHub(
            ingestion_pb2.CreateHubRequest(hub_id="h", hub=ingestion_pb2.Hub(partition_count=2)),
            metadata=[("authorization", token)])
    conn = conn_str(proc.address, root_policy, "h")
    consumer = EventHubConsumerClient.from_connection_string(conn, "$Default")
    seen: list[str] = []

    def on_event(ctx, event):
        seen.append(event.body_as_str())
        if event.body_as_str() == "next":
            consumer.close()

    reader = threading.Thread(target=lambda: consumer.receive(on_event, partition_id="1", starting_position="-1"),
                              daemon=True)
    reader.start()
    with EventHubProducerClient.from_connection_string(conn) as p:
        p.send_batch([EventData(f"e{i}") for i in range(50)], partition_id="1")
    wait_until(lambda: len(seen), lambda n: n >= 50, timeout=20, every=0.05, what="50 events read", fail=False)
    assert proc.terminate() == 0, "SIGTERM drains and exits cleanly"
    proc = service_process("ingestion", "--data-dir", data, "--port", str(port))
    # Channels right after a restart may wait out gRPC's reconnect backoff: be patient.
    props = EventHubConsumerClient.from_connection_string(conn, "$Default", retry_policy=PATIENT) \
        .get_partition_properties("1")
    assert (props["beginning_sequence_number"], props["last_enqueued_sequence_number"]) == (0, 49)
    with EventHubProducerClient.from_connection_string(conn, retry_policy=PATIENT) as p:
        assert p.send_batch([EventData("next")], partition_id="1").first_sequence_number == 50
    reader.join(30)
    assert seen == [f"e{i}" for i in range(50)] + ["next"], "the reader reconnected and missed nothing"
