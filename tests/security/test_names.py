"""Names: matched whole (no trailing newline), length limits that fit every backend,
INVALID_ARGUMENT for every refusal, the same rules in every service (headwater.names)."""

from __future__ import annotations

import grpc
import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.names import RULES, check_name
from headwater.v1 import (
    access_pb2,
    access_pb2_grpc,
    ingestion_pb2,
    ingestion_pb2_grpc,
    processing_pb2,
    processing_pb2_grpc,
    schema_registry_pb2,
    schema_registry_pb2_grpc,
    sink_pb2,
    sink_pb2_grpc,
)


@pytest.mark.parametrize("kind", sorted(RULES))
def test_every_rule_matches_whole_names_within_its_limit(kind):
    rule = RULES[kind]
    ok = "a" * rule.max_len
    assert check_name(kind, ok) == ok
    for bad in ("", "a\n", "a" * (rule.max_len + 1), "../a", "a/b", "a b", "ä"):
        with pytest.raises(HeadwaterError) as info:
            check_name(kind, bad, "field_x")
        assert info.value.reason is Reason.INVALID_ARGUMENT and info.value.metadata["field"] == "field_x"


BAD_NAMES = ["newline\n", "x" * 256, "../up"]


def _creates(name: str):
    yield "ingestion", ingestion_pb2_grpc.IngestionServiceStub, "CreateHub", ingestion_pb2.CreateHubRequest(
        hub_id=name, hub=ingestion_pb2.Hub(partition_count=1))
    yield "ingestion", ingestion_pb2_grpc.IngestionServiceStub, "GetHub", ingestion_pb2.GetHubRequest(
        name=f"hubs/{name}")
    yield "ingestion", access_pb2_grpc.AccessServiceStub, "CreatePolicy", access_pb2.CreatePolicyRequest(
        policy_id=name, rights=[access_pb2.ACCESS_RIGHT_SEND])
    yield "registry", schema_registry_pb2_grpc.SchemaRegistryServiceStub, "CreateSchemaGroup", \
        schema_registry_pb2.CreateSchemaGroupRequest(group_id=name)
    yield "registry", schema_registry_pb2_grpc.SchemaRegistryServiceStub, "RegisterSchema", \
        schema_registry_pb2.RegisterSchemaRequest(group_name="g", name=name, definition='"string"')
    yield "processing", processing_pb2_grpc.ProcessingServiceStub, "CreateJob", processing_pb2.CreateJobRequest(
        job=processing_pb2.Job(name=f"jobs/{name}", query="SELECT * INTO o FROM i"))
    yield "processing", processing_pb2_grpc.ProcessingServiceStub, "GetJob", processing_pb2.GetJobRequest(
        name=f"jobs/{name}")
    yield "sink", sink_pb2_grpc.SinkServiceStub, "CreateSink", sink_pb2.CreateSinkRequest(
        sink_id=name, sink=sink_pb2.Sink(kind="memory"))


@pytest.mark.parametrize("name", BAD_NAMES, ids=["newline", "256-chars", "dotdot"])
def test_every_service_refuses_bad_names_with_invalid_argument(stack, name):
    got = {f"{service}.{method}": stack.call(service, stub, method, request, "manage").name
           for service, stub, method, request in _creates(name)}
    assert got == dict.fromkeys(got, grpc.StatusCode.INVALID_ARGUMENT.name)
    for proc_name, proc in stack.procs.items():
        assert "Traceback" not in proc.output(), proc_name
