"""Helpers for the ingestion tests: an in-process service, connection strings, admin calls."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from headwater.auth import ConnectionString, Policy, PolicyStore, Right, new_key
from headwater.channel import aio_channel
from headwater.config import load_config
from headwater.retry import RetryPolicy
from headwater.server import RunningService, serve_in_process
from headwater.services.ingestion.config import IngestionConfig
from headwater.services.ingestion.server import IngestionService
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc

FAST_RETRY = RetryPolicy(max_attempts=8, max_delay_s=20, initial_backoff_s=0.01, max_backoff_s=0.2)
ONE_TRY = RetryPolicy(max_attempts=1, max_delay_s=5)


def add_policy(home: Path, name: str, *rights: Right) -> Policy:
    store = PolicyStore(home / "auth.json").ensure()
    policy = Policy(name, new_key(), frozenset(rights))
    store.put(policy)
    return policy


def conn_str(address: str, policy: Policy, hub: str = "") -> str:
    return str(ConnectionString(endpoint=f"headwater://{address}/", shared_access_key_name=policy.name,
                                shared_access_key=policy.key, entity_path=hub))


@contextlib.asynccontextmanager
async def ingestion(data_dir: Path, **overrides) -> AsyncIterator[RunningService]:
    """The ingestion service in this event loop (port 0, no /metrics)."""
    cfg = load_config(IngestionConfig, "ingestion", None, env={}, grpc_port=0, metrics_port=-1,
                      data_dir=str(data_dir), **overrides)
    async with serve_in_process(IngestionService(cfg)) as running:
        yield running


@contextlib.asynccontextmanager
async def admin(address: str, policy: Policy) -> AsyncIterator[ingestion_pb2_grpc.IngestionServiceStub]:
    channel = aio_channel(conn_str(address, policy))
    try:
        yield ingestion_pb2_grpc.IngestionServiceStub(channel)
    finally:
        await channel.close()


async def create_hub(address: str, policy: Policy, name: str, partitions: int = 4, **hub_fields) -> ingestion_pb2.Hub:
    async with admin(address, policy) as stub:
        resp = await stub.CreateHub(ingestion_pb2.CreateHubRequest(
            hub_id=name, hub=ingestion_pb2.Hub(partition_count=partitions, **hub_fields)))
        return resp.hub


async def read_all(address, policy, hub, partition_id, position="-1", inclusive=False, expect=None, wait=0.3):
    """Read one partition from ``position`` until caught up (or ``expect`` events)."""
    from headwater.eventhub.aio import EventHubConsumerClient

    got = []
    consumer = EventHubConsumerClient.from_connection_string(conn_str(address, policy), "$Default",
                                                             eventhub_name=hub)

    async def on_event(ctx, event):
        if event is None:
            await consumer.close()
            return
        got.append(event)
        if expect is not None and len(got) >= expect:
            await consumer.close()

    await asyncio.wait_for(consumer.receive(on_event, partition_id=partition_id, starting_position=position,
                                            starting_position_inclusive=inclusive, max_wait_time=wait), 20)
    return got
