"""The ingestion service: Event Hubs on the embedded segment log.

``headwater serve ingestion`` runs it; it serves ``headwater.v1.IngestionService``
plus health, reflection and /metrics (from the service base), HTTP ingest on
``http_port`` and background retention, interval fsync and Capture.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from typing import TYPE_CHECKING, Any

from headwater.auth import PolicyStore, Right
from headwater.server import GrpcBinding, RunningService, Service
from headwater.services.ingestion.access import AccessServicer
from headwater.services.ingestion.config import IngestionConfig
from headwater.services.ingestion.hubs import HubStore
from headwater.services.ingestion.retention import fsync_loop, retention_loop
from headwater.services.ingestion.servicer import IngestionServicer, add_to_server

if TYPE_CHECKING:  # imported where used: capture; kafka-python and aiohttp at their endpoint's first connection
    from headwater.listeners import DeferredListener
    from headwater.services.ingestion.capture import CaptureWriter

__all__ = ["SERVICE", "IngestionService"]

log = logging.getLogger("headwater.ingestion")


class IngestionService(Service):
    """Hubs, partitions, consumer groups, checkpoints, quotas, faults."""

    name = "ingestion"
    config_class = IngestionConfig
    rights = {
        "PublishEvents": Right.SEND,
        "PublishEventsStream": Right.SEND,
        "ReadEvents": Right.LISTEN,
        "GetHub": Right.LISTEN,
        "GetPartitionProperties": Right.LISTEN,
        "GetConsumerGroup": Right.LISTEN,
        "ListConsumerGroups": Right.LISTEN,
        "ListCheckpoints": Right.LISTEN,
        "UpdateCheckpoint": Right.LISTEN,
        "ListOwnerships": Right.LISTEN,
        "ClaimOwnership": Right.LISTEN,
        # headwater.v1.AccessService (shared access policies) needs Manage.
    }
    #: RPCs about one hub take a token scoped to that hub (the servicer checks the hub);
    #: creating, listing, updating and deleting hubs, faults and policies need the namespace.
    entity_methods = frozenset({
        "GetHub", "GetPartitionProperties", "CreateConsumerGroup", "GetConsumerGroup", "ListConsumerGroups",
        "DeleteConsumerGroup", "PublishEvents", "PublishEventsStream", "ReadEvents", "ListCheckpoints",
        "UpdateCheckpoint", "ListOwnerships", "ClaimOwnership",
    })

    def max_receive_bytes(self) -> int:
        """The largest batch (``max_message_bytes``) plus 64 KiB for the request's other fields."""
        return self.config.max_receive_message_bytes or self.config.max_message_bytes + 64 * 1024

    def __init__(self, config: IngestionConfig) -> None:
        super().__init__(config)
        self.config: IngestionConfig = config
        self.hubs: HubStore | None = None
        self.servicer: IngestionServicer | None = None
        self.access: AccessServicer | None = None
        self._tasks: list[asyncio.Task] = []
        self.http: DeferredListener | None = None
        self.http_port = -1
        self.kafka: DeferredListener | None = None
        self.kafka_port = -1
        self.capture: CaptureWriter | None = None
        from headwater.services.ingestion.namespace import NamespaceServicer

        self.namespace = NamespaceServicer(self)

    def bindings(self):
        assert self.servicer is not None, "start() first"
        from headwater.services.ingestion import namespace
        from headwater.v1 import access_pb2_grpc

        return [GrpcBinding(add_to_server, self.servicer, "headwater.v1.IngestionService"),
                GrpcBinding(access_pb2_grpc.add_AccessServiceServicer_to_server, self.access,
                            "headwater.v1.AccessService"),
                GrpcBinding(namespace.add_to_server, self.namespace, "headwater.v1.NamespaceService")]

    async def start(self) -> None:
        cfg = self.config
        kwargs: dict[str, Any] = dict(fsync_policy=cfg.fsync_policy, segment_max_bytes=cfg.segment_max_bytes,
                      segment_max_age_s=cfg.segment_max_age_s, max_partitions=cfg.max_partitions,
                      max_consumer_groups=cfg.max_consumer_groups, ownership_expiry_s=cfg.ownership_expiry_s)
        if cfg.log_backend == "nats":
            from headwater.services.ingestion.log.nats import NatsHubStore

            store: HubStore = NatsHubStore(cfg.data_path(), nats_url=cfg.nats_url, nats_prefix=cfg.nats_prefix,
                                           nats_replicas=cfg.nats_replicas,
                                           nats_duplicate_window_s=cfg.nats_duplicate_window_s,
                                           nats_cache_mb=cfg.nats_cache_mb, **kwargs)
        else:
            store = HubStore(cfg.data_path(), **kwargs)
        if cfg.preload_kernels:
            from headwater.services.ingestion.log.jit import KERNELS

            KERNELS.get()  # starts loading them in a thread
        hubs = self.hubs = await store.open_async()
        self.servicer = IngestionServicer(cfg, hubs)
        policies = PolicyStore(cfg.auth_path()).ensure()
        self.access = AccessServicer(policies, hub_exists=lambda hub: hubs.get(hub) is not None)
        self.servicer.on_hub_deleted = policies.delete_hub
        from headwater.paths import allowed_roots
        from headwater.services.ingestion.capture import CaptureWriter

        capture = self.capture = CaptureWriter(cfg.data_path() / "capture", namespace=cfg.host,
                                               roots=allowed_roots(cfg))
        self.servicer.capture = capture
        self._tasks.append(asyncio.create_task(retention_loop(hubs, cfg.retention_check_s)))
        if cfg.fsync_policy == "interval" and cfg.log_backend == "embedded":
            self._tasks.append(asyncio.create_task(fsync_loop(hubs, cfg.fsync_interval_ms)))
        self._tasks.append(asyncio.create_task(capture.run(hubs)))

    def _side_port(self, configured: int, running: RunningService) -> int:
        """The port of a side listener (HTTP ingest, Kafka): with an ephemeral gRPC port (tests),
        an ephemeral one too, never a collision on a default port; -1 when disabled."""
        if configured >= 0 and running.grpc_port and self.config.grpc_port == 0:
            return 0
        return configured

    async def started(self, running: RunningService) -> None:
        await self._start_kafka(running)
        cfg = self.config
        self.namespace.address = running.address
        port = self._side_port(cfg.http_port, running)
        if port < 0:
            return
        from headwater.services.ingestion.http_ingest import start_http_ingest

        try:
            self.http, self.http_port = await start_http_ingest(self.servicer, cfg, port)
        except OSError as exc:
            log.error("HTTP ingest not started on port %s: %s", port, exc)
            return
        print(f"ingestion http on {cfg.host}:{self.http_port}", flush=True)

    async def _start_kafka(self, running: RunningService) -> None:
        cfg = self.config
        port = self._side_port(cfg.kafka_port, running)
        if port < 0:
            return
        if importlib.util.find_spec("kafka") is None:  # an install without headwater[kafka]
            log.warning("Kafka endpoint not started: %s is not installed (pip install 'headwater[kafka]'; "
                        "kafka_port: -1 turns the endpoint off)", "kafka")
            return
        from headwater.services.ingestion.kafka import start_kafka_endpoint

        try:  # the port now; kafka-python and the listener at the first connection
            self.kafka = await start_kafka_endpoint(self.servicer, cfg, port)
        except OSError as exc:
            log.error("Kafka endpoint not started on port %s: %s", port, exc)
            return
        self.kafka_port = self.kafka.port
        print(f"ingestion kafka on {cfg.host}:{self.kafka_port}", flush=True)

    async def draining(self) -> None:
        if self.servicer is not None:
            self.servicer.drain.set()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.kafka is not None:
            await self.kafka.stop()
        if self.http is not None:
            await self.http.stop()
        if self.capture is not None and self.hubs is not None:
            try:
                await self.capture.flush_due_async(self.hubs, force=True)
            except Exception:
                log.exception("capture flush at shutdown failed")
        if self.hubs is not None:
            await self.hubs.close_async()


SERVICE = IngestionService
