"""The IngestionService RPCs: proto <-> hubs, logs, checkpoints, quotas, faults.

Hot paths work on bytes: PublishEvents receives its events as opaque
serialized EventData (the packed request view) and ReadEvents answers with
slices of stored frames, serialized by identity (see :func:`add_to_server`),
or, when the request is ``packed``, with the frames as columns
(:mod:`.packed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from headwater.errors import HeadwaterError, Reason
from headwater.eventhub.wire import PublishEventsRequestPacked, PublishEventsStreamRequestPacked
from headwater.pagination import decode_page_token, encode_page_token
from headwater.server import caller
from headwater.services.ingestion import metrics as m
from headwater.services.ingestion.capture import check_capture
from headwater.services.ingestion.config import IngestionConfig
from headwater.services.ingestion.faults import (
    ALL,
    PUBLISH,
    READ,
    FaultRule,
)
from headwater.services.ingestion.hubs import (
    Hub,
    HubStore,
    check_throughput,
    group_id_from_name,
    group_name,
    hub_id_from_name,
)
from headwater.services.ingestion.log.embedded import PartitionLog
from headwater.services.ingestion.log.segment import PackedEvents, varint
from headwater.services.ingestion.metadata import FileMetadata
from headwater.services.ingestion.packed import packed_answer
from headwater.services.ingestion.quotas import HubQuota
from headwater.v1 import errors_pb2, event_pb2, ingestion_pb2, ingestion_pb2_grpc

if TYPE_CHECKING:
    from headwater.services.ingestion.capture import CaptureWriter

__all__ = ["IngestionServicer", "add_to_server"]

log = logging.getLogger("headwater.ingestion")

_OP_NAMES = {ingestion_pb2.FAULT_OPERATION_PUBLISH: PUBLISH, ingestion_pb2.FAULT_OPERATION_READ: READ,
             ingestion_pb2.FAULT_OPERATION_ALL: ALL, ingestion_pb2.FAULT_OPERATION_UNSPECIFIED: ALL}
_OP_VALUES = {PUBLISH: ingestion_pb2.FAULT_OPERATION_PUBLISH, READ: ingestion_pb2.FAULT_OPERATION_READ,
              ALL: ingestion_pb2.FAULT_OPERATION_ALL}
_FRAME_OVERHEAD = 16  # bytes a batch adds per event on the wire (tag + length)


def _ts(seconds: float | None = None, ns: int | None = None) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    if ns is not None:
        t.FromNanoseconds(ns)
    else:
        t.FromNanoseconds(int((seconds or 0.0) * 1e9))
    return t


def _duration_s(d: duration_pb2.Duration) -> float:
    return d.seconds + d.nanos / 1e9


def _page(items: list, page_size: int, page_token: str, key, default: int = 100, maximum: int = 1000):
    if page_size < 0:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, "page_size must be >= 0", metadata={"field": "page_size"})
    size = min(page_size or default, maximum)
    if page_token:  # opaque and checked (headwater.pagination): garbage is INVALID_ARGUMENT
        after = str(decode_page_token(page_token, "ingestion"))
        items = [i for i in items if key(i) > after]
    page = items[:size]
    token = encode_page_token("ingestion", key(page[-1])) if len(items) > size else ""
    return page, token


class _Journals(Mapping):
    """hub name -> the embedded store's checkpoint journal of that hub."""

    def __init__(self, hubs: HubStore) -> None:
        self.hubs = hubs

    def __getitem__(self, hub_id: str):
        metadata = self.hubs.metadata
        if hub_id not in self.hubs.hubs or not isinstance(metadata, FileMetadata):
            raise KeyError(hub_id)
        return metadata._journal(hub_id)

    def __iter__(self):
        return iter(self.hubs.hubs if isinstance(self.hubs.metadata, FileMetadata) else ())

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(eq=False)
class _Reader:
    owner_level: int
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    reader_id: str = field(default_factory=lambda: uuid.uuid4().hex)


def _with_partition_key(events: list[bytes], key: str) -> list[bytes]:
    """The batch's partition key stored in every event (EventData.partition_key, field 4), as
    Event Hubs reports it on read: appended to each serialized event, where the last value of a
    field wins; an event that already ends with it (the SDKs encode it) is kept as it is."""
    raw = key.encode()
    suffix = b"\x22" + varint(len(raw)) + raw
    return [e if e.endswith(suffix) else e + suffix for e in events]


class IngestionServicer(ingestion_pb2_grpc.IngestionServiceServicer):
    """Implements headwater.v1.IngestionService over a :class:`HubStore`."""

    def __init__(self, config: IngestionConfig, hubs: HubStore) -> None:
        self.config = config
        self.hubs = hubs
        self.metadata = hubs.metadata
        #: hub -> its checkpoint journal (CheckpointStore), on the embedded store only: the
        #: synchronous face the Kafka endpoint uses. Empty on a shared store (use ``metadata``).
        self.stores = _Journals(hubs)
        self.quotas: dict[str, HubQuota] = {}
        self.faults = hubs.metadata.fault_rules()
        self.readers: dict[tuple[str, str, str], list[_Reader]] = {}
        # Readers with an owner level on other instances (shared metadata store): key -> {reader id: level}.
        self.remote_readers: dict[tuple[str, str, str], dict[str, int]] = {}
        self.metadata.on_reader = self._remote_reader
        self.capture: CaptureWriter | None = None  # set by the server when a hub captures
        self.on_hub_deleted: Callable[[str], object] | None = None  # set by the server: drops the hub's policies
        self.drain = asyncio.Event()  # set at shutdown: long polls end so the drain is quick
        for hub in hubs.list():
            self._attach(hub)

    # -- helpers ---------------------------------------------------------------

    def _attach(self, hub: Hub) -> HubQuota:
        """The hub's quota, following its settings (which another instance may change)."""
        meta = hub.meta
        quota = self.quotas.get(hub.name)
        if quota is None or quota.create_time != meta.create_time:
            quota = self.quotas[hub.name] = HubQuota(hub.name, meta.throughput_units, meta.auto_inflate,
                                                     meta.maximum_units)
            quota.create_time, quota.revision = meta.create_time, hub.revision
            quota.meta_units = meta.throughput_units
        elif hub.revision != quota.revision:  # settings changed (here or on another instance)
            quota.revision = hub.revision
            quota.meta_units = meta.throughput_units
            if (quota.units, quota.auto_inflate, quota.maximum_units) != (
                    meta.throughput_units, meta.auto_inflate, meta.maximum_units):
                quota.set_units(meta.throughput_units, meta.auto_inflate, meta.maximum_units)
        return quota

    async def _hub(self, name: str, field_name: str = "name", fresh: bool = True) -> Hub:
        """A hub by name: re-read from the metadata store for management calls
        (``fresh``), from the cache on the hot paths (a miss re-reads)."""
        hub_id = hub_id_from_name(name, field_name)
        self._check_entity(hub_id)
        hub = await self.hubs.lookup(hub_id, fresh=fresh)
        self._attach(hub)
        return hub

    @staticmethod
    def _check_entity(hub_id: str) -> None:
        """A token signed for one entity covers only that hub."""
        who = caller()
        if who is not None:
            who.require_entity(hub_id)

    def _hub_proto(self, hub: Hub) -> ingestion_pb2.Hub:
        meta = hub.meta
        retention = duration_pb2.Duration()
        retention.FromNanoseconds(int(meta.retention_s * 1e9))
        quota = self.quotas.get(hub.name)
        cap = meta.capture or {}
        interval = duration_pb2.Duration(seconds=int(cap.get("interval_s", 300)))
        return ingestion_pb2.Hub(
            name=f"hubs/{meta.name}", partition_count=meta.partition_count,
            partition_ids=[str(i) for i in range(meta.partition_count)], message_retention=retention,
            create_time=_ts(meta.create_time),
            throughput=ingestion_pb2.ThroughputSettings(
                units=quota.units if quota else meta.throughput_units, auto_inflate=meta.auto_inflate,
                maximum_units=meta.maximum_units),
            capture=ingestion_pb2.CaptureDescription(
                enabled=bool(cap.get("enabled")), interval=interval,
                size_limit_bytes=int(cap.get("size_limit_bytes", 300 << 20)),
                destination=cap.get("destination", ""), archive_name_format=cap.get("archive_name_format", "")))

    @staticmethod
    def _partition_proto(hub: Hub, part: PartitionLog) -> ingestion_pb2.PartitionProperties:
        props = ingestion_pb2.PartitionProperties(
            name=f"hubs/{hub.name}/partitions/{part.partition_id}", hub=f"hubs/{hub.name}", partition_id=part.partition_id,
            beginning_sequence_number=part.beginning_sequence,
            last_enqueued_sequence_number=part.next_sequence - 1 if not part.is_empty else -1,
            last_enqueued_offset=part.last_offset(), is_empty=part.is_empty)
        if not part.is_empty:
            props.last_enqueued_time.CopyFrom(_ts(ns=part.last_ts_ns))
        return props

    @staticmethod
    def _capture_dict(cap: ingestion_pb2.CaptureDescription) -> dict:
        if not cap.enabled:
            return {}
        return {"enabled": True, "interval_s": _duration_s(cap.interval) or 300.0,
                "size_limit_bytes": cap.size_limit_bytes or 300 << 20, "destination": cap.destination,
                "archive_name_format": cap.archive_name_format}

    # -- hubs --------------------------------------------------------------------

    async def CreateHub(self, request, context):
        spec = request.hub
        retention = _duration_s(spec.message_retention) if spec.HasField("message_retention") \
            else self.config.default_retention_s
        if not request.hub_id:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "hub_id is empty", metadata={"field": "hub_id"})
        hub, created = await self.hubs.create_async(
            request.hub_id, spec.partition_count or 4, retention, throughput_units=spec.throughput.units,
            auto_inflate=spec.throughput.auto_inflate, maximum_units=spec.throughput.maximum_units,
            capture=check_capture(self._capture_dict(spec.capture), self.config), request_id=request.request_id)
        self._attach(hub)
        if created:
            log.info("hub created", extra={"fields": {"hub": hub.name, "partitions": hub.meta.partition_count}})
        return ingestion_pb2.CreateHubResponse(hub=self._hub_proto(hub))

    async def GetHub(self, request, context):
        return ingestion_pb2.GetHubResponse(hub=self._hub_proto(await self._hub(request.name)))

    async def ListHubs(self, request, context):
        hubs = await self.hubs.list_async()
        for hub in hubs:
            self._attach(hub)
        page, token = _page(hubs, request.page_size, request.page_token, key=lambda h: h.name)
        return ingestion_pb2.ListHubsResponse(hubs=[self._hub_proto(h) for h in page], next_page_token=token)

    async def UpdateHub(self, request, context):
        hub = await self._hub(request.hub.name, "hub.name")
        paths = list(request.update_mask.paths)
        if not paths:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "update_mask is empty: name the fields to change "
                                 "(message_retention, throughput, capture, partition_count)", metadata={"field": "update_mask"})

        def change(meta) -> None:
            for path in paths:
                if path == "message_retention":
                    seconds = _duration_s(request.hub.message_retention)
                    if seconds <= 0:
                        raise HeadwaterError(Reason.INVALID_ARGUMENT, "message_retention must be positive",
                                             metadata={"field": "hub.message_retention"})
                    meta.retention_s = seconds
                elif path.startswith("throughput"):
                    t = request.hub.throughput
                    check_throughput(t.units, t.auto_inflate, t.maximum_units)
                    meta.throughput_units, meta.auto_inflate, meta.maximum_units = (t.units, t.auto_inflate,
                                                                                    t.maximum_units)
                elif path.startswith("capture"):
                    meta.capture = check_capture(self._capture_dict(request.hub.capture), self.config)
                elif path == "partition_count":
                    n = request.hub.partition_count
                    if n <= meta.partition_count or n > self.hubs.max_partitions:
                        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                             f"partition_count {n}: a hub's partitions can only be added "
                                             f"(it has {meta.partition_count}; at most {self.hubs.max_partitions})",
                                             metadata={"field": "hub.partition_count"})
                    meta.partition_count = n
                else:
                    raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                         f"update_mask path {path!r} cannot be changed; allowed: "
                                         "message_retention, throughput, capture, partition_count",
                                         metadata={"field": "update_mask"})

        hub = await self.hubs.update_async(hub.name, change)
        self._attach(hub)
        return ingestion_pb2.UpdateHubResponse(hub=self._hub_proto(hub))

    async def DeleteHub(self, request, context):
        hub = await self._hub(request.name)
        self.quotas.pop(hub.name, None)
        await self.faults.clear_async(hub.name)
        await self.hubs.delete_async(hub.name)
        if self.on_hub_deleted is not None:  # the hub's shared access policies go with it
            self.on_hub_deleted(hub.name)
        return ingestion_pb2.DeleteHubResponse()

    async def GetPartitionProperties(self, request, context):
        parts = request.name.split("/")
        if len(parts) != 4 or parts[0] != "hubs" or parts[2] != "partitions":
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"name {request.name!r} is not hubs/{{hub}}/partitions/{{partition}}",
                                 metadata={"field": "name"})
        hub = await self._hub(parts[1])
        part = hub.partition(parts[3], "name")
        await part.refresh()  # the partition as the log has it now (other instances append too)
        return ingestion_pb2.GetPartitionPropertiesResponse(partition=self._partition_proto(hub, part))

    # -- consumer groups -----------------------------------------------------

    @staticmethod
    def _group_name(name: str) -> tuple[str, str]:
        parts = name.split("/")
        if len(parts) != 4 or parts[0] != "hubs" or parts[2] != "consumerGroups":
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"name {name!r} is not hubs/{{hub}}/consumerGroups/{{consumer_group}}",
                                 metadata={"field": "name"})
        return parts[1], parts[3]

    @staticmethod
    def _group_proto(hub: str, name: str, info: dict) -> ingestion_pb2.ConsumerGroup:
        return ingestion_pb2.ConsumerGroup(name=f"hubs/{hub}/consumerGroups/{name}",
                                           user_metadata=info.get("user_metadata", ""),
                                           create_time=_ts(info.get("create_time", 0.0)))

    async def CreateConsumerGroup(self, request, context):
        hub = await self._hub(request.parent, "parent")
        info = await self.hubs.create_group_async(hub.name, request.consumer_group_id, request.user_metadata, request.request_id)
        return ingestion_pb2.CreateConsumerGroupResponse(
            consumer_group=self._group_proto(hub.name, request.consumer_group_id, info))

    async def GetConsumerGroup(self, request, context):
        hub_id, group = self._group_name(request.name)
        hub = await self._hub(hub_id)
        return ingestion_pb2.GetConsumerGroupResponse(
            consumer_group=self._group_proto(hub.name, group, self.hubs.group(hub.name, group)))

    async def ListConsumerGroups(self, request, context):
        hub = await self._hub(request.parent, "parent")
        items = sorted(hub.meta.consumer_groups.items())
        page, token = _page(items, request.page_size, request.page_token, key=lambda kv: kv[0])
        return ingestion_pb2.ListConsumerGroupsResponse(
            consumer_groups=[self._group_proto(hub.name, k, v) for k, v in page], next_page_token=token)

    async def DeleteConsumerGroup(self, request, context):
        hub_id, group = self._group_name(request.name)
        hub = await self._hub(hub_id)
        await self.hubs.delete_group_async(hub.name, group)
        return ingestion_pb2.DeleteConsumerGroupResponse()

    # -- publish ---------------------------------------------------------------

    async def _publish(self, request) -> ingestion_pb2.PublishEventsResponse:
        return await self.publish_events(request.hub, list(request.events), request.partition_id,
                                         request.partition_key, request.producer_id, request.producer_sequence,
                                         request.request_id)

    async def publish_events(self, hub_name: str, events: list[bytes] | PackedEvents, partition_id: str = "",
                             partition_key: str = "", producer_id: str = "", producer_sequence: int = 0,
                             request_id: str = "") -> ingestion_pb2.PublishEventsResponse:
        """A publish: serialized events as a list, or packed in one buffer (the Kafka endpoint's)."""
        hub = await self._hub(hub_name, "hub", fresh=False)
        name = hub.name
        if not len(events):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "the batch has no events", metadata={"field": "events"})
        if partition_id and partition_key:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "set partition_id or partition_key, not both",
                                 metadata={"field": "partition_key"})
        if producer_id and not (partition_id or partition_key):
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 "idempotent publishing (producer_id) needs a partition_id or partition_key",
                                 metadata={"field": "partition_id"})
        if partition_key and not isinstance(events, PackedEvents):
            events = _with_partition_key(events, partition_key)
        limit = self.config.max_message_bytes
        sizes = events.sizes() if isinstance(events, PackedEvents) else list(map(len, events))
        total = (events.nbytes if isinstance(events, PackedEvents) else sum(sizes)) + _FRAME_OVERHEAD * len(sizes)
        if total > limit:
            biggest = int(max(sizes))
            what = f"event of {biggest} bytes" if biggest > limit else f"batch of {total} bytes"
            m.SIZE_REJECTED.labels(name).inc()
            raise HeadwaterError(Reason.MESSAGE_SIZE_EXCEEDED,
                                 f"{what} is over the {limit}-byte limit (setting max_message_bytes); "
                                 "nothing of this batch was stored",
                                 metadata={"size": max(biggest, total), "limit": limit})
        part = hub.route(partition_id, partition_key)
        await self.faults.check_async(name, PUBLISH, part.partition_id)
        quota = self.quotas.get(name)
        if quota is not None and quota.units:
            try:
                await self.metadata.take_quota(name, quota, "in", len(events), total,
                                               on_inflate=lambda u: self._inflated(hub, u))
            except HeadwaterError:
                m.THROTTLED.labels(name).inc()
                raise
        result = await part.publish(events, producer_id, producer_sequence)
        if not result.duplicate:
            m.IN_MESSAGES.labels(name, part.partition_id).inc(len(events))
            m.IN_BYTES.labels(name, part.partition_id).inc(total)
            if self.capture is not None and hub.meta.capture.get("enabled"):
                self.capture.notify(hub, part)
        return ingestion_pb2.PublishEventsResponse(
            partition_id=part.partition_id, first_sequence_number=result.first_sequence,
            last_sequence_number=result.last_sequence, enqueued_time=_ts(ns=result.ts_ns),
            duplicate=result.duplicate, request_id=request_id)

    def _inflated(self, hub: Hub, units: int) -> None:
        def grow(meta) -> None:
            meta.throughput_units = max(meta.throughput_units, units)

        task = asyncio.ensure_future(self.hubs.update_async(hub.name, grow))
        def report(t: asyncio.Future) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.warning("auto-inflate not stored: %s", t.exception())

        task.add_done_callback(report)
        log.info("auto-inflate", extra={"fields": {"hub": hub.name, "units": units}})

    async def PublishEvents(self, request, context):
        try:
            return await self._publish(request)
        except HeadwaterError as exc:
            _count_error(request.hub, exc)
            raise

    async def PublishEventsStream(self, request_iterator, context) -> AsyncIterator[bytes]:
        """Responses in request order. A failed request ends the stream, or with its
        ``continue_on_error`` is answered with the error; either way the error names it."""
        index = 0
        async for request in request_iterator:
            try:
                response = await self._publish(request)
            except HeadwaterError as exc:
                _count_error(request.hub, exc)
                which = f"request {index}" + (f" (request_id {request.request_id!r})" if request.request_id else "")
                named = HeadwaterError(exc.reason, f"{which}: {exc.message}", retry_after=exc.retry_after,
                                       metadata={**exc.metadata, "request_index": index,
                                                 **({"request_id": request.request_id} if request.request_id else {})})
                if not request.continue_on_error:
                    raise named from None
                yield ingestion_pb2.PublishEventsStreamResponse(
                    request_id=request.request_id, error=named.to_status("ingestion")).SerializeToString()
            else:
                yield response.SerializeToString()
            index += 1

    # -- read ------------------------------------------------------------------

    async def _start_sequence(self, part: PartitionLog, pos: event_pb2.EventPosition) -> int:
        which = pos.WhichOneof("position")
        if which is None or which == "earliest":
            return part.beginning_sequence
        if which == "latest":
            return part.next_sequence
        if which == "sequence_number":
            seq = pos.sequence_number
            return max(seq if pos.inclusive else seq + 1, 0)
        if which == "offset":
            return await part.locate_offset(pos.offset, pos.inclusive)
        return await part.locate_time(pos.enqueued_time.ToNanoseconds())

    def _remote_reader(self, key: tuple[str, str, str], reader_id: str, owner_level: int, opened: bool) -> None:
        """A reader opened or ended on another instance: a higher owner level disconnects ours."""
        remote = self.remote_readers.setdefault(key, {})
        if not opened:
            remote.pop(reader_id, None)
            if not remote:
                self.remote_readers.pop(key, None)
            return
        remote[reader_id] = owner_level
        if owner_level > 0:
            for reader in self.readers.get(key, []):
                if reader.owner_level < owner_level:
                    reader.disconnected.set()

    def _register_reader(self, key: tuple[str, str, str], owner_level: int) -> _Reader:
        readers = self.readers.setdefault(key, [])
        remote = self.remote_readers.get(key, {})
        top = max([r.owner_level for r in readers] + list(remote.values()), default=0)
        if (readers or remote) and top > 0 and owner_level < top:
            raise HeadwaterError(
                Reason.CONSUMER_DISCONNECTED,
                f"a reader with owner level {top} holds partition {key[2]} of {key[0]}/{key[1]}; "
                f"this reader's level is {owner_level}", metadata={"owner_level": top})
        reader = _Reader(owner_level)
        if owner_level > 0:
            for other in readers:
                if other.owner_level < owner_level:
                    other.disconnected.set()
        readers.append(reader)
        return reader

    async def ReadEvents(self, request, context) -> AsyncIterator:
        hub = await self._hub(request.hub, "hub", fresh=False)
        name = hub.name
        group = group_id_from_name(name, request.consumer_group)
        await self.hubs.group_async(name, group)
        part = hub.partition(request.partition_id)
        await part.refresh()
        if request.max_batch_size < 0 or request.max_batch_size > 10000:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "max_batch_size must be 0..10000",
                                 metadata={"field": "max_batch_size"})
        max_events = request.max_batch_size or 300
        max_wait = _duration_s(request.max_wait) if request.HasField("max_wait") else 60.0
        if max_wait < 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "max_wait must not be negative",
                                 metadata={"field": "max_wait"})
        max_wait = max(max_wait, 0.01)  # a zero wait would spin on heartbeats
        await self.faults.check_async(name, READ, part.partition_id)
        seq = await self._start_sequence(part, request.event_position)
        key = (name, group, part.partition_id)
        reader = self._register_reader(key, request.owner_level)
        if request.owner_level > 0:
            await self.metadata.announce_reader(key, reader.reader_id, request.owner_level, True)
        track = request.track_last_enqueued_event_properties
        packed, props = request.packed, request.include_properties
        quota = self.quotas.get(name)
        out_msgs = m.OUT_MESSAGES.labels(name, part.partition_id)
        out_bytes = m.OUT_BYTES.labels(name, part.partition_id)
        try:
            while True:
                if self.drain.is_set():
                    return  # shutting down: end the stream; clients reconnect
                if reader.disconnected.is_set():
                    raise HeadwaterError(Reason.CONSUMER_DISCONNECTED,
                                         f"a reader with a higher owner level took partition {part.partition_id}")
                if part.closed:
                    raise HeadwaterError(Reason.SERVICE_BUSY, "the partition is closing; reconnect",
                                         retry_after=0.5)
                changed = part.changed()
                pieces, count, next_seq = await part.fetch(seq, max_events)
                if count:
                    await self.faults.check_async(name, READ, part.partition_id)
                    body = b"".join(pieces)
                    if quota is not None and quota.units:
                        while True:
                            try:
                                await self.metadata.take_quota(name, quota, "out", count, len(body),
                                                               on_inflate=lambda u: self._inflated(hub, u))
                                break
                            except HeadwaterError as exc:
                                m.THROTTLED.labels(name).inc()
                                await asyncio.sleep(exc.retry_after or 0.05)
                    seq = next_seq
                    out_msgs.inc(count)
                    out_bytes.inc(len(body))
                    if packed:  # ReadEventsResponse.packed (field 6): columns, no message per event
                        try:
                            answer = packed_answer(body, props, self._tail(part) if track else b"")
                        except ValueError as exc:
                            raise HeadwaterError(Reason.INTERNAL_ERROR,
                                                 f"partition {part.partition_id}: {exc}") from None
                        yield answer
                        continue
                    yield body + self._tail(part) if track else body
                    continue
                seq = max(seq, part.beginning_sequence)
                # Caught up: long-poll for new events or a disconnect.
                waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(reader.disconnected.wait()),
                           asyncio.ensure_future(self.drain.wait())]
                try:
                    done, _ = await asyncio.wait(waiters, timeout=max_wait, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
                if not done and not self.drain.is_set():
                    yield self._tail(part) if track else b""
        finally:
            readers = self.readers.get(key, [])
            if reader in readers:
                readers.remove(reader)
            if not readers:
                self.readers.pop(key, None)
            if request.owner_level > 0:
                await self.metadata.announce_reader(key, reader.reader_id, request.owner_level, False)

    def _tail(self, part: PartitionLog) -> bytes:
        msg = ingestion_pb2.ReadEventsResponse(
            last_enqueued_sequence_number=part.next_sequence - 1, last_enqueued_offset=part.last_offset(),
            retrieval_time=_ts(time.time()))
        if part.last_ts_ns:
            msg.last_enqueued_time.CopyFrom(_ts(ns=part.last_ts_ns))
        return msg.SerializeToString()

    # -- checkpoints and ownership ----------------------------------------------

    async def _group(self, hub_name: str, group: str, field_name: str = "hub",
                     group_field: str = "consumer_group") -> tuple[Hub, str]:
        hub = await self._hub(hub_name, field_name, fresh=False)
        group = group_id_from_name(hub.name, group, group_field)
        await self.hubs.group_async(hub.name, group)
        return hub, group

    async def ListCheckpoints(self, request, context):
        hub, group = await self._group(request.hub, request.consumer_group)
        items = await self.metadata.list_checkpoints(hub.name, group)
        page, token = _page(items, request.page_size, request.page_token,
                            key=lambda c: f"{int(c.partition_id):08d}", default=1000)
        return ingestion_pb2.ListCheckpointsResponse(checkpoints=[
            ingestion_pb2.Checkpoint(hub=f"hubs/{hub.name}", consumer_group=group_name(hub.name, group),
                                     partition_id=c.partition_id,
                                     offset=c.offset, sequence_number=c.sequence_number,
                                     update_time=_ts(c.update_time)) for c in page], next_page_token=token)

    async def UpdateCheckpoint(self, request, context):
        cp = request.checkpoint
        hub, group = await self._group(cp.hub, cp.consumer_group, "checkpoint.hub", "checkpoint.consumer_group")
        hub.partition(cp.partition_id, "checkpoint.partition_id")
        if cp.sequence_number < 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "checkpoint.sequence_number must be >= 0",
                                 metadata={"field": "checkpoint.sequence_number"})
        rec = await self.metadata.update_checkpoint(hub.name, group, cp.partition_id, cp.offset, cp.sequence_number)
        return ingestion_pb2.UpdateCheckpointResponse(checkpoint=ingestion_pb2.Checkpoint(
            hub=f"hubs/{hub.name}", consumer_group=group_name(hub.name, group), partition_id=rec.partition_id,
            offset=rec.offset,
            sequence_number=rec.sequence_number, update_time=_ts(rec.update_time)))

    @staticmethod
    def _ownership_proto(hub: str, o) -> ingestion_pb2.Ownership:
        return ingestion_pb2.Ownership(hub=f"hubs/{hub}", consumer_group=group_name(hub, o.consumer_group),
                                       partition_id=o.partition_id,
                                       owner_id=o.owner_id, etag=o.etag, last_modified_time=_ts(o.last_modified_time),
                                       expire_time=_ts(o.expire_time))

    async def ListOwnerships(self, request, context):
        hub, group = await self._group(request.hub, request.consumer_group)
        items = await self.metadata.list_ownership(hub.name, group)
        page, token = _page(items, request.page_size, request.page_token,
                            key=lambda o: f"{int(o.partition_id):08d}", default=1000)
        return ingestion_pb2.ListOwnershipsResponse(
            ownerships=[self._ownership_proto(hub.name, o) for o in page], next_page_token=token)

    async def ClaimOwnership(self, request, context):
        claimed = []
        for o in request.ownerships:
            hub, group = await self._group(o.hub, o.consumer_group, "ownerships.hub", "ownerships.consumer_group")
            hub.partition(o.partition_id, "ownerships.partition_id")
            # An empty owner_id releases the partition (a consumer closing).
            rec = await self.metadata.claim(hub.name, group, o.partition_id, o.owner_id, o.etag)
            if rec is not None:
                claimed.append(self._ownership_proto(hub.name, rec))
        return ingestion_pb2.ClaimOwnershipResponse(ownerships=claimed)

    # -- faults ----------------------------------------------------------------

    @staticmethod
    def _rule_proto(r: FaultRule) -> ingestion_pb2.FaultRule:
        return ingestion_pb2.FaultRule(rule_id=r.rule_id, hub=f"hubs/{r.hub}", operation=_OP_VALUES[r.operation],
                                       reason=r.reason.value,  # the enum value's name
                                       probability=r.probability, count=r.count, partition_id=r.partition_id,
                                       remaining=r.remaining, injected=r.injected)

    async def SetFaultRule(self, request, context):
        r = request.rule
        hub = await self._hub(r.hub, "rule.hub")
        if r.reason == errors_pb2.ERROR_REASON_UNSPECIFIED:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "rule.reason is not set (SERVICE_BUSY, QUOTA_EXCEEDED, ...)",
                                 metadata={"field": "rule.reason"})
        if r.partition_id:
            hub.partition(r.partition_id, "rule.partition_id")
        rule = FaultRule(rule_id=r.rule_id or uuid.uuid4().hex[:8], hub=hub.name, operation=_OP_NAMES[r.operation],
                         reason=Reason(errors_pb2.ErrorReason.Name(r.reason)), probability=r.probability,
                         count=r.count, partition_id=r.partition_id)
        return ingestion_pb2.SetFaultRuleResponse(rule=self._rule_proto(await self.faults.set_async(rule)))

    async def ListFaultRules(self, request, context):
        hub = await self._hub(request.hub, "hub")
        page, token = _page(await self.faults.list_async(hub.name), request.page_size, request.page_token,
                            key=lambda r: r.rule_id)
        return ingestion_pb2.ListFaultRulesResponse(rules=[self._rule_proto(r) for r in page], next_page_token=token)

    async def ClearFaultRules(self, request, context):
        hub = await self._hub(request.hub, "hub")
        return ingestion_pb2.ClearFaultRulesResponse(removed=await self.faults.clear_async(hub.name, request.rule_id))


def _count_error(hub: str, exc: HeadwaterError) -> None:
    if exc.reason in (Reason.INTERNAL_ERROR, Reason.SERVICE_BUSY, Reason.SERVICE_TIMEOUT):
        m.SERVER_ERRORS.labels(hub_id_from_name(hub) if hub else "").inc()


def _identity(body: bytes) -> bytes:
    return body


def add_to_server(servicer: IngestionServicer, server: grpc.aio.Server) -> None:
    """Like the generated ``add_IngestionServiceServicer_to_server``, with the hot
    paths on bytes: publish requests parsed as the packed view, read responses
    sent as the stored bytes."""
    from headwater.v1 import ingestion_pb2_grpc as gen

    captured: dict = {}

    class _Capture:
        def add_generic_rpc_handlers(self, handlers):
            captured["generic"] = handlers

        def add_registered_method_handlers(self, name, handlers):
            captured["name"], captured["handlers"] = name, handlers

    gen.add_IngestionServiceServicer_to_server(servicer, _Capture())
    handlers = dict(captured["handlers"])
    handlers["PublishEvents"] = grpc.unary_unary_rpc_method_handler(
        servicer.PublishEvents, request_deserializer=PublishEventsRequestPacked.FromString,
        response_serializer=ingestion_pb2.PublishEventsResponse.SerializeToString)
    # The stream's responses are serialized by PublishEventsStream (a PublishEventsResponse's
    # bytes are a PublishEventsStreamResponse's without `error`).
    handlers["PublishEventsStream"] = grpc.stream_stream_rpc_method_handler(
        servicer.PublishEventsStream, request_deserializer=PublishEventsStreamRequestPacked.FromString,
        response_serializer=_identity)
    handlers["ReadEvents"] = grpc.unary_stream_rpc_method_handler(
        servicer.ReadEvents, request_deserializer=ingestion_pb2.ReadEventsRequest.FromString,
        response_serializer=_identity)
    generic = grpc.method_handlers_generic_handler(captured["name"], handlers)
    server.add_generic_rpc_handlers((generic,))
    server.add_registered_method_handlers(captured["name"], handlers)
