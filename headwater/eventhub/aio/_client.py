"""Async producer, consumer and checkpoint store (``headwater.eventhub.aio``)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar

import grpc
from google.protobuf.message import Message

from headwater.auth import ConnectionString
from headwater.channel import aio_channel
from headwater.errors import HeadwaterError, Reason
from headwater.eventhub._common import (
    EventData,
    EventDataBatch,
    Idempotence,
    connection_for,
    duration,
    event_position,
    hub_properties,
    last_enqueued,
    parse_connection,
    partition_properties,
    to_batch,
)
from headwater.eventhub.wire import PublishEventsRequestPacked, method
from headwater.retry import DEFAULT_POLICY, RetryPolicy, retry_async
from headwater.v1 import event_pb2, ingestion_pb2, ingestion_pb2_grpc

__all__ = ["CheckpointStore", "EventHubConsumerClient", "EventHubProducerClient", "InMemoryCheckpointStore",
           "PartitionContext", "ServiceCheckpointStore"]

log = logging.getLogger("headwater.eventhub")

_T = TypeVar("_T")
#: ``on_event(context, event)`` / ``on_event_batch(context, events)``: a function or a coroutine function.
_OnEvent = Callable[..., Any]


def _policy(kwargs: dict[str, Any]) -> RetryPolicy:
    policy: RetryPolicy | None = kwargs.pop("retry_policy", None)
    if policy is not None:
        return policy
    total = kwargs.pop("retry_total", None)
    if total is not None:
        return RetryPolicy(max_attempts=max(1, int(total) + 1))
    return DEFAULT_POLICY


async def _call(fn: Callable[[], Awaitable[_T]]) -> _T:
    try:
        return await fn()
    except grpc.aio.AioRpcError as exc:
        raise await HeadwaterError.from_aio_call(exc) from None


class _Connection:
    """A lazily opened channel (bound to the running loop on first use)."""

    def __init__(self, conn: ConnectionString, hub: str) -> None:
        self.conn = conn
        self.hub = hub
        self._channel: grpc.aio.Channel | None = None
        self._stub: ingestion_pb2_grpc.IngestionServiceStub | None = None
        self._publish: grpc.aio.UnaryUnaryMultiCallable[Any, ingestion_pb2.PublishEventsResponse] | None = None

    @property
    def namespace(self) -> str:
        return self.conn.address

    def stub(self) -> ingestion_pb2_grpc.IngestionServiceStub:
        if self._stub is None:
            self._channel = aio_channel(self.conn)
            self._stub = ingestion_pb2_grpc.IngestionServiceStub(self._channel)
            self._publish = self._channel.unary_unary(
                method("PublishEvents"), request_serializer=PublishEventsRequestPacked.SerializeToString,
                response_deserializer=ingestion_pb2.PublishEventsResponse.FromString)
        return self._stub

    def publish(self) -> grpc.aio.UnaryUnaryMultiCallable[Any, ingestion_pb2.PublishEventsResponse]:
        self.stub()
        assert self._publish is not None  # stub() opened it
        return self._publish

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        self._channel = self._stub = self._publish = None


class _ClientBase:
    def __init__(self, fully_qualified_namespace: str | ConnectionString, eventhub_name: str,
                 credential: Any = None, **kwargs: Any) -> None:
        conn = connection_for(fully_qualified_namespace, credential)
        self._retry = _policy(kwargs)
        self._conn = _Connection(conn, eventhub_name)
        self.eventhub_name = eventhub_name
        self.fully_qualified_namespace = conn.address

    async def get_eventhub_properties(self) -> dict[str, Any]:
        stub = self._conn.stub()
        resp = await retry_async(lambda: _call(lambda: stub.GetHub(
            ingestion_pb2.GetHubRequest(name=f"hubs/{self.eventhub_name}"))), self._retry)
        return hub_properties(resp.hub)

    async def get_partition_ids(self) -> list[str]:
        ids: list[str] = (await self.get_eventhub_properties())["partition_ids"]
        return ids

    async def get_partition_properties(self, partition_id: str) -> dict[str, Any]:
        stub = self._conn.stub()
        resp = await retry_async(lambda: _call(lambda: stub.GetPartitionProperties(
            ingestion_pb2.GetPartitionPropertiesRequest(
                name=f"hubs/{self.eventhub_name}/partitions/{partition_id}"))), self._retry)
        return partition_properties(self.eventhub_name, resp.partition)

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class EventHubProducerClient(_ClientBase):
    """Publishes batches, as azure.eventhub.aio.EventHubProducerClient.

    ``enable_idempotent_partitions=True`` makes the producer send a producer id
    and sequence numbers, so a batch retried after a timeout is stored once
    (batches must then name a partition). ``retry_total`` bounds retries of
    transient failures (SERVICE_BUSY, QUOTA_EXCEEDED, SERVICE_TIMEOUT).
    """

    def __init__(self, fully_qualified_namespace: str | ConnectionString, eventhub_name: str,
                 credential: Any = None, **kwargs: Any) -> None:
        self._idempotence = Idempotence(bool(kwargs.pop("enable_idempotent_partitions", False)))
        self._max_batch = kwargs.pop("max_batch_size_in_bytes", None)
        kwargs.pop("logging_enable", None)
        super().__init__(fully_qualified_namespace, eventhub_name, credential, **kwargs)

    @classmethod
    def from_connection_string(cls, conn_str: str, *, eventhub_name: str | None = None,
                               **kwargs: Any) -> EventHubProducerClient:
        conn, hub = parse_connection(conn_str, eventhub_name)
        return cls(conn, hub, **kwargs)

    async def create_batch(self, *, partition_id: str | None = None, partition_key: str | None = None,
                           max_size_in_bytes: int | None = None) -> EventDataBatch:
        return EventDataBatch(max_size_in_bytes or self._max_batch, partition_id, partition_key)

    async def send_batch(self, event_data_batch: EventDataBatch | list[EventData], *,
                         partition_id: str | None = None, partition_key: str | None = None,
                         timeout: float | None = None) -> ingestion_pb2.PublishEventsResponse:
        """Send one batch; returns where it was stored (a Headwater addition)."""
        batch = to_batch(event_data_batch, partition_id, partition_key)
        if len(batch) == 0:
            return ingestion_pb2.PublishEventsResponse()
        request = PublishEventsRequestPacked(
            hub=self.eventhub_name, events=batch._events, partition_id=batch.partition_id or "",
            partition_key=batch.partition_key or "", request_id=uuid.uuid4().hex, **self._idempotence.fields(batch))
        publish = self._conn.publish()
        resp = await retry_async(lambda: _call(lambda: publish(request, timeout=timeout)), self._retry)
        self._idempotence.sent(batch)
        return resp

    async def send_event(self, event_data: EventData, **kwargs: Any) -> ingestion_pb2.PublishEventsResponse:
        return await self.send_batch([event_data], **kwargs)


# -- checkpoint stores -----------------------------------------------------------------


class CheckpointStore:
    """The Event Hubs processor's checkpoint store interface (dicts in, dicts out)."""

    async def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                             **kwargs: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def claim_ownership(self, ownership_list: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    async def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        raise NotImplementedError

    async def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                               **kwargs: Any) -> list[dict[str, Any]]:
        raise NotImplementedError


class InMemoryCheckpointStore(CheckpointStore):
    """Checkpoints in this process only (what the consumer uses with no store)."""

    def __init__(self) -> None:
        self._ownership: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._checkpoints: dict[tuple[Any, ...], dict[str, Any]] = {}

    async def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                             **kwargs: Any) -> list[dict[str, Any]]:
        return [dict(o) for k, o in self._ownership.items() if k[:2] == (eventhub_name, consumer_group)]

    async def claim_ownership(self, ownership_list: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        out = []
        for o in ownership_list:
            key = (o["eventhub_name"], o["consumer_group"], o["partition_id"])
            cur = self._ownership.get(key)
            if cur is None or cur.get("etag") == o.get("etag"):
                new = dict(o, etag=uuid.uuid4().hex, last_modified_time=time.time())
                self._ownership[key] = new
                out.append(dict(new))
        return out

    async def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        key = (checkpoint["eventhub_name"], checkpoint["consumer_group"], checkpoint["partition_id"])
        self._checkpoints[key] = dict(checkpoint)

    async def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                               **kwargs: Any) -> list[dict[str, Any]]:
        return [dict(c) for k, c in self._checkpoints.items() if k[:2] == (eventhub_name, consumer_group)]


class ServiceCheckpointStore(CheckpointStore):
    """Checkpoints and ownership kept in the ingestion service itself (the role
    of BlobCheckpointStore), so every consumer of a group shares them."""

    def __init__(self, conn: ConnectionString, **kwargs: Any) -> None:
        self._conn = _Connection(conn, conn.entity_path)
        self._retry = _policy(kwargs)

    @classmethod
    def from_connection_string(cls, conn_str: str, container_name: str = "", **kwargs: Any) -> ServiceCheckpointStore:
        """``container_name`` is accepted for BlobCheckpointStore compatibility and ignored."""
        return cls(ConnectionString.parse(conn_str), **kwargs)

    async def _rpc(self, name: str, request: Message) -> Any:  # the generated stubs are untyped
        stub = self._conn.stub()
        return await retry_async(lambda: _call(lambda: getattr(stub, name)(request)), self._retry)

    async def list_ownership(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                             **kwargs: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        token = ""
        while True:
            resp = await self._rpc("ListOwnerships", ingestion_pb2.ListOwnershipsRequest(
                hub=eventhub_name, consumer_group=consumer_group, page_token=token))
            out += [_ownership_dict(fully_qualified_namespace, o) for o in resp.ownerships]
            token = resp.next_page_token
            if not token:
                return out

    async def claim_ownership(self, ownership_list: list[dict[str, Any]], **kwargs: Any) -> list[dict[str, Any]]:
        if not ownership_list:
            return []
        resp = await self._rpc("ClaimOwnership", ingestion_pb2.ClaimOwnershipRequest(ownerships=[
            ingestion_pb2.Ownership(hub=o["eventhub_name"], consumer_group=o["consumer_group"],
                                    partition_id=o["partition_id"], owner_id=o["owner_id"], etag=o.get("etag") or "")
            for o in ownership_list]))
        ns = ownership_list[0].get("fully_qualified_namespace", "")
        return [_ownership_dict(ns, o) for o in resp.ownerships]

    async def update_checkpoint(self, checkpoint: dict[str, Any], **kwargs: Any) -> None:
        await self._rpc("UpdateCheckpoint", ingestion_pb2.UpdateCheckpointRequest(checkpoint=ingestion_pb2.Checkpoint(
            hub=checkpoint["eventhub_name"], consumer_group=checkpoint["consumer_group"],
            partition_id=checkpoint["partition_id"], offset=int(checkpoint.get("offset") or 0),
            sequence_number=int(checkpoint["sequence_number"]))))

    async def list_checkpoints(self, fully_qualified_namespace: str, eventhub_name: str, consumer_group: str,
                               **kwargs: Any) -> list[dict[str, Any]]:
        resp = await self._rpc("ListCheckpoints", ingestion_pb2.ListCheckpointsRequest(
            hub=eventhub_name, consumer_group=consumer_group))
        return [{"fully_qualified_namespace": fully_qualified_namespace, "eventhub_name": _id(c.hub),
                 "consumer_group": _id(c.consumer_group), "partition_id": c.partition_id, "offset": str(c.offset),
                 "sequence_number": c.sequence_number} for c in resp.checkpoints]

    async def close(self) -> None:
        await self._conn.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _id(name: str) -> str:
    """The id at the end of a resource name (``hubs/h`` -> ``h``, ``hubs/h/consumerGroups/g`` -> ``g``):
    the checkpoint store's dicts hold ids, as azure-eventhub's do."""
    return name.rsplit("/", 1)[-1]


def _ownership_dict(ns: str, o: ingestion_pb2.Ownership) -> dict[str, Any]:
    return {"fully_qualified_namespace": ns, "eventhub_name": _id(o.hub), "consumer_group": _id(o.consumer_group),
            "partition_id": o.partition_id, "owner_id": o.owner_id, "etag": o.etag,
            "last_modified_time": o.last_modified_time.ToNanoseconds() / 1e9}


# -- consumer -------------------------------------------------------------------------


class PartitionContext:
    """Which partition an event came from, and how to checkpoint it."""

    def __init__(self, client: EventHubConsumerClient, partition_id: str) -> None:
        self._client = client
        self.partition_id = partition_id
        self.eventhub_name = client.eventhub_name
        self.consumer_group = client.consumer_group
        self.fully_qualified_namespace = client.fully_qualified_namespace
        self.last_enqueued_event_properties: dict[str, Any] | None = None
        self._last_event: EventData | None = None

    async def update_checkpoint(self, event: EventData | None = None, **kwargs: Any) -> None:
        """Record ``event`` (default: the last one received) as processed."""
        event = event if event is not None else self._last_event
        if event is None or event.sequence_number is None:
            return
        await self._client._store.update_checkpoint({
            "fully_qualified_namespace": self.fully_qualified_namespace, "eventhub_name": self.eventhub_name,
            "consumer_group": self.consumer_group, "partition_id": self.partition_id,
            "offset": event.offset, "sequence_number": event.sequence_number})


class EventHubConsumerClient(_ClientBase):
    """Receives events, as azure.eventhub.aio.EventHubConsumerClient.

    With ``partition_id`` it reads that partition; without, it reads every
    partition, and with a checkpoint store it shares them with the other
    consumers of the group (ownership claims, balanced every
    ``load_balancing_interval`` seconds; a claim not renewed within
    ``partition_ownership_expiration_interval`` is taken over).
    """

    def __init__(self, fully_qualified_namespace: str | ConnectionString, eventhub_name: str, consumer_group: str,
                 credential: Any = None, **kwargs: Any) -> None:
        self.consumer_group = consumer_group
        store = kwargs.pop("checkpoint_store", None)
        self._balanced = store is not None
        self._store: CheckpointStore = store if store is not None else InMemoryCheckpointStore()
        self._lb_interval = float(kwargs.pop("load_balancing_interval", 10.0))
        self._expiry = float(kwargs.pop("partition_ownership_expiration_interval", None) or self._lb_interval * 6)
        self._default_owner_level = kwargs.pop("owner_level", None)
        self._prefetch = int(kwargs.pop("prefetch", 300))
        kwargs.pop("logging_enable", None)
        super().__init__(fully_qualified_namespace, eventhub_name, credential, **kwargs)
        self.owner_id = uuid.uuid4().hex
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._closed = asyncio.Event() if _loop_running() else None
        self._closing = False
        self._balance_lock = asyncio.Lock()

    @classmethod
    def from_connection_string(cls, conn_str: str, consumer_group: str, *, eventhub_name: str | None = None,
                               **kwargs: Any) -> EventHubConsumerClient:
        conn, hub = parse_connection(conn_str, eventhub_name)
        return cls(conn, hub, consumer_group, **kwargs)

    async def receive(self, on_event: Callable[..., Any], *, max_wait_time: float | None = None,
                      partition_id: str | None = None, owner_level: int | None = None,
                      prefetch: int | None = None, track_last_enqueued_event_properties: bool = False,
                      starting_position: Any = None, starting_position_inclusive: Any = False,
                      on_error: Callable[..., Any] | None = None, on_partition_initialize: Callable[..., Any] | None = None,
                      on_partition_close: Callable[..., Any] | None = None) -> None:
        """Call ``await on_event(partition_context, event)`` for each event until close().

        With ``max_wait_time``, ``on_event(context, None)`` is called when no
        event came for that many seconds.
        """
        await self._run(on_event, None, max_wait_time=max_wait_time, partition_id=partition_id,
                        owner_level=owner_level, prefetch=prefetch or self._prefetch,
                        track=track_last_enqueued_event_properties, starting_position=starting_position,
                        inclusive=starting_position_inclusive, on_error=on_error,
                        on_partition_initialize=on_partition_initialize, on_partition_close=on_partition_close)

    async def receive_batch(self, on_event_batch: Callable[..., Any], *, max_batch_size: int = 300,
                            max_wait_time: float | None = None, partition_id: str | None = None,
                            owner_level: int | None = None, prefetch: int | None = None,
                            track_last_enqueued_event_properties: bool = False, starting_position: Any = None,
                            starting_position_inclusive: Any = False, on_error: Callable[..., Any] | None = None,
                            on_partition_initialize: Callable[..., Any] | None = None,
                            on_partition_close: Callable[..., Any] | None = None) -> None:
        """Call ``await on_event_batch(partition_context, events)`` with up to
        ``max_batch_size`` events at a time until close()."""
        await self._run(None, on_event_batch, max_wait_time=max_wait_time, partition_id=partition_id,
                        owner_level=owner_level, prefetch=max_batch_size,
                        track=track_last_enqueued_event_properties, starting_position=starting_position,
                        inclusive=starting_position_inclusive, on_error=on_error,
                        on_partition_initialize=on_partition_initialize, on_partition_close=on_partition_close)

    async def close(self) -> None:
        self._closing = True
        if self._closed is not None:
            self._closed.set()
        tasks = list(self._tasks.values())
        current = asyncio.current_task()
        for task in tasks:
            if task is not current:
                task.cancel()
        # Let every partition receiver finish (on_partition_close runs) before returning.
        await asyncio.gather(*(t for t in tasks if t is not current), return_exceptions=True)
        async with self._balance_lock:  # no renewal can land after the release
            await self._release_ownership()
        await super().close()

    # -- internals -------------------------------------------------------------------

    async def _run(self, on_event: _OnEvent | None, on_batch: _OnEvent | None, **opts: Any) -> None:
        if self._closed is None:
            self._closed = asyncio.Event()
        self._closing = False
        if opts["partition_id"] is not None:
            pid = str(opts["partition_id"])
            self._start_partition(pid, on_event, on_batch, opts)
            await self._closed.wait()
            return
        if not self._balanced:
            for pid in await self.get_partition_ids():
                self._start_partition(pid, on_event, on_batch, opts)
            await self._closed.wait()
            return
        await self._balance_loop(on_event, on_batch, opts)

    def _start_partition(self, pid: str, on_event: _OnEvent | None, on_batch: _OnEvent | None,
                         opts: dict[str, Any]) -> None:
        task = self._tasks.get(pid)
        if task is not None and not task.done():
            return
        self._tasks[pid] = asyncio.create_task(self._partition(pid, on_event, on_batch, opts))

    async def _stop_partition(self, pid: str) -> None:
        task = self._tasks.pop(pid, None)
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass

    async def _initial_position(self, pid: str, opts: dict[str, Any]) -> event_pb2.EventPosition:
        checkpoints = await self._store.list_checkpoints(self.fully_qualified_namespace, self.eventhub_name,
                                                         self.consumer_group)
        for cp in checkpoints:
            if cp["partition_id"] == pid and cp.get("sequence_number") is not None:
                return event_pb2.EventPosition(sequence_number=int(cp["sequence_number"]), inclusive=False)
        pos = opts["starting_position"]
        inclusive = opts["inclusive"]
        if isinstance(pos, dict):
            pos = pos.get(pid, pos.get(int(pid)) if pid.isdigit() else None)
        if isinstance(inclusive, dict):
            inclusive = inclusive.get(pid, False)
        if pos is None:
            return event_pb2.EventPosition(latest=True)  # azure-eventhub's default: new events only
        return event_position(pos, bool(inclusive))

    async def _partition(self, pid: str, on_event: _OnEvent | None, on_batch: _OnEvent | None,
                         opts: dict[str, Any]) -> None:
        ctx = PartitionContext(self, pid)
        reason = "shutdown"
        if opts["on_partition_initialize"] is not None:
            await _maybe_await(opts["on_partition_initialize"](ctx))
        try:
            position = await self._initial_position(pid, opts)
            owner_level = opts["owner_level"] if opts["owner_level"] is not None else self._default_owner_level
            if owner_level is None and self._balanced:
                # Exclusive reading, as the Event Hubs processor does: the new
                # owner's later (higher) level disconnects the previous owner's
                # reader at once, so a moved partition is not read twice.
                owner_level = time.time_ns() // 1000
            stub = self._conn.stub()
            attempt = 0
            while not self._closing:
                request = ingestion_pb2.ReadEventsRequest(
                    hub=self.eventhub_name, partition_id=pid, consumer_group=self.consumer_group,
                    event_position=position, max_batch_size=opts["prefetch"],
                    max_wait=duration(opts["max_wait_time"] or 60.0), owner_level=owner_level or 0,
                    track_last_enqueued_event_properties=opts["track"])
                call = stub.ReadEvents(request)
                try:
                    async for resp in call:
                        attempt = 0
                        events = [EventData._from_received(e) for e in resp.events]
                        if opts["track"]:
                            ctx.last_enqueued_event_properties = last_enqueued(resp)
                        if events:
                            ctx._last_event = events[-1]
                            position = event_pb2.EventPosition(sequence_number=events[-1].sequence_number)
                        if on_batch is not None:
                            if events or opts["max_wait_time"]:
                                await _maybe_await(on_batch(ctx, events))
                        else:
                            assert on_event is not None  # receive() passes on_event, receive_batch() on_batch
                            if events:
                                for ev in events:
                                    await _maybe_await(on_event(ctx, ev))
                            elif opts["max_wait_time"]:
                                await _maybe_await(on_event(ctx, None))
                except grpc.aio.AioRpcError as exc:
                    err = await HeadwaterError.from_aio_call(exc)
                    if exc.code() == grpc.StatusCode.CANCELLED and self._closing:
                        break
                    attempt += 1
                    if err.is_transient:
                        # A receiver keeps trying (a restarting service, a busy partition); the
                        # application hears about it once the policy's attempts are used up.
                        if attempt == self._retry.max_attempts:
                            if opts["on_error"] is not None:
                                await _maybe_await(opts["on_error"](ctx, err))
                            else:
                                log.warning("partition %s: %s; still retrying", pid, err)
                        await asyncio.sleep(min(self._retry.max_backoff_s, max(
                            err.retry_after or 0.0, self._retry.initial_backoff_s * 2 ** min(attempt, 16))))
                        continue
                    reason = "ownership_lost" if err.reason is Reason.CONSUMER_DISCONNECTED else "error"
                    if reason == "ownership_lost" and self._balanced:
                        return
                    if opts["on_error"] is not None:
                        await _maybe_await(opts["on_error"](ctx, err))
                    else:
                        log.warning("partition %s stopped: %s", pid, err)
                    return
                finally:
                    call.cancel()
        except asyncio.CancelledError:
            reason = "ownership_lost" if not self._closing else "shutdown"
            raise
        finally:
            if opts["on_partition_close"] is not None:
                try:
                    await _maybe_await(opts["on_partition_close"](ctx, reason))
                except Exception:
                    log.exception("on_partition_close failed")

    # -- load balancing (the Event Hubs processor's algorithm) ---------------------------

    async def _balance_loop(self, on_event: _OnEvent | None, on_batch: _OnEvent | None,
                            opts: dict[str, Any]) -> None:
        assert self._closed is not None
        pids = await self.get_partition_ids()
        while not self._closing:
            try:
                async with self._balance_lock:
                    if self._closing:
                        break
                    owned = await self._balance_once(pids)
            except HeadwaterError as exc:
                log.warning("load balancing failed: %s", exc)
                owned = set(self._tasks)
            if self._closing:
                break
            for pid in list(self._tasks):
                if pid not in owned:
                    await self._stop_partition(pid)
            for pid in sorted(owned, key=int):
                self._start_partition(pid, on_event, on_batch, opts)
            try:
                # Jitter, so that consumers started together do not renew and
                # steal in lockstep (a steal would always meet a fresh etag).
                await asyncio.wait_for(self._closed.wait(), self._lb_interval * random.uniform(0.6, 1.4))
            except TimeoutError:
                pass

    async def _balance_once(self, pids: list[str]) -> set[str]:
        now = time.time()
        ns, hub, group = self.fully_qualified_namespace, self.eventhub_name, self.consumer_group
        current = {o["partition_id"]: o for o in await self._store.list_ownership(ns, hub, group)}
        active = {p: o for p, o in current.items()
                  if o["owner_id"] and now - o["last_modified_time"] < self._expiry}
        owners = sorted({o["owner_id"] for o in active.values()} | {self.owner_id})
        base, extra = divmod(len(pids), len(owners))
        target = {o: base + (1 if i < extra else 0) for i, o in enumerate(owners)}
        counts: dict[str, int] = {}
        for o in active.values():
            counts[o["owner_id"]] = counts.get(o["owner_id"], 0) + 1
        mine = [p for p, o in active.items() if o["owner_id"] == self.owner_id]
        want = target[self.owner_id]
        claims = [self._claim(hub, group, p, current.get(p)) for p in mine[:want]]
        need = want - len(claims)
        free = [p for p in pids if p not in active]
        for p in free[:max(need, 0)]:
            claims.append(self._claim(hub, group, p, current.get(p)))
            need -= 1
        if need > 0:  # steal one from an owner above its share
            for owner in sorted(counts, key=lambda o: -counts[o]):
                if owner != self.owner_id and counts[owner] > target.get(owner, 0):
                    victim = next(p for p, o in active.items() if o["owner_id"] == owner)
                    claims.append(self._claim(hub, group, victim, current.get(victim)))
                    break
        claimed = await self._store.claim_ownership(claims)
        return {o["partition_id"] for o in claimed if o["owner_id"] == self.owner_id}

    def _claim(self, hub: str, group: str, pid: str, current: dict[str, Any] | None) -> dict[str, Any]:
        return {"fully_qualified_namespace": self.fully_qualified_namespace, "eventhub_name": hub,
                "consumer_group": group, "partition_id": pid, "owner_id": self.owner_id,
                "etag": current["etag"] if current else ""}

    async def _release_ownership(self) -> None:
        """On close, hand owned partitions back (empty owner) so others take them at once."""
        if not self._balanced:
            return
        try:
            current = await self._store.list_ownership(self.fully_qualified_namespace, self.eventhub_name,
                                                       self.consumer_group)
            mine = [dict(o, owner_id="") for o in current if o["owner_id"] == self.owner_id]
            if mine:
                await self._store.claim_ownership(mine)  # an empty owner releases (azure-eventhub does the same)
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
