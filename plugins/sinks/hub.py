"""``hub``: publish rows as events to a hub of the ingestion service (an Event Hubs output).

One row is one event. Settings:

- ``hub`` (required): the hub to publish to;
- ``connection_string``: another namespace (or a hub-scoped key); by default the sink
  service's own namespace (``ingestion_address`` of its configuration, signed with the
  service's key);
- ``format``: ``json`` (default; one JSON object per event), ``csv`` (one line per
  event, no header, columns in the row's order) or ``avro`` (Avro binary with the
  registry's schema id in the content type ``avro/binary+<id>``, as Azure's
  AvroEncoder writes it; the output schema is registered in ``schema_group``, or looked
  up when it is already there);
- ``partition_key_column``: the event's partition key (rows with one key stay in one
  partition, in order); ``partition_id_column``: the partition itself; with neither, a
  write goes to one partition chosen from its checkpoint (all rows of a batch together);
- ``property_columns``: columns also sent as application properties of each event
  (their values as text), as Stream Analytics' Event Hubs output does;
- ``max_batch_bytes``: bytes per publish (default 900 KiB, under the hub's 1 MiB batch).

Exactly once: the sink publishes as an idempotent producer whose id is derived from the
sink and the writer (the job), with sequence numbers kept per partition in a state file
written after every write. A write replayed after a crash (same checkpoint, same rows)
either is older than the last write the state file records (skipped) or is re-sent with
the sequence numbers it had, which the hub recognises as a retry and stores once.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from headwater.errors import HeadwaterError, Reason
from headwater.routing import partition_for_key
from headwater.sinks import (
    Checkpoint,
    OutputMode,
    Sink,
    SinkConfigError,
    SinkKind,
    SinkSpec,
    SinkTransientError,
    check_keys,
    require,
)
from headwater.storage import write_atomic

__all__ = ["HubKind", "HubSink"]

_SETTINGS = ("hub", "connection_string", "format", "partition_key_column", "partition_id_column",
             "property_columns", "schema_group", "registry_address", "max_batch_bytes")
_FORMATS = ("json", "csv", "avro")
_STATE = "hub-state.json"


def _json_default(v: Any) -> Any:
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=UTC)
        return v.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, datetime):
        return _json_default(v)
    if isinstance(v, (dict, list)):
        return orjson.dumps(v, default=_json_default).decode()
    return str(v)


class _Encoder:
    """Rows to event bodies in one format."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.content_type = {"json": "application/json", "csv": "text/csv"}.get(fmt, "")
        self.schema_id = ""
        self._avro_schema: Any = None

    def bodies(self, rows: list[dict]) -> list[bytes]:
        if self.fmt == "json":
            return [orjson.dumps(r, default=_json_default) for r in rows]
        out: list[bytes] = []
        if self.fmt == "csv":
            for r in rows:
                text = io.StringIO()
                csv.writer(text, lineterminator="").writerow([_text(v) for v in r.values()])
                out.append(text.getvalue().encode())
            return out
        import fastavro

        for r in rows:
            buf = io.BytesIO()
            fastavro.schemaless_writer(buf, self._avro_schema, {k: _avro_value(v) for k, v in r.items()})
            out.append(buf.getvalue())
        return out


def _avro_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v if v.tzinfo else v.replace(tzinfo=UTC)
    if isinstance(v, (dict, list)):
        return orjson.dumps(v, default=_json_default).decode()
    return v


_AVRO_TYPES = [
    (pa.types.is_boolean, "boolean"),
    (pa.types.is_integer, "long"),
    (pa.types.is_floating, "double"),
    (pa.types.is_timestamp, {"type": "long", "logicalType": "timestamp-micros"}),
    (lambda t: pa.types.is_binary(t) or pa.types.is_large_binary(t), "bytes"),
]


def avro_schema_for(schema: pa.Schema, name: str) -> dict:
    """The Avro record schema of a table's rows: every field nullable; records and arrays as JSON text."""
    fields = []
    for f in schema:
        avro: Any = "string"
        for test, t in _AVRO_TYPES:
            if test(f.type):
                avro = t
                break
        fields.append({"name": f.name, "type": ["null", avro], "default": None})
    safe = "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "row"
    return {"type": "record", "name": safe, "namespace": "headwater.output", "fields": fields}


class HubSink(Sink):
    exactly_once = True

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        cfg = spec.config
        self.hub = cfg["hub"]
        self.conn_str = cfg.get("connection_string") or spec.namespace
        self.encoder = _Encoder(cfg.get("format", "json"))
        self.key_col = cfg.get("partition_key_column") or ""
        self.pid_col = cfg.get("partition_id_column") or ""
        self.props = list(cfg.get("property_columns") or [])
        self.max_bytes = int(cfg.get("max_batch_bytes", 900 * 1024))
        self._channel: Any = None
        self._stub: Any = None
        self.partitions: list[str] = []
        self._state_path = Path(spec.data_dir) / _STATE if spec.data_dir else None
        self._state: dict[str, Any] = {"epoch": uuid.uuid4().hex[:12], "writers": {}}

    # -- state ------------------------------------------------------------------------
    def _load_state(self) -> None:
        if self._state_path and self._state_path.exists():
            self._state = json.loads(self._state_path.read_text())

    def _save_state(self) -> None:
        if not self._state_path:
            return
        write_atomic(self._state_path, json.dumps(self._state).encode())

    def last_checkpoint(self, writer: str) -> Checkpoint | None:
        w = self._state["writers"].get(writer)
        return Checkpoint(w["last"][0], w["last"][1], writer) if w and w.get("last") else None

    # -- connection ----------------------------------------------------------------------
    async def open(self) -> None:
        from headwater.channel import aio_channel
        from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc

        if not self.conn_str:
            raise SinkConfigError("hub sink: no connection_string and the sink service knows no namespace "
                                  "(set ingestion_address in its configuration)", setting="connection_string")
        self._load_state()
        self._channel = aio_channel(self.conn_str)
        self._stub = ingestion_pb2_grpc.IngestionServiceStub(self._channel)
        resp = await self._rpc(self._stub.GetHub, ingestion_pb2.GetHubRequest(name=f"hubs/{self.hub}"))
        self.partitions = list(resp.hub.partition_ids)
        # Avro needs the rows' schema: it is registered (or looked up) at the first write.

    async def _register_avro(self, schema: pa.Schema) -> None:
        import fastavro

        from headwater.schemaregistry.aio import SchemaRegistryClient

        avro = avro_schema_for(schema, self.hub)
        group = self.spec.config.get("schema_group") or "headwater"
        registry = self.spec.config.get("registry_address") or self.spec.registry
        if not registry:
            raise SinkConfigError("hub sink: format avro needs the schema registry (registry_address)",
                                  setting="registry_address")
        client = SchemaRegistryClient.from_connection_string(registry)
        try:
            try:
                props = await client.register_schema(group, avro["name"], json.dumps(avro), "Avro")
            except HeadwaterError as exc:
                if exc.reason != Reason.RESOURCE_NOT_FOUND:
                    raise
                await client.create_schema_group(group, "Avro")  # as the portal would, once
                props = await client.register_schema(group, avro["name"], json.dumps(avro), "Avro")
        finally:
            await client.close()
        self.encoder._avro_schema = fastavro.parse_schema(avro)
        self.encoder.schema_id = props.id
        self.encoder.content_type = f"avro/binary+{props.id}"

    async def _rpc(self, fn, request) -> Any:
        import grpc

        try:
            return await fn(request, timeout=30)
        except grpc.aio.AioRpcError as exc:
            err = await HeadwaterError.from_aio_call(exc)
            if err.is_transient:
                raise SinkTransientError(f"hub {self.hub}: {err}") from None
            raise err from None

    # -- writes --------------------------------------------------------------------------
    def _route(self, rows: list[dict], checkpoint: Checkpoint) -> dict[str, list[int]]:
        n = len(self.partitions)
        groups: dict[str, list[int]] = {}
        if self.pid_col:
            for i, r in enumerate(rows):
                pid = _text(r.get(self.pid_col))
                if pid not in self.partitions:
                    raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                         f"hub sink {self.name}: row {i}: {self.pid_col}={pid!r} is not a partition "
                                         f"of hub {self.hub} (partitions: {', '.join(self.partitions)})")
                groups.setdefault(pid, []).append(i)
        elif self.key_col:
            for i, r in enumerate(rows):
                key = _text(r.get(self.key_col))
                groups.setdefault(self.partitions[partition_for_key(key, n)], []).append(i)
        else:
            # Deterministic, so a replayed write goes where it went the first time.
            pid = self.partitions[(checkpoint.sequence if checkpoint.tracked else 0) % n]
            groups[pid] = list(range(len(rows)))
        return groups

    async def write_batch(self, batch: pa.Table, checkpoint: Checkpoint) -> None:
        from headwater.v1 import event_pb2, ingestion_pb2

        if batch.num_rows == 0:
            return
        writer = checkpoint.writer or "-"
        wstate = self._state["writers"].setdefault(writer, {"last": None, "seq": {}})
        if checkpoint.tracked and wstate["last"] is not None and not checkpoint.after(
                Checkpoint(wstate["last"][0], wstate["last"][1], writer)):
            return  # applied before the crash that replays it
        if self.encoder.fmt == "avro" and self.encoder._avro_schema is None:
            await self._register_avro(batch.schema)
        rows = batch.to_pylist()
        bodies = self.encoder.bodies(rows)
        producer = f"sink:{self.name}:{writer}:{self._state['epoch']}"
        # Sequences advance in a copy, kept only when the whole write succeeded: a write
        # retried after a partial failure re-sends the same (partition, sequence, count)
        # chunks, and the hub recognises the ones it already stored.
        next_seq = dict(wstate["seq"])
        for pid, idx in self._route(rows, checkpoint).items():
            seq = int(next_seq.get(pid, 0))
            chunk: list[event_pb2.EventData] = []
            size = 0
            chunks: list[list[event_pb2.EventData]] = []
            for i in idx:
                props = {c: _text(rows[i].get(c)) for c in self.props if rows[i].get(c) is not None}
                ev = event_pb2.EventData(body=bodies[i], properties=props, content_type=self.encoder.content_type,
                                         partition_key=_text(rows[i].get(self.key_col)) if self.key_col else "")
                esize = ev.ByteSize() + 16
                if chunk and size + esize > self.max_bytes:
                    chunks.append(chunk)
                    chunk, size = [], 0
                chunk.append(ev)
                size += esize
            if chunk:
                chunks.append(chunk)
            for events in chunks:
                req = ingestion_pb2.PublishEventsRequest(hub=self.hub, events=events, partition_id=pid,
                                                         producer_id=producer, producer_sequence=seq,
                                                         request_id=uuid.uuid4().hex)
                await self._rpc(self._stub.PublishEvents, req)
                seq += len(events)
                next_seq[pid] = seq
        wstate["seq"] = next_seq
        if checkpoint.tracked:
            wstate["last"] = [checkpoint.checkpoint_id, checkpoint.batch_id]
        self._save_state()

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = self._stub = None


class HubKind(SinkKind):
    name = "hub"
    description = "publishes rows as events to a hub (JSON, CSV or Avro; exactly once)"
    exactly_once = True
    output_modes = (OutputMode.APPEND,)

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        check_keys(config, _SETTINGS, "hub")
        out = dict(config)
        require(config, "hub", "hub")
        out["hub"] = str(config["hub"]).removeprefix("hubs/")  # its id or its resource name
        fmt = str(config.get("format") or "json").lower()
        if fmt not in _FORMATS:
            raise SinkConfigError(f"hub sink: format must be one of {', '.join(_FORMATS)}, got {fmt!r}",
                                  setting="format")
        out["format"] = fmt
        if config.get("partition_key_column") and config.get("partition_id_column"):
            raise SinkConfigError("hub sink: set partition_key_column or partition_id_column, not both",
                                  setting="partition_id_column")
        props = config.get("property_columns") or []
        if isinstance(props, str):
            props = [p.strip() for p in props.split(",") if p.strip()]
        if not isinstance(props, list) or not all(isinstance(p, str) for p in props):
            raise SinkConfigError("hub sink: property_columns must be a list of column names or 'a,b'",
                                  setting="property_columns")
        out["property_columns"] = props
        if "max_batch_bytes" in config:
            size = config["max_batch_bytes"]
            if not isinstance(size, (int, float)) or not 1024 <= int(size) <= 1024 * 1024:
                raise SinkConfigError("hub sink: max_batch_bytes must be a number from 1024 to 1048576",
                                      setting="max_batch_bytes")
            out["max_batch_bytes"] = int(size)
        if "connection_string" in config and config["connection_string"]:
            from headwater.auth import ConnectionString

            try:
                ConnectionString.parse(str(config["connection_string"]))
            except (ValueError, HeadwaterError) as exc:
                raise SinkConfigError(f"hub sink: connection_string is not a connection string: {exc}",
                                      setting="connection_string") from None
        return out

    def create(self, spec: SinkSpec) -> Sink:
        return HubSink(spec)
