"""The blocking SDK, shaped like ``azure.eventhub``.

The producer calls the service on a blocking channel. The consumer runs the
async consumer on an event loop in the calling thread (``receive`` blocks
until ``close()`` is called from another thread or a callback), calling the
user's plain functions; ``partition_context.update_checkpoint`` is stored
before the next event is delivered.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

import grpc

from headwater.auth import ConnectionString
from headwater.channel import sync_channel
from headwater.errors import HeadwaterError
from headwater.eventhub import aio as _aio
from headwater.eventhub._common import (
    EventData,
    EventDataBatch,
    Idempotence,
    connection_for,
    hub_properties,
    parse_connection,
    partition_properties,
    to_batch,
)
from headwater.eventhub.aio._client import _policy
from headwater.eventhub.wire import PublishEventsRequestPacked, method
from headwater.retry import retry_sync
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc

__all__ = ["EventHubConsumerClient", "EventHubProducerClient", "PartitionContext", "ServiceCheckpointStore"]

_T = TypeVar("_T")
_AioCheckpointStore = _aio.ServiceCheckpointStore  # ServiceCheckpointStore._aio() hides the module in its class


def _call(fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except grpc.RpcError as exc:
        raise HeadwaterError.from_rpc_error(exc) from None


class _SyncBase:
    def __init__(self, fully_qualified_namespace: str | ConnectionString, eventhub_name: str,
                 credential: Any = None, **kwargs: Any) -> None:
        conn = connection_for(fully_qualified_namespace, credential)
        self._retry = _policy(kwargs)
        self._conn = conn
        self.eventhub_name = eventhub_name
        self.fully_qualified_namespace = conn.address
        self._channel: grpc.Channel | None = None
        self._stub: ingestion_pb2_grpc.IngestionServiceStub | None = None

    def _get_stub(self) -> ingestion_pb2_grpc.IngestionServiceStub:
        if self._stub is None:
            self._channel = sync_channel(self._conn)
            self._stub = ingestion_pb2_grpc.IngestionServiceStub(self._channel)
        return self._stub

    def get_eventhub_properties(self) -> dict[str, Any]:
        stub = self._get_stub()
        resp = retry_sync(lambda: _call(lambda: stub.GetHub(
            ingestion_pb2.GetHubRequest(name=f"hubs/{self.eventhub_name}"))), self._retry)
        return hub_properties(resp.hub)

    def get_partition_ids(self) -> list[str]:
        ids: list[str] = self.get_eventhub_properties()["partition_ids"]
        return ids

    def get_partition_properties(self, partition_id: str) -> dict[str, Any]:
        stub = self._get_stub()
        resp = retry_sync(lambda: _call(lambda: stub.GetPartitionProperties(
            ingestion_pb2.GetPartitionPropertiesRequest(
                name=f"hubs/{self.eventhub_name}/partitions/{partition_id}"))), self._retry)
        return partition_properties(self.eventhub_name, resp.partition)

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
        self._channel = self._stub = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHubProducerClient(_SyncBase):
    """Publishes batches, as azure.eventhub.EventHubProducerClient (see the aio docs)."""

    def __init__(self, fully_qualified_namespace: str | ConnectionString, eventhub_name: str,
                 credential: Any = None, **kwargs: Any) -> None:
        self._idempotence = Idempotence(bool(kwargs.pop("enable_idempotent_partitions", False)))
        self._max_batch = kwargs.pop("max_batch_size_in_bytes", None)
        kwargs.pop("logging_enable", None)
        super().__init__(fully_qualified_namespace, eventhub_name, credential, **kwargs)
        self._publish: grpc.UnaryUnaryMultiCallable[Any, ingestion_pb2.PublishEventsResponse] | None = None

    @classmethod
    def from_connection_string(cls, conn_str: str, *, eventhub_name: str | None = None,
                               **kwargs: Any) -> EventHubProducerClient:
        conn, hub = parse_connection(conn_str, eventhub_name)
        return cls(conn, hub, **kwargs)

    def create_batch(self, *, partition_id: str | None = None, partition_key: str | None = None,
                     max_size_in_bytes: int | None = None) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes or self._max_batch, partition_id, partition_key)

    def send_batch(self, event_data_batch: EventDataBatch | list[EventData], *, partition_id: str | None = None,
                   partition_key: str | None = None,
                   timeout: float | None = None) -> ingestion_pb2.PublishEventsResponse:
        batch = to_batch(event_data_batch, partition_id, partition_key)
        if len(batch) == 0:
            return ingestion_pb2.PublishEventsResponse()
        if self._publish is None:
            self._get_stub()
            assert self._channel is not None
            self._publish = self._channel.unary_unary(
                method("PublishEvents"), request_serializer=PublishEventsRequestPacked.SerializeToString,
                response_deserializer=ingestion_pb2.PublishEventsResponse.FromString)
        request = PublishEventsRequestPacked(
            hub=self.eventhub_name, events=batch._events, partition_id=batch.partition_id or "",
            partition_key=batch.partition_key or "", request_id=uuid.uuid4().hex, **self._idempotence.fields(batch))
        publish = self._publish
        assert publish is not None
        resp = retry_sync(lambda: _call(lambda: publish(request, timeout=timeout)), self._retry)
        self._idempotence.sent(batch)
        return resp

    def send_event(self, event_data: EventData, **kwargs: Any) -> ingestion_pb2.PublishEventsResponse:
        return self.send_batch([event_data], **kwargs)

    def close(self) -> None:
        self._publish = None
        super().close()


class ServiceCheckpointStore:
    """Sync face of the service checkpoint store (BlobCheckpointStore's role)."""

    def __init__(self, conn: ConnectionString, **kwargs: Any) -> None:
        self._conn = conn
        self._kwargs = kwargs

    @classmethod
    def from_connection_string(cls, conn_str: str, container_name: str = "", **kwargs: Any) -> ServiceCheckpointStore:
        return cls(ConnectionString.parse(conn_str), **kwargs)

    def _aio(self) -> _aio.ServiceCheckpointStore:
        return _aio.ServiceCheckpointStore(self._conn, **self._kwargs)

    def _run(self, call: Callable[[_AioCheckpointStore], Awaitable[_T]]) -> _T:
        async def go() -> _T:
            store = self._aio()
            try:
                return await call(store)
            finally:
                await store.close()
        return asyncio.run(go())

    def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str) -> list[dict[str, Any]]:
        return self._run(lambda s: s.list_ownership(fully_qualified_namespace, eventhub_name, consumer_group))

    def claim_ownership(self, ownership_list: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return self._run(lambda s: s.claim_ownership(ownership_list))

    def update_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._run(lambda s: s.update_checkpoint(checkpoint))

    def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str) -> list[dict[str, Any]]:
        return self._run(lambda s: s.list_checkpoints(fully_qualified_namespace, eventhub_name, consumer_group))


class PartitionContext:
    """Sync face of :class:`headwater.eventhub.aio.PartitionContext`."""

    def __init__(self, inner: _aio.PartitionContext) -> None:
        self._inner = inner
        self.partition_id = inner.partition_id
        self.eventhub_name = inner.eventhub_name
        self.consumer_group = inner.consumer_group
        self.fully_qualified_namespace = inner.fully_qualified_namespace
        self._pending: list[Any] = []

    @property
    def last_enqueued_event_properties(self) -> dict[str, Any] | None:
        return self._inner.last_enqueued_event_properties

    def update_checkpoint(self, event: EventData | None = None, **kwargs: Any) -> None:
        """Stored before the next event is delivered."""
        self._pending.append(event if event is not None else self._inner._last_event)

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for event in pending[-1:]:
            await self._inner.update_checkpoint(event)


class EventHubConsumerClient:
    """Receives events, as azure.eventhub.EventHubConsumerClient (see the aio docs)."""

    def __init__(self, fully_qualified_namespace: str | ConnectionString, eventhub_name: str, consumer_group: str,
                 credential: Any = None, **kwargs: Any) -> None:
        store = kwargs.pop("checkpoint_store", None)
        if isinstance(store, ServiceCheckpointStore):
            kwargs["checkpoint_store"] = store._aio()
        elif store is not None:
            kwargs["checkpoint_store"] = store
        self._args = (connection_for(fully_qualified_namespace, credential), eventhub_name, consumer_group)
        self._kwargs = kwargs
        self.eventhub_name = eventhub_name
        self.consumer_group = consumer_group
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: _aio.EventHubConsumerClient | None = None
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def from_connection_string(cls, conn_str: str, consumer_group: str, *, eventhub_name: str | None = None,
                               **kwargs: Any) -> EventHubConsumerClient:
        conn, hub = parse_connection(conn_str, eventhub_name)
        return cls(conn, hub, consumer_group, **kwargs)

    def _wrap(self, fn: Callable[..., Any] | None, with_ctx: bool = True) -> Callable[..., Awaitable[Any]] | None:
        if fn is None:
            return None
        contexts: dict[int, PartitionContext] = {}

        async def call(ctx: _aio.PartitionContext, *rest: Any) -> Any:
            sctx = contexts.get(id(ctx))
            if sctx is None:
                sctx = contexts[id(ctx)] = PartitionContext(ctx)
            result = fn(sctx, *rest)
            await sctx._flush()
            return result

        return call

    def _go(self, name: str, callback: Callable[..., Any], kwargs: dict[str, Any]) -> None:
        for key in ("on_error", "on_partition_initialize", "on_partition_close"):
            kwargs[key] = self._wrap(kwargs.get(key))

        async def main() -> None:
            with self._lock:
                if self._closed:
                    return
                self._loop = asyncio.get_running_loop()
                self._client = _aio.EventHubConsumerClient(*self._args, **dict(self._kwargs))
            try:
                await getattr(self._client, name)(self._wrap(callback), **kwargs)
            finally:
                await self._client.close()

        asyncio.run(main())

    def receive(self, on_event: Callable[..., Any], **kwargs: Any) -> None:
        """Blocks, calling ``on_event(partition_context, event)``, until close()."""
        self._go("receive", on_event, kwargs)

    def receive_batch(self, on_event_batch: Callable[..., Any], **kwargs: Any) -> None:
        """Blocks, calling ``on_event_batch(partition_context, events)``, until close()."""
        self._go("receive_batch", on_event_batch, kwargs)

    def get_eventhub_properties(self) -> dict[str, Any]:
        return self._props(lambda c: c.get_eventhub_properties())

    def get_partition_ids(self) -> list[str]:
        ids: list[str] = self.get_eventhub_properties()["partition_ids"]
        return ids

    def get_partition_properties(self, partition_id: str) -> dict[str, Any]:
        return self._props(lambda c: c.get_partition_properties(partition_id))

    def _props(self, fn: Callable[[_aio.EventHubConsumerClient], Awaitable[_T]]) -> _T:
        async def go(client: _aio.EventHubConsumerClient) -> _T:
            try:
                return await fn(client)
            finally:
                if client is not self._client:
                    await client.close()
        running = self._client  # set with _loop, under the lock
        if self._loop is not None and self._loop.is_running() and running is not None:
            return asyncio.run_coroutine_threadsafe(go(running), self._loop).result()
        return asyncio.run(go(_aio.EventHubConsumerClient(*self._args, **dict(self._kwargs))))

    def close(self) -> None:
        """Stop receive() (callable from another thread or from a callback)."""
        with self._lock:
            self._closed = True
            loop, client = self._loop, self._client
        if loop is None or client is None or loop.is_closed():
            return
        try:
            running_here = asyncio.get_running_loop() is loop
        except RuntimeError:
            running_here = False
        if running_here:
            loop.create_task(client.close())
        else:
            try:
                asyncio.run_coroutine_threadsafe(client.close(), loop).result(10)
            except RuntimeError:
                pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
