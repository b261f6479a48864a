"""The blocking SDK against a real ingestion process: producer, balanced consumer with the
sync BlobCheckpointStore, checkpoints, close() from another thread."""

from __future__ import annotations

import threading

import grpc

from headwater.auth import generate_sas_token
from headwater.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from headwater.eventhub.extensions.checkpointstoreblob import BlobCheckpointStore
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.integration.ingestion_support import conn_str
from tests.wait import wait_until


def test_sync_producer_and_checkpointing_consumer(service_process, tmp_path, root_policy):
    proc = service_process("ingestion", "--data-dir", str(tmp_path / "data"))
    with grpc.insecure_channel(proc.address) as ch:
        ingestion_pb2_grpc.IngestionServiceStub(ch).CreateHub(
            ingestion_pb2.CreateHubRequest(hub_id="h", hub=ingestion_pb2.Hub(partition_count=3)),
            metadata=[("authorization", generate_sas_token(f"headwater://{proc.address}/", root_policy.name,
                                                           root_policy.key))])
    conn = conn_str(proc.address, root_policy, "h")
    with EventHubProducerClient.from_connection_string(conn) as producer:
        for pid in ("0", "1", "2"):
            batch = producer.create_batch(partition_id=pid)
            for i in range(4):
                batch.add(EventData(f"{pid}-{i}"))
            producer.send_batch(batch)
        assert producer.get_partition_ids() == ["0", "1", "2"]

    store = BlobCheckpointStore.from_connection_string(conn_str(proc.address, root_policy), "ignored")
    consumer = EventHubConsumerClient.from_connection_string(conn, "$Default", checkpoint_store=store,
                                                             load_balancing_interval=0.2)
    got: list[str] = []
    closed_partitions: list[str] = []

    def on_event(ctx, event):
        got.append(event.body_as_str())
        ctx.update_checkpoint(event)

    def on_partition_close(ctx, reason):
        closed_partitions.append(ctx.partition_id)

    def stop_when_done():
        # Every event read and its checkpoint stored (update_checkpoint follows the append).
        try:
            wait_until(lambda: store.list_checkpoints("", "h", "$Default"),
                       lambda cps: sum(c["sequence_number"] + 1 for c in cps) >= 12, timeout=20, every=0.05,
                       fail=False)
        finally:
            consumer.close()

    stopper = threading.Thread(target=stop_when_done)
    stopper.start()
    consumer.receive(on_event, starting_position="-1", on_partition_close=on_partition_close)
    stopper.join()
    assert sorted(got) == sorted(f"{p}-{i}" for p in "012" for i in range(4))
    assert sorted(closed_partitions) == ["0", "1", "2"]
    checkpoints = {c["partition_id"]: c["sequence_number"] for c in store.list_checkpoints("", "h", "$Default")}
    assert checkpoints == {"0": 3, "1": 3, "2": 3}
    # Released on close: a new consumer could claim at once.
    assert all(o["owner_id"] == "" for o in store.list_ownership("", "h", "$Default"))
