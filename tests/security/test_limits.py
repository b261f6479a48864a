"""Limits before work: an oversize request is refused by gRPC before it is buffered."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from headwater.auth import generate_sas_token
from headwater.v1 import event_pb2, ingestion_pb2, ingestion_pb2_grpc
from tests.security.conftest import NAMESPACE

MIB = 1024 * 1024


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to measure RSS")
def test_64_mib_publish_is_refused_before_it_is_buffered(stack):
    root = stack.policies["root"]
    md = [("authorization", generate_sas_token(NAMESPACE, root.name, root.key))]
    big = ingestion_pb2.PublishEventsRequest(hub="matrix", events=[event_pb2.EventData(body=b"x" * (64 * MIB))])
    options = [("grpc.max_send_message_length", 128 * MIB)]
    pid = stack.procs["ingestion"].pid
    with grpc.insecure_channel(stack.address("ingestion"), options=options) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        with pytest.raises(grpc.RpcError) as err:  # warm up: the first refusal allocates what it needs
            stub.PublishEvents(big, metadata=md, timeout=30)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        growth = []
        for _ in range(3):  # three rounds of 4 refusals: 768 MiB offered in all
            before = _rss_mib(pid)
            for _ in range(4):
                with pytest.raises(grpc.RpcError) as err:
                    stub.PublishEvents(big, metadata=md, timeout=30)
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            growth.append(_rss_mib(pid) - before)
        # Keeping refused requests would add 64 MiB each, in every round; the best round bounds
        # it, so the allocator keeping what the first refusals touched on a loaded machine
        # (once seen: +82 MiB over 8 refusals in CI) is not taken for buffering.
        assert min(growth) < 48, growth
        # The service is fine and still takes a batch within the limit.
        stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id="limits", hub=ingestion_pb2.Hub(partition_count=1)),
                       metadata=md, timeout=10)
        ok = ingestion_pb2.PublishEventsRequest(hub="limits", events=[event_pb2.EventData(body=b"y" * 1000)])
        assert stub.PublishEvents(ok, metadata=md, timeout=10).last_sequence_number == 0
