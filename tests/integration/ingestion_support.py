"""Helpers for the ingestion tests: an in-process service, connection strings, admin calls.

Every test of ``tests/integration/test_ingestion_*`` runs three times (the
``ingestion_backend`` fixture): on the embedded log, on NATS JetStream with one
instance, and on NATS with two instances behind one client (a channel that
round-robins calls over both), so two instances must behave as one service.
Each NATS run uses its own stream/bucket prefix and deletes it afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


NATS_URL = os.environ.get("HEADWATER_TEST_NATS_URL", "nats://127.0.0.1:4222")
BACKENDS = ("embedded", "nats", "nats-x2")
_backend = {"name": "embedded", "prefix": ""}


@pytest.fixture(params=BACKENDS)
def ingestion_backend(request):
    """Which backend :func:`ingestion` runs on for this test (and its NATS prefix)."""
    name = request.param
    prefix = f"T{uuid.uuid4().hex[:10]}" if name != "embedded" else ""
    _backend.update(name=name, prefix=prefix)
    yield _backend
    _backend.update(name="embedded", prefix="")
    if prefix:
        from headwater.services.ingestion.log.nats import delete_prefix

        asyncio.run(delete_prefix(NATS_URL, prefix))


def backend_settings() -> dict:
    """Config overrides of the current backend (empty for embedded)."""
    if _backend["name"] == "embedded":
        return {}
    return {"log_backend": "nats", "nats_url": NATS_URL, "nats_prefix": _backend["prefix"]}


def backend_env() -> dict[str, str]:
    """The same, as environment variables for a service process."""
    return {f"HEADWATER_INGESTION_{k.upper()}": str(v) for k, v in backend_settings().items()}


def grpc_target(address: str) -> str:
    """A raw gRPC target for ``address`` (``ipv4:a,b`` when it names several instances)."""
    from headwater.channel import multi_target

    return multi_target(address) if "," in address else address


def instances() -> int:
    return 2 if _backend["name"] == "nats-x2" else 1


@dataclass
class Instances:
    """Several ingestion instances seen as one: ``address`` names them all."""

    running: list[RunningService]

    @property
    def address(self) -> str:
        return ",".join(r.address for r in self.running)

    @property
    def service(self):
        return self.running[0].service


@contextlib.asynccontextmanager
async def ingestion(data_dir: Path, **overrides) -> AsyncIterator[RunningService | Instances]:
    """The ingestion service in this event loop (port 0, no /metrics), on the
    current backend; two instances under ``nats-x2``."""
    overrides = {**backend_settings(), **overrides}
    if instances() > 1:  # one service: the same allowed folders (the first one's data folder) everywhere
        overrides.setdefault("allowed_paths", [str(data_dir)])
    async with contextlib.AsyncExitStack() as stack:
        running = []
        for i in range(instances()):
            cfg = load_config(IngestionConfig, "ingestion", None, env={}, grpc_port=0, metrics_port=-1,
                              data_dir=str(data_dir) + (f"-{i}" if i else ""), **overrides)
            running.append(await stack.enter_async_context(serve_in_process(IngestionService(cfg))))
        yield running[0] if len(running) == 1 else Instances(running)


async def fault_rules_everywhere(svc: RunningService | Instances, *rule_ids: str) -> None:
    """Until every instance follows ``rule_ids``: under NATS an instance learns a rule another
    one set through its watch of the shared bucket, a moment later (SetFaultRule waits for
    its own instance's watch only)."""
    running = svc.running if isinstance(svc, Instances) else [svc]
    for r in running:
        local = getattr(r.service.servicer.faults, "local", None)
        if local is None:  # the embedded store: one instance, its rules are its own
            continue
        for _ in range(1000):
            if all(any(rid in rules for rules in local.values()) for rid in rule_ids):
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"instance {r.address} did not see fault rules {rule_ids} in 10 s")


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
