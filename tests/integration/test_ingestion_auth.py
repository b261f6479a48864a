"""Shared access rights on the real ingestion process: Send publishes, Listen reads,
Manage administers; forged, expired and wrongly scoped tokens are refused."""

from __future__ import annotations

import grpc
import pytest

from headwater.auth import AUTH_FAILED, Right, generate_sas_token
from headwater.errors import HeadwaterError, Reason
from headwater.eventhub import EventData, EventHubConsumerClient, EventHubProducerClient
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.integration.ingestion_support import (
    ONE_TRY,
    add_policy,
    backend_env,
    conn_str,
    grpc_target,
    ingestion_backend,  # noqa: F401 - the fixture parametrizing every test by backend
    instances,
)

pytestmark = pytest.mark.usefixtures("ingestion_backend")
_RR = [("grpc.lb_policy_name", "round_robin")]


class _Procs:
    def __init__(self, procs) -> None:
        self.address = ",".join(p.address for p in procs)


@pytest.fixture
def svc(service_process, tmp_path, root_policy):
    procs = _Procs([service_process("ingestion", "--data-dir", str(tmp_path / f"data{i}"), env=backend_env())
                    for i in range(instances())])
    with grpc.insecure_channel(grpc_target(procs.address)) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        token = generate_sas_token(f"headwater://{procs.address}/", root_policy.name, root_policy.key)
        stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id="h", hub=ingestion_pb2.Hub(partition_count=2)),
                       metadata=[("authorization", token)])
    return procs


def _raw_call(address: str, token: str | None):
    with grpc.insecure_channel(grpc_target(address), options=_RR) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        md = [("authorization", token)] if token else []
        return stub.GetHub(ingestion_pb2.GetHubRequest(name="hubs/h"), metadata=md)


def test_listen_only_policy_reads_but_cannot_publish(svc, _isolated_home):
    listen = add_policy(_isolated_home, "listen-only", Right.LISTEN)
    with EventHubProducerClient.from_connection_string(conn_str(svc.address, listen, "h"),
                                                       retry_policy=ONE_TRY) as p:
        with pytest.raises(HeadwaterError) as err:
            p.send_batch([EventData("x")])
    assert err.value.reason is Reason.PERMISSION_DENIED and "Send" in err.value.message
    consumer = EventHubConsumerClient.from_connection_string(conn_str(svc.address, listen, "h"), "$Default")
    assert consumer.get_partition_properties("0")["is_empty"]


def test_send_only_policy_publishes_but_cannot_read_or_manage(svc, _isolated_home):
    send = add_policy(_isolated_home, "send-only", Right.SEND)
    with EventHubProducerClient.from_connection_string(conn_str(svc.address, send, "h"), retry_policy=ONE_TRY) as p:
        assert p.send_batch([EventData("ok")], partition_id="0").first_sequence_number == 0
        with pytest.raises(HeadwaterError) as err:
            p.get_partition_properties("0")
        assert err.value.reason is Reason.PERMISSION_DENIED
    listen = add_policy(_isolated_home, "listen2", Right.LISTEN)
    token = generate_sas_token(f"headwater://{svc.address}/", listen.name, listen.key)
    with grpc.insecure_channel(grpc_target(svc.address), options=_RR) as ch:
        with pytest.raises(grpc.RpcError) as err:
            ingestion_pb2_grpc.IngestionServiceStub(ch).DeleteHub(ingestion_pb2.DeleteHubRequest(name="hubs/h"),
                                                                  metadata=[("authorization", token)])
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_forged_expired_missing_and_misscoped_tokens_are_refused(svc, root_policy):
    resource = f"headwater://{svc.address}/"
    good = generate_sas_token(resource, root_policy.name, root_policy.key)
    assert _raw_call(svc.address, good).hub.name == "hubs/h"
    forged = generate_sas_token(resource, root_policy.name, "bm90IHRoZSBrZXk=")
    expired = generate_sas_token(resource, root_policy.name, root_policy.key, ttl_s=-10)
    unknown = generate_sas_token(resource, "nobody", root_policy.key)
    for token in (forged, expired, unknown, None):
        with pytest.raises(grpc.RpcError) as err:
            _raw_call(svc.address, token)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED, token
        assert err.value.details() == AUTH_FAILED  # one message: no hint which check failed
    other_hub = generate_sas_token(resource + "other", root_policy.name, root_policy.key)
    with pytest.raises(grpc.RpcError) as err:
        _raw_call(svc.address, other_hub)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "scoped" in err.value.details()
