"""A client reaches a service whose connection answers slowly (a loaded machine, TLS, a
distant client): the channel's connection attempt is not cut short. gRPC core takes
``grpc.min_reconnect_backoff_ms`` as the least time an attempt may take; at 100 ms every
attempt through a slow path failed with "connection attempt timed out before receiving
SETTINGS frame"."""

from __future__ import annotations

import asyncio

from headwater.channel import aio_channel
from tests.conftest import conn_for

DELAY_S = 0.4


async def _delaying_proxy(upstream: tuple[str, int]) -> asyncio.AbstractServer:
    """Forwards each connection to ``upstream``, holding the server's first bytes (its
    HTTP/2 SETTINGS) for DELAY_S."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
        try:
            first = True
            while data := await reader.read(65536):
                if first and delay:
                    await asyncio.sleep(delay)  # the slow path under test, not a wait for a fact
                first = False
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*upstream)
        await asyncio.gather(pipe(reader, up_writer, 0), pipe(up_reader, writer, DELAY_S))

    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def test_a_slow_connection_handshake_still_connects(service_process, root_policy):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc

    svc = service_process("ingestion")
    host, port = svc.address.rsplit(":", 1)
    proxy = await _delaying_proxy((host, int(port)))
    address = f"127.0.0.1:{proxy.sockets[0].getsockname()[1]}"
    try:
        ch = aio_channel(conn_for(address, root_policy))
        try:
            health = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            hubs = await ingestion_pb2_grpc.IngestionServiceStub(ch).ListHubs(ingestion_pb2.ListHubsRequest(),
                                                                             timeout=10)
            assert list(hubs.hubs) == []
        finally:
            await ch.close()
    finally:
        proxy.close()
        await proxy.wait_closed()
