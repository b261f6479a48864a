"""The ``headwater`` Spark data source: a micro-batch stream reader and a stream writer.

See :mod:`headwater.spark` for the options. The driver plans (partitions and their
sequence-number ranges from GetHub / GetPartitionProperties); each Spark task reads one
partition's range with ReadEvents and hands Spark an Arrow record batch per response.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pyspark.sql.datasource import (
    DataSource,
    DataSourceStreamReader,
    DataSourceStreamWriter,
    InputPartition,
    WriterCommitMessage,
)

from headwater.errors import HeadwaterError, Reason

if TYPE_CHECKING:
    import grpc
    from google.protobuf.message import Message
    from pyspark.sql import Row, SparkSession
    from pyspark.sql.streaming.datasource import ReadLimit
    from pyspark.sql.types import StructType

    from headwater.v1 import event_pb2, ingestion_pb2_grpc

_T = TypeVar("_T")

__all__ = ["SCHEMA", "HeadwaterDataSource", "HeadwaterStreamReader", "HeadwaterStreamWriter", "register"]

#: The azure-event-hubs-spark connector's columns.
SCHEMA = ("body binary, partition string, offset string, sequenceNumber long, enqueuedTime timestamp, "
          "publisher string, partitionKey string, properties map<string,string>")


def register(spark: SparkSession) -> None:
    """``spark.dataSource.register(HeadwaterDataSource)``: makes ``format("headwater")`` known."""
    spark.dataSource.register(HeadwaterDataSource)


@dataclass(frozen=True)
class _Target:
    """What the options say: where, which hub and group (picklable, for the workers)."""

    connection_string: str
    hub: str
    consumer_group: str

    @classmethod
    def from_options(cls, options: dict[str, str]) -> _Target:
        from headwater.auth import ConnectionString

        opts = {k.lower(): v for k, v in options.items()}
        text = opts.get("connectionstring", "")
        if not text:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "option connectionString is required (the namespace "
                                 "connection string: headwater connection-string)", metadata={"field": "connectionString"})
        conn = ConnectionString.parse(text)
        hub = opts.get("eventhubname") or conn.entity_path
        if not hub:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "option eventHubName is required (or EntityPath= in the "
                                 "connection string)", metadata={"field": "eventHubName"})
        return cls(text, hub, opts.get("consumergroup") or "$Default")

    def stub(self) -> tuple[grpc.Channel, ingestion_pb2_grpc.IngestionServiceStub]:
        from headwater.channel import sync_channel
        from headwater.v1 import ingestion_pb2_grpc

        channel = sync_channel(self.connection_string)
        return channel, ingestion_pb2_grpc.IngestionServiceStub(channel)


def _call(method: Callable[..., _T], request: Message) -> _T:
    import grpc

    try:
        return method(request, timeout=30)
    except grpc.RpcError as exc:
        raise HeadwaterError.from_rpc_error(exc) from None


class HeadwaterDataSource(DataSource):
    """``format("headwater")``: read a hub as a stream, or publish a stream's rows to one."""

    @classmethod
    def name(cls) -> str:
        return "headwater"

    def schema(self) -> str:
        return SCHEMA

    def streamReader(self, schema: StructType) -> HeadwaterStreamReader:  # noqa: N802 - Spark's name
        return HeadwaterStreamReader(dict(self.options))

    def streamWriter(self, schema: StructType, overwrite: bool) -> HeadwaterStreamWriter:  # noqa: N802
        return HeadwaterStreamWriter(dict(self.options), schema)


class _Range(InputPartition):
    """One Spark task: sequence numbers ``[start, end)`` of one hub partition."""

    def __init__(self, partition_id: str, start: int, end: int) -> None:
        super().__init__((partition_id, start, end))
        self.partition_id, self.start, self.end = partition_id, start, end


class HeadwaterStreamReader(DataSourceStreamReader):
    """Offsets are ``{partition id: next sequence number to read}``."""

    def __init__(self, options: dict[str, str]) -> None:
        self.target = _Target.from_options(options)
        opts = {k.lower(): v for k, v in options.items()}
        self.starting = opts.get("startingposition", "latest")
        try:
            self.max_events = int(opts.get("maxeventspertrigger") or 0)
            self.max_batch = int(opts.get("maxbatchsize") or 5000)
        except ValueError:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "maxEventsPerTrigger and maxBatchSize are whole numbers",
                                 metadata={"field": "maxEventsPerTrigger"}) from None
        if self.max_events < 0 or not 1 <= self.max_batch <= 10_000:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "maxEventsPerTrigger must be >= 0 and maxBatchSize "
                                 "1..10000", metadata={"field": "maxEventsPerTrigger"})
        self._last_end: dict[str, Any] | None = None

    # -- planning (driver) ---------------------------------------------------------
    def _partitions(self) -> dict[str, tuple[int, int]]:
        """``{partition: (first retained sequence number, next sequence number)}``."""
        from headwater.v1 import ingestion_pb2 as ipb

        channel, stub = self.target.stub()
        with channel:
            hub = _call(stub.GetHub, ipb.GetHubRequest(name=f"hubs/{self.target.hub}")).hub
            out = {}
            for pid in hub.partition_ids:
                p = _call(stub.GetPartitionProperties, ipb.GetPartitionPropertiesRequest(
                    name=f"hubs/{self.target.hub}/partitions/{pid}")).partition
                out[pid] = (p.beginning_sequence_number, p.last_enqueued_sequence_number + 1)
            return out

    def initialOffset(self) -> dict[str, Any]:  # noqa: N802
        parts = self._partitions()
        text = str(self.starting).strip()
        if text.lower() in ("latest", "@latest", "end"):
            return {pid: nxt for pid, (_first, nxt) in parts.items()}
        if text.lower() in ("earliest", "-1", "@earliest", "start"):
            return {pid: first for pid, (first, _nxt) in parts.items()}
        try:
            spec = json.loads(text)
        except ValueError:
            spec = None
        if not isinstance(spec, dict):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"startingPosition {text!r}: use earliest, latest or JSON "
                                 '{"0": {"sequenceNumber": 5}, "1": "earliest"}', metadata={"field": "startingPosition"})
        out = {}
        for pid, (first, nxt) in parts.items():
            pos = spec.get(pid, "latest")
            if isinstance(pos, dict) and "sequenceNumber" in pos:
                out[pid] = min(max(int(pos["sequenceNumber"]), first), nxt)
            elif str(pos).lower() in ("earliest", "-1"):
                out[pid] = first
            else:
                out[pid] = nxt
        return out

    def getDefaultReadLimit(self) -> ReadLimit:  # noqa: N802 - pyspark >= 4.2
        from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows

        return ReadMaxRows(self.max_events) if self.max_events else ReadAllAvailable()

    def latestOffset(self, start: dict[str, Any] | None = None, limit: Any = None) -> dict[str, Any]:  # noqa: N802
        """The end of every partition, capped by ``maxEventsPerTrigger`` (shared by backlog)."""
        ends = {pid: nxt for pid, (_first, nxt) in self._partitions().items()}
        if start is None:  # pyspark < 4.2 passes neither; the previous end is the start
            start = self._last_end or ends
        cap = getattr(limit, "max_rows", None) if limit is not None else (self.max_events or None)
        ends = _capped(start, ends, cap)
        self._last_end = ends
        return ends

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> list[_Range]:
        return [_Range(pid, int(start.get(pid, 0)), int(stop)) for pid, stop in sorted(end.items())
                if int(stop) > int(start.get(pid, 0))]

    def commit(self, end: dict[str, Any]) -> None:
        """Spark's checkpoint holds the offsets; nothing to do on the hub."""

    # -- reading (workers) -----------------------------------------------------------
    def read(self, partition: InputPartition) -> Iterator[Any]:
        import pyarrow as pa

        if not isinstance(partition, _Range):  # Spark hands back what partitions() returned
            raise TypeError(f"not a headwater partition: {partition!r}")

        from headwater.v1 import event_pb2
        from headwater.v1 import ingestion_pb2 as ipb

        channel, stub = self.target.stub()
        with channel:
            want = partition.end - partition.start
            request = ipb.ReadEventsRequest(
                hub=f"hubs/{self.target.hub}", partition_id=partition.partition_id,
                consumer_group=self.target.consumer_group, max_batch_size=min(self.max_batch, want))
            request.event_position.CopyFrom(event_pb2.EventPosition(sequence_number=partition.start, inclusive=True))
            request.max_wait.FromSeconds(5)
            stream = stub.ReadEvents(request, timeout=300)
            try:
                for resp in stream:
                    events = [e for e in resp.events if e.sequence_number < partition.end]
                    if events:
                        yield _arrow_batch(events, pa)
                    if resp.events and resp.events[-1].sequence_number >= partition.end - 1:
                        return
                    if not resp.events and resp.last_enqueued_sequence_number >= 0 and \
                            resp.last_enqueued_sequence_number < partition.start:
                        return  # the range was deleted by retention meanwhile
            finally:
                stream.cancel()


def _capped(start: dict[str, Any], ends: dict[str, Any], cap: int | None) -> dict[str, Any]:
    """``ends`` limited to ``cap`` events in all, shared by each partition's backlog."""
    backlog = {pid: max(0, end - int(start.get(pid, end))) for pid, end in ends.items()}
    total = sum(backlog.values())
    if not cap or total <= cap:
        return {pid: max(end, int(start.get(pid, end))) for pid, end in ends.items()}
    share = {pid: cap * n // total for pid, n in backlog.items()}
    left = cap - sum(share.values())
    for pid in sorted(backlog, key=lambda p: backlog[p] - share[p], reverse=True)[:left]:
        share[pid] += 1
    return {pid: int(start.get(pid, ends[pid])) + share[pid] for pid in ends}


def _arrow_batch(events: Sequence[event_pb2.ReceivedEvent], pa: Any) -> Any:  # pyarrow is untyped
    """Spark rows for a list of ReceivedEvent, as one Arrow record batch."""
    return pa.RecordBatch.from_arrays([
        pa.array([e.event.body for e in events], pa.binary()),
        pa.array([e.partition_id for e in events], pa.string()),
        pa.array([str(e.offset) for e in events], pa.string()),
        pa.array([e.sequence_number for e in events], pa.int64()),
        pa.array([e.enqueued_time.ToNanoseconds() // 1000 for e in events], pa.timestamp("us", tz="UTC")),
        pa.nulls(len(events), pa.string()),
        pa.array([e.event.partition_key or None for e in events], pa.string()),
        pa.array([list(e.event.properties.items()) for e in events], pa.map_(pa.string(), pa.string())),
    ], names=["body", "partition", "offset", "sequenceNumber", "enqueuedTime", "publisher", "partitionKey",
              "properties"])


@dataclass
class _Sent(WriterCommitMessage):
    events: int


class HeadwaterStreamWriter(DataSourceStreamWriter):
    """Publishes each micro-batch's rows to the hub, in batches per partition key."""

    #: Rows per PublishEvents call (the service refuses batches over its max_message_bytes).
    batch_rows = 500
    batch_bytes = 768 * 1024

    def __init__(self, options: dict[str, str], schema: StructType | None) -> None:
        self.target = _Target.from_options(options)
        names = set(schema.fieldNames()) if schema is not None else {"body"}
        if "body" not in names:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "the headwater sink needs a `body` column (string or "
                                 f"binary); the stream has {sorted(names)}", metadata={"field": "body"})

    def write(self, iterator: Iterator[Row]) -> _Sent:
        from headwater.v1 import event_pb2
        from headwater.v1 import ingestion_pb2 as ipb

        channel, stub = self.target.stub()
        sent = 0
        pending: dict[str, list[Any]] = {}
        sizes: dict[str, int] = {}

        def flush(key: str) -> None:
            nonlocal sent
            events = pending.pop(key, [])
            sizes.pop(key, None)
            if events:
                _call(stub.PublishEvents, ipb.PublishEventsRequest(
                    hub=f"hubs/{self.target.hub}", partition_key=key, events=events))
                sent += len(events)

        with channel:
            for row in iterator:
                data = row.asDict()
                body = data.get("body")
                if body is None:
                    continue
                body = body.encode() if isinstance(body, str) else bytes(body)
                key = data.get("partitionKey") or ""
                props = {str(k): str(v) for k, v in (data.get("properties") or {}).items()}
                pending.setdefault(key, []).append(event_pb2.EventData(body=body, properties=props))
                sizes[key] = sizes.get(key, 0) + len(body) + 64
                if len(pending[key]) >= self.batch_rows or sizes[key] >= self.batch_bytes:
                    flush(key)
            for key in list(pending):
                flush(key)
        return _Sent(sent)

    def commit(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:  # noqa: N803 - Spark's name
        """Every task published its rows already."""

    def abort(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:  # noqa: N803
        """Rows a failed task sent stay published (at least once)."""
