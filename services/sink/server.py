"""The sink service: outputs as plugins, the gRPC SinkService and the live dashboard.

``headwater serve sink`` (or ``python -m headwater.services.sink``) runs it; the
dashboard listens on ``dashboard_port`` (default 8080, 0 picks a free port,
-1 disables it) and the service prints ``sink dashboard on http://host:port``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from headwater.auth import ConnectionString, PolicyStore, Right
from headwater.errors import HeadwaterError
from headwater.faults import FaultFile
from headwater.paths import allowed_roots
from headwater.pluginmanager import get_plugin_manager
from headwater.secrets import SecretStore
from headwater.server import GrpcBinding, RunningService, Service, http_auth, http_ssl_context
from headwater.services.sink.config import SinkConfig
from headwater.services.sink.outputs import DropPolicy, Outputs
from headwater.services.sink.servicer import SecretServicer, SinkServicer
from headwater.v1 import secrets_pb2_grpc, sink_pb2_grpc

__all__ = ["SERVICE", "SinkService"]

log = logging.getLogger("headwater.sink")


class SinkService(Service):
    name = "sink"
    config_class = SinkConfig
    #: Largest request accepted (WriteRows batches of a job); setting max_receive_message_bytes overrides it.
    default_max_receive_bytes = 32 * 1024 * 1024
    rights: ClassVar[dict[str, Right]] = {
        "WriteRows": Right.SEND,
        "GetSink": Right.LISTEN,
        "ListSinks": Right.LISTEN,
        "ListSinkKinds": Right.LISTEN,
        "ReadTable": Right.LISTEN,
        "SubscribeRows": Right.LISTEN,
    }

    def __init__(self, config: SinkConfig) -> None:
        super().__init__(config)
        self.config: SinkConfig = config
        pm = get_plugin_manager().collect()
        self.secrets = SecretStore(config.secrets_path())  # the outputs' and the SecretService's
        self.outputs = Outputs(
            config.data_path(), pm.sinks,
            DropPolicy(config.drop_after_attempts, config.drop_after_s),
            queue_size=config.subscriber_queue, allowed_roots=tuple(allowed_roots(config)),
            secrets=self.secrets,
            namespace=self._namespace(config.ingestion_address), registry=self._namespace(config.registry_address),
            faults=FaultFile(config.faults_file))
        owners = {k.name: pm.sinks.owners[pm.sinks.key(k.name)] for k in pm.sinks.unique()}
        self.servicer = SinkServicer(self.outputs, owners)
        self._poller: asyncio.Task | None = None
        self.dashboard: Any = None
        self.dashboard_url = ""

    def _namespace(self, address: str) -> str:
        """A connection string to a service of this namespace, signed with this service's key."""
        if not address:
            return ""
        conn = ConnectionString(endpoint=f"headwater://{address}/")
        if self.config.auth_enabled:
            root = PolicyStore(self.config.auth_path()).ensure().root()
            conn.shared_access_key_name, conn.shared_access_key = root.name, root.key
        return str(conn)

    def bindings(self) -> Sequence[GrpcBinding]:
        return [GrpcBinding(sink_pb2_grpc.add_SinkServiceServicer_to_server, self.servicer,
                            "headwater.v1.SinkService"),
                GrpcBinding(secrets_pb2_grpc.add_SecretServiceServicer_to_server,
                            SecretServicer(self.secrets), "headwater.v1.SecretService")]

    async def start(self) -> None:
        await self.outputs.open()
        self._poller = asyncio.create_task(self.outputs.poll_forever(self.config.poll_interval_s))

    async def started(self, running: RunningService) -> None:
        if self.config.dashboard_port < 0:
            return
        from headwater.services.sink.dashboard import start_dashboard

        host = self.config.dashboard_host or self.config.host
        try:
            guard = http_auth(self.config)
            self.dashboard, port = await start_dashboard(self.outputs, host, self.config.dashboard_port,
                                                         http_ssl_context(self.config),
                                                         allow=guard.check if guard is not None else None)
        except HeadwaterError as exc:
            # The outputs matter more than the page: keep serving gRPC, say so loudly.
            log.error("dashboard not started: %s", exc.message)
            print(f"sink dashboard not started: {exc.message}", flush=True)
            return
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
        self.dashboard_url = f"{'https' if self.config.tls_cert_file else 'http'}://{shown}:{port}"
        print(f"sink dashboard on {self.dashboard_url}", flush=True)
        log.info("dashboard serving", extra={"fields": {"url": self.dashboard_url}})

    async def draining(self) -> None:
        # Live subscriptions would otherwise hold the drain for the whole grace period.
        self.outputs.end_subscriptions()

    async def stop(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self.dashboard is not None:
            await self.dashboard.stop()
        await self.outputs.close()


SERVICE = SinkService
