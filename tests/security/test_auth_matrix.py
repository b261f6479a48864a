"""Every RPC of every service x every kind of token, against real service processes.

The table says which right each RPC needs and whether it is about one hub (so a
token scoped to that hub may call it); the RPC list itself comes from the
service descriptors, so a new RPC without a row fails here. Requests are
minimal: what is asserted is the authentication/authorization outcome —
UNAUTHENTICATED, PERMISSION_DENIED, or "got past auth" (any other code: the
request was decoded and the servicer answered, OK or INVALID_ARGUMENT/NOT_FOUND
for the empty request).
"""

from __future__ import annotations

import grpc
import pytest

from headwater.auth import AUTH_FAILED, generate_sas_token
from headwater.v1 import (
    access_pb2,
    access_pb2_grpc,
    event_pb2,
    ingestion_pb2,
    ingestion_pb2_grpc,
    processing_pb2,
    processing_pb2_grpc,
    schema_registry_pb2,
    schema_registry_pb2_grpc,
    secrets_pb2,
    secrets_pb2_grpc,
    sink_pb2,
    sink_pb2_grpc,
)
from tests.security.conftest import NAMESPACE, TOKEN_KINDS

S, L, M = "Send", "Listen", "Manage"
HUB = "matrix"

# service -> (which process serves it, stub, pb2 module, {rpc: (right, about-one-hub)})
TABLE = {
    "headwater.v1.IngestionService": ("ingestion", ingestion_pb2_grpc.IngestionServiceStub, ingestion_pb2, {
        "CreateHub": (M, False), "GetHub": (L, True), "ListHubs": (M, False), "UpdateHub": (M, False),
        "DeleteHub": (M, False), "GetPartitionProperties": (L, True), "CreateConsumerGroup": (M, True),
        "GetConsumerGroup": (L, True), "ListConsumerGroups": (L, True), "DeleteConsumerGroup": (M, True),
        "PublishEvents": (S, True), "PublishEventsStream": (S, True), "ReadEvents": (L, True),
        "ListCheckpoints": (L, True), "UpdateCheckpoint": (L, True), "ListOwnerships": (L, True),
        "ClaimOwnership": (L, True), "SetFaultRule": (M, False), "ListFaultRules": (M, False),
        "ClearFaultRules": (M, False)}),
    "headwater.v1.AccessService": ("ingestion", access_pb2_grpc.AccessServiceStub, access_pb2, {
        "CreatePolicy": (M, False), "GetPolicy": (M, False), "ListPolicies": (M, False),
        "DeletePolicy": (M, False), "RegenerateKey": (M, False), "GetPolicyKeys": (M, False)}),
    "headwater.v1.SchemaRegistryService": ("registry", schema_registry_pb2_grpc.SchemaRegistryServiceStub,
                                           schema_registry_pb2, {
        "CreateSchemaGroup": (M, False), "GetSchemaGroup": (L, False), "ListSchemaGroups": (L, False),
        "SetCompatibility": (M, False), "RegisterSchema": (S, False), "GetSchema": (L, False),
        "GetSchemaVersion": (L, False), "LookupSchema": (L, False), "ListSchemaVersions": (L, False),
        "DeleteSchemaVersion": (M, False)}),
    "headwater.v1.ProcessingService": ("processing", processing_pb2_grpc.ProcessingServiceStub, processing_pb2, {
        "CreateJob": (M, False), "GetJob": (L, False), "ListJobs": (L, False), "UpdateJob": (M, False),
        "DeleteJob": (M, False), "StartJob": (M, False), "StopJob": (M, False), "GetJobMetrics": (L, False),
        "TestQuery": (L, False), "CreateAlertRule": (M, False), "ListAlertRules": (L, False),
        "DeleteAlertRule": (M, False), "ListAlerts": (L, False), "ListEventVerdicts": (L, False)}),
    "headwater.v1.SinkService": ("sink", sink_pb2_grpc.SinkServiceStub, sink_pb2, {
        "CreateSink": (M, False), "GetSink": (L, False), "ListSinks": (L, False), "DeleteSink": (M, False),
        "ListSinkKinds": (L, False), "WriteRows": (S, False), "ReadTable": (L, False),
        "SubscribeRows": (L, False)}),
    "headwater.v1.SecretService": ("sink", secrets_pb2_grpc.SecretServiceStub, secrets_pb2, {
        "SetSecret": (M, False), "ListSecrets": (M, False), "DeleteSecret": (M, False)}),
}

# Requests of the RPCs about one hub name the hub HUB (the servicer checks a hub-scoped token against it).
_HUB_REQUESTS = {
    "GetHub": lambda pb: pb.GetHubRequest(name=f"hubs/{HUB}"),
    "GetPartitionProperties": lambda pb: pb.GetPartitionPropertiesRequest(name=f"hubs/{HUB}/partitions/0"),
    "CreateConsumerGroup": lambda pb: pb.CreateConsumerGroupRequest(parent=f"hubs/{HUB}", consumer_group_id="g"),
    "GetConsumerGroup": lambda pb: pb.GetConsumerGroupRequest(name=f"hubs/{HUB}/consumerGroups/$Default"),
    "ListConsumerGroups": lambda pb: pb.ListConsumerGroupsRequest(parent=f"hubs/{HUB}"),
    "DeleteConsumerGroup": lambda pb: pb.DeleteConsumerGroupRequest(name=f"hubs/{HUB}/consumerGroups/nope"),
    "PublishEvents": lambda pb: pb.PublishEventsRequest(hub=HUB, events=[event_pb2.EventData(body=b"x")]),
    "PublishEventsStream": lambda pb: iter([pb.PublishEventsStreamRequest(
        hub=HUB, events=[event_pb2.EventData(body=b"x")])]),
    "ReadEvents": lambda pb: pb.ReadEventsRequest(hub=HUB, partition_id="0", consumer_group="$Default"),
    "ListCheckpoints": lambda pb: pb.ListCheckpointsRequest(hub=HUB, consumer_group="$Default"),
    "UpdateCheckpoint": lambda pb: pb.UpdateCheckpointRequest(checkpoint=pb.Checkpoint(
        hub=HUB, consumer_group="$Default", partition_id="0", sequence_number=0)),
    "ListOwnerships": lambda pb: pb.ListOwnershipsRequest(hub=HUB, consumer_group="$Default"),
    "ClaimOwnership": lambda pb: pb.ClaimOwnershipRequest(ownerships=[pb.Ownership(
        hub=HUB, consumer_group="$Default", partition_id="0", owner_id="matrix")]),
}
#: Streams that stay open: give them a short deadline (the outcome is known at once).
_STREAMS = {"ReadEvents", "SubscribeRows", "PublishEventsStream"}


# Open on purpose, as health and reflection are: GetNamespace only says where the services
# are, each of which checks the caller's token (docs/clients.md).
OPEN = {"headwater.v1.NamespaceService"}


def test_get_namespace_needs_no_token(stack):
    from headwater.v1 import namespace_pb2, namespace_pb2_grpc

    with grpc.insecure_channel(stack.address("ingestion")) as ch:
        ns = namespace_pb2_grpc.NamespaceServiceStub(ch).GetNamespace(namespace_pb2.GetNamespaceRequest(),
                                                                      timeout=10).namespace
    assert ns.ingestion_address == stack.address("ingestion")


def _request(rpc: str, pb, input_name: str):
    if rpc in _HUB_REQUESTS:
        return _HUB_REQUESTS[rpc](pb)
    if rpc == "SubscribeRows":
        return pb.SubscribeRowsRequest(name="sinks/nope")
    msg = getattr(pb, input_name)()
    return iter([msg]) if rpc.endswith("Stream") else msg


def _expected(kind: str, right: str, about_hub: bool) -> str:
    """'UNAUTHENTICATED', 'PERMISSION_DENIED' or 'PASSES' (auth let it through)."""
    if kind in ("none", "forged", "expired", "other-namespace"):
        return "UNAUTHENTICATED"
    if kind == "other-hub":  # a Manage token scoped to another hub
        return "PERMISSION_DENIED"
    if kind == "this-hub":  # a Manage token scoped to HUB
        return "PASSES" if about_hub else "PERMISSION_DENIED"
    has = {"send": {S}, "listen": {L}, "manage": {S, L, M}}[kind]
    return "PASSES" if right in has else "PERMISSION_DENIED"


def _rows():
    for full, (service, _stub, _pb, rpcs) in TABLE.items():
        for rpc in sorted(rpcs):
            yield pytest.param(full, rpc, id=f"{service}.{rpc}")


def test_every_rpc_is_in_the_table():
    import importlib
    import pkgutil

    from google.protobuf import descriptor_pool

    import headwater.v1

    served = set()
    for module in pkgutil.iter_modules(headwater.v1.__path__):
        if module.name.endswith("_pb2"):
            desc = importlib.import_module(f"headwater.v1.{module.name}").DESCRIPTOR
            served |= {s.full_name for s in desc.services_by_name.values()}
    assert served - OPEN == set(TABLE), f"add rows for {served - OPEN - set(TABLE)}"
    pool = descriptor_pool.Default()
    for full, (_service, _stub, _pb, rpcs) in TABLE.items():
        declared = {m.name for m in pool.FindServiceByName(full).methods}
        assert declared == set(rpcs), f"{full}: add rows for {declared - set(rpcs)}, drop {set(rpcs) - declared}"


@pytest.mark.parametrize(("full", "rpc"), list(_rows()))
def test_auth_matrix(stack, full, rpc):
    service, stub, pb, rpcs = TABLE[full]
    right, about_hub = rpcs[rpc]
    from google.protobuf import descriptor_pool

    method = descriptor_pool.Default().FindServiceByName(full).methods_by_name[rpc]
    this_hub = generate_sas_token(NAMESPACE + HUB, stack.policies["root"].name, stack.policies["root"].key)
    got, want = {}, {}
    for kind in (*TOKEN_KINDS, "this-hub"):
        token = this_hub if kind == "this-hub" else stack.token(kind)
        code = stack.call(service, stub, rpc, _request(rpc, pb, method.input_type.name), token, raw_token=True,
                          timeout=2.0 if rpc in _STREAMS else 10.0)
        got[kind] = code.name if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED) \
            else "PASSES"
        want[kind] = _expected(kind, right, about_hub)
    assert got == want


def _refusal_lines(proc) -> int:
    return sum(1 for line in proc.output().splitlines() if "refused " in line and "127.0.0.1" in line)


def test_refusals_carry_one_message_are_not_decoded_and_logged_once(stack):
    """Garbage bytes without a token are refused UNAUTHENTICATED (not INVALID_ARGUMENT: never decoded),
    with the one message every authentication failure gets (unknown policy, wrong key, expired,
    expiring in 2286, other namespace: no hint which); 210 refusals from one client add at most
    one log line (once per client per 60 s), never a traceback."""
    ingestion = stack.procs["ingestion"]
    before = _refusal_lines(ingestion)
    with grpc.insecure_channel(stack.address("ingestion")) as ch:
        call = ch.unary_unary("/headwater.v1.IngestionService/GetHub")  # raw bytes, no serializer
        messages = set()
        root = stack.policies["root"]
        tokens = [None, "SharedAccessSignature sr=x&sig=y&se=1&skn=z", stack.token("forged"),
                  stack.token("other-namespace"), stack.token("expired"),
                  generate_sas_token(NAMESPACE, "no-such-policy", root.key),  # no policy-name enumeration
                  generate_sas_token(NAMESPACE, root.name, root.key, ttl_s=9_000_000_000)]  # year 2286
        for i in range(210):
            token = tokens[i % len(tokens)]
            with pytest.raises(grpc.RpcError) as err:
                call(b"\xff\xff\xff garbage that is not protobuf",
                     metadata=[("authorization", token)] if token else [], timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            messages.add(err.value.details())
    assert messages == {AUTH_FAILED}
    assert _refusal_lines(ingestion) - before <= 1
    assert _refusal_lines(ingestion) >= 1
    for name, proc in stack.procs.items():
        assert "Traceback" not in proc.output(), name


def test_undecodable_request_with_a_valid_token_is_invalid_argument(stack):
    """Bytes that are not the request message: INVALID_ARGUMENT naming the message, no traceback."""
    with grpc.insecure_channel(stack.address("ingestion")) as ch:
        for method in ("GetHub", "PublishEvents"):
            with pytest.raises(grpc.RpcError) as err:
                ch.unary_unary(f"/headwater.v1.IngestionService/{method}")(
                    b"\xff\xff\xff not protobuf", metadata=[("authorization", stack.token("manage"))], timeout=5)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "is not a valid" in err.value.details()
    assert "Traceback" not in stack.procs["ingestion"].output()
