"""Schema drift inside a live job: producers move from v1 to a compatible v2 mid-stream.

Registry, ingestion, sink and processing run as real processes. A producer encodes
trips with the AvroEncoder (content type ``avro/binary+<schema id>``) under schema v1,
then under v2 (a new optional field ``tip``), in a group with BACKWARD compatibility.
The running job (input format ``avro``) keeps going: ``SELECT *`` rows carry ``tip``
from the v2 events on, and an undecodable event is counted as a conversion error
with a sample, not fatal.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from headwater.channel import sync_channel
from headwater.pipeline import setup_pipeline
from headwater.schemaregistry import SchemaRegistryClient, SharedAccessKeyCredential
from headwater.schemaregistry.avroencoder import AvroEncoder
from headwater.v1 import event_pb2, ingestion_pb2, ingestion_pb2_grpc, processing_pb2_grpc
from headwater.v1 import processing_pb2 as ppb
from tests.conftest import conn_for
from tests.e2e.test_pipeline_book import read_table
from tests.wait import wait_until

pytestmark = pytest.mark.slow

V1 = json.dumps({"namespace": "demo", "type": "record", "name": "Trip", "fields": [
    {"name": "tripId", "type": "string"}, {"name": "fare", "type": "double"}]})
V2 = json.dumps({"namespace": "demo", "type": "record", "name": "Trip", "fields": [
    {"name": "tripId", "type": "string"}, {"name": "fare", "type": "double"},
    {"name": "tip", "type": ["null", "double"], "default": None}]})


def test_avro_schema_change_mid_stream_in_a_running_job(service_process, root_policy, tmp_path):
    registry = service_process("registry", "--data-dir", str(tmp_path / "reg"))
    ingestion = service_process("ingestion", "--data-dir", str(tmp_path / "ing"))
    sink = service_process("sink", "--data-dir", str(tmp_path / "sink"))
    processing = service_process("processing", "--data-dir", str(tmp_path / "proc"), env={
        "HEADWATER_PROCESSING_INGESTION_ADDRESS": ingestion.address,
        "HEADWATER_PROCESSING_SINK_ADDRESS": sink.address,
        "HEADWATER_PROCESSING_REGISTRY_ADDRESS": registry.address,
        "HEADWATER_PROCESSING_CHECKPOINT_INTERVAL_S": "0.2"})
    endpoints = {"ingestion": ingestion.address, "sink": sink.address, "processing": processing.address}
    asyncio.run(setup_pipeline(endpoints, hub="trips", partitions=1, dataset="drift", sink_kind="memory",
                               query="SELECT * INTO [Dashboard] FROM [Trips]", sink_config={}))
    # The pipeline helper binds JSON input: rebind the job's input as Avro.
    with sync_channel(conn_for(processing.address, root_policy)) as ch:
        jobs = processing_pb2_grpc.ProcessingServiceStub(ch)
        jobs.StopJob(ppb.StopJobRequest(name="jobs/drift"), timeout=30)
        job = jobs.GetJob(ppb.GetJobRequest(name="jobs/drift"), timeout=10).job
        job.inputs[0].format = "avro"
        jobs.UpdateJob(ppb.UpdateJobRequest(job=job), timeout=10)
        jobs.StartJob(ppb.StartJobRequest(name="jobs/drift", start_mode=ppb.JOB_START_MODE_NOW), timeout=30)

    client = SchemaRegistryClient(registry.address, SharedAccessKeyCredential(root_policy.name, root_policy.key))
    client.create_schema_group("trips", "Avro", compatibility="BACKWARD")
    encoder = AvroEncoder(client=client, group_name="trips", auto_register=True)
    first = [encoder.encode({"tripId": f"a{i}", "fare": 10.0 + i}, schema=V1) for i in range(5)]
    second = [encoder.encode({"tripId": f"b{i}", "fare": 20.0 + i, "tip": 1.5 * i}, schema=V2) for i in range(5)]
    assert first[0]["content_type"] != second[0]["content_type"]  # two schema ids
    garbage = {"content": b"\x07not avro", "content_type": first[0]["content_type"]}

    with sync_channel(conn_for(ingestion.address, root_policy)) as ch:
        hubs = ingestion_pb2_grpc.IngestionServiceStub(ch)
        for batch in (first, [garbage], second):
            hubs.PublishEvents(ingestion_pb2.PublishEventsRequest(hub="hubs/trips", events=[
                event_pb2.EventData(body=m["content"], content_type=m["content_type"]) for m in batch]), timeout=10)

    rows = wait_until(lambda: asyncio.run(read_table(sink.address, root_policy, "drift")), lambda r: len(r) >= 10,
                      timeout=30, every=0.3, fail=False)
    by_id = {r["tripId"]: r for r in rows}
    assert sorted(by_id) == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(5)]
    assert by_id["b3"]["tip"] == pytest.approx(4.5) and by_id["b3"]["fare"] == 23.0
    assert by_id["a1"].get("tip") is None and by_id["a1"]["fare"] == 11.0

    with sync_channel(conn_for(processing.address, root_policy)) as ch:
        jobs = processing_pb2_grpc.ProcessingServiceStub(ch)
        job = jobs.GetJob(ppb.GetJobRequest(name="jobs/drift"), timeout=10).job
        metrics = jobs.GetJobMetrics(ppb.GetJobMetricsRequest(name="jobs/drift"), timeout=10).metrics
    assert job.state == ppb.JOB_STATE_RUNNING, job.error
    assert metrics.data_conversion_errors + metrics.input_deserialization_errors == 1
    assert metrics.last_error_sample
    client.close()
