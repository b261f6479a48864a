"""``headwater.v1.SinkService``: protobuf <-> :mod:`headwater.services.sink.outputs`."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import pyarrow as pa
from google.protobuf import timestamp_pb2

from headwater.errors import HeadwaterError, Reason
from headwater.pagination import decode_page_token, encode_page_token
from headwater.secrets import SecretStore, redact_config
from headwater.services.sink import table_filter
from headwater.services.sink.outputs import Output, Outputs, Update
from headwater.sink_settings import from_proto, set_settings
from headwater.sinks import (
    Checkpoint,
    ErrorPolicy,
    OutputMode,
    batch_from_proto,
    batch_to_proto,
)
from headwater.v1 import event_pb2, secrets_pb2, secrets_pb2_grpc, sink_pb2, sink_pb2_grpc

__all__ = ["SecretServicer", "SinkServicer", "query_table", "to_proto"]

_MODES = {sink_pb2.OUTPUT_MODE_UNSPECIFIED: OutputMode.APPEND, sink_pb2.OUTPUT_MODE_APPEND: OutputMode.APPEND,
          sink_pb2.OUTPUT_MODE_UPDATE: OutputMode.UPDATE, sink_pb2.OUTPUT_MODE_COMPLETE: OutputMode.COMPLETE}
_MODES_PB = {OutputMode.APPEND: sink_pb2.OUTPUT_MODE_APPEND, OutputMode.UPDATE: sink_pb2.OUTPUT_MODE_UPDATE,
             OutputMode.COMPLETE: sink_pb2.OUTPUT_MODE_COMPLETE}
_POLICIES = {sink_pb2.ERROR_POLICY_UNSPECIFIED: ErrorPolicy.RETRY, sink_pb2.ERROR_POLICY_RETRY: ErrorPolicy.RETRY,
             sink_pb2.ERROR_POLICY_DROP: ErrorPolicy.DROP}
_POLICIES_PB = {ErrorPolicy.RETRY: sink_pb2.ERROR_POLICY_RETRY, ErrorPolicy.DROP: sink_pb2.ERROR_POLICY_DROP}


def _ts(dt: Any) -> timestamp_pb2.Timestamp | None:
    if dt is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt)
    return ts


def _guarantee(exactly_once: bool) -> sink_pb2.DeliveryGuarantee:
    return (sink_pb2.DELIVERY_GUARANTEE_EXACTLY_ONCE if exactly_once
            else sink_pb2.DELIVERY_GUARANTEE_AT_LEAST_ONCE)


def to_proto(out: Output) -> sink_pb2.Sink:
    s = out.stats
    sink = sink_pb2.Sink(
        name=out.name, output_mode=_MODES_PB[out.spec.output_mode],
        key_columns=list(out.spec.key_columns), error_policy=_POLICIES_PB[out.error_policy],
        create_time=_ts(out.create_time), delivery_guarantee=_guarantee(out.kind.exactly_once),
        description=out.description,
        stats=sink_pb2.SinkStats(rows_written=s.rows_written, bytes_written=s.bytes_written,
                                 rows_dropped=s.rows_dropped, retries=s.retries,
                                 duplicate_writes=s.duplicate_writes, last_write_time=_ts(s.last_write_time),
                                 last_error=s.last_error))
    return set_settings(sink, out.kind.name, redact_config(out.spec.config), response=True)


def _page(token: str, what: str) -> dict:
    if not token:
        return {}
    data = decode_page_token(token, f"sink.{what}")
    if not isinstance(data, dict):
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"page_token is not a token this service issued for {what}",
                             metadata={"field": "page_token"})
    return data


def _token(data: dict, what: str) -> str:
    return encode_page_token(f"sink.{what}", data)


def query_table(table: pa.Table, filter_: str = "", order_by: str = "") -> pa.Table:
    """Rows of ``table`` matching ``filter_`` in ``order_by``: the grammar of
    :mod:`headwater.services.sink.table_filter`, never a SQL engine."""
    return table_filter.apply(table, filter_, order_by)


class SinkServicer(sink_pb2_grpc.SinkServiceServicer):
    def __init__(self, outputs: Outputs, plugin_owners: dict[str, str] | None = None) -> None:
        self.outputs = outputs
        self.owners = plugin_owners or {}

    async def CreateSink(self, request: sink_pb2.CreateSinkRequest, context: Any) -> sink_pb2.CreateSinkResponse:
        sid = request.sink_id or request.sink.name
        if not sid:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "sink_id is required", metadata={"field": "sink_id"})
        kind, config = from_proto(request.sink)
        out = await self.outputs.create(
            sid, kind, config, _MODES[request.sink.output_mode], list(request.sink.key_columns),
            _POLICIES[request.sink.error_policy], request.sink.description, request.request_id)
        return sink_pb2.CreateSinkResponse(sink=to_proto(out))

    async def GetSink(self, request: sink_pb2.GetSinkRequest, context: Any) -> sink_pb2.GetSinkResponse:
        return sink_pb2.GetSinkResponse(sink=to_proto(self.outputs.get(request.name)))

    async def ListSinks(self, request: sink_pb2.ListSinksRequest, context: Any) -> sink_pb2.ListSinksResponse:
        size = request.page_size or 100
        if size < 0 or size > 1000:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "page_size must be between 0 and 1000",
                                 metadata={"field": "page_size"})
        after = _page(request.page_token, "ListSinks").get("after", "")
        items = [o for o in self.outputs.list(request.kind) if o.id > after]
        page = items[:size]
        nxt = _token({"after": page[-1].id}, "ListSinks") if len(items) > size else ""
        return sink_pb2.ListSinksResponse(sinks=[to_proto(o) for o in page], next_page_token=nxt)

    async def DeleteSink(self, request: sink_pb2.DeleteSinkRequest, context: Any) -> sink_pb2.DeleteSinkResponse:
        await self.outputs.delete(request.name, request.allow_missing)
        return sink_pb2.DeleteSinkResponse()

    async def ListSinkKinds(self, request: sink_pb2.ListSinkKindsRequest,
                            context: Any) -> sink_pb2.ListSinkKindsResponse:
        kinds = sorted(self.outputs.kinds.unique(), key=lambda k: k.name)
        start = int(_page(request.page_token, "ListSinkKinds").get("offset", 0))
        size = request.page_size or len(kinds)
        page = kinds[start:start + size]
        nxt = _token({"offset": start + size}, "ListSinkKinds") if start + size < len(kinds) else ""
        return sink_pb2.ListSinkKindsResponse(
            kinds=[sink_pb2.SinkKind(name=k.name, description=k.description, plugin=self.owners.get(k.name, ""),
                                     delivery_guarantee=_guarantee(k.exactly_once)) for k in page],
            next_page_token=nxt)

    async def WriteRows(self, request: sink_pb2.WriteRowsRequest, context: Any) -> sink_pb2.WriteRowsResponse:
        if request.checkpoint_id < 0 or request.batch_id < 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "checkpoint_id and batch_id must be >= 0",
                                 metadata={"field": "checkpoint_id"})
        if request.checkpoint_id == 0 and request.batch_id:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "batch_id needs a checkpoint_id",
                                 metadata={"field": "batch_id"})
        self.outputs.get(request.sink)
        table = batch_from_proto(request.batch)
        res = await self.outputs.write(request.sink, table,
                                       Checkpoint(request.checkpoint_id, request.batch_id, request.writer),
                                       commit=request.commit)
        return sink_pb2.WriteRowsResponse(rows_written=res.rows_written, rows_dropped=res.rows_dropped,
                                          duplicate=res.duplicate, drop_reason=res.drop_reason,
                                          dropped_rows=sorted(res.dropped_rows))

    async def ReadTable(self, request: sink_pb2.ReadTableRequest, context: Any) -> sink_pb2.ReadTableResponse:
        if request.limit < 0 or request.page_size < 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "limit and page_size must be >= 0",
                                 metadata={"field": "limit"})
        query = hashlib.sha1(f"{request.filter}\0{request.order_by}\0{request.limit}".encode()).hexdigest()[:12]
        page = _page(request.page_token, "ReadTable")
        if page and page.get("q") != query:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 "page_token belongs to a different filter, order_by or limit",
                                 metadata={"field": "page_token"})
        offset = int(page.get("offset", 0))
        table = query_table(await self.outputs.read(request.name), request.filter, request.order_by)
        total = table.num_rows
        end = min(total, request.limit) if request.limit else total
        size = request.page_size or 10_000
        chunk = table.slice(offset, max(0, min(size, end - offset)))
        nxt = _token({"q": query, "offset": offset + size}, "ReadTable") if offset + size < end else ""
        return sink_pb2.ReadTableResponse(batch=batch_to_proto(chunk, request.format), next_page_token=nxt,
                                          total_rows=total)

    async def SubscribeRows(self, request: sink_pb2.SubscribeRowsRequest,
                            context: Any) -> AsyncIterator[sink_pb2.SubscribeRowsResponse]:
        out = self.outputs.get(request.name)
        q = self.outputs.subscribe(out)
        try:
            if request.include_snapshot:
                from datetime import datetime

                table = await self.outputs.read(request.name)
                yield self._update(Update(table, out.spec.output_mode, Checkpoint(), True,
                                          datetime.now(UTC), snapshot=True), request.format)
            while True:
                item = await q.get()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise HeadwaterError(Reason.CONSUMER_DISCONNECTED,
                                         f"subscription to {out.name} closed: {item}")
                yield self._update(item, request.format)
        finally:
            self.outputs.unsubscribe(out, q)

    @staticmethod
    def _update(u: Update, fmt: event_pb2.RecordBatchFormat) -> sink_pb2.SubscribeRowsResponse:
        return sink_pb2.SubscribeRowsResponse(
            batch=batch_to_proto(u.table, fmt), output_mode=_MODES_PB[u.mode], snapshot=u.snapshot,
            checkpoint_id=u.checkpoint.checkpoint_id, batch_id=u.checkpoint.batch_id, write_time=_ts(u.time),
            replace=u.replace, key_columns=list(u.keys))


class SecretServicer(secrets_pb2_grpc.SecretServiceServicer):
    """``headwater.v1.SecretService`` over the store shared with the processing service (Manage only)."""

    def __init__(self, store: SecretStore) -> None:
        self.store = store

    async def SetSecret(self, request: secrets_pb2.SetSecretRequest, context: Any) -> secrets_pb2.SetSecretResponse:
        return secrets_pb2.SetSecretResponse(name=f"secrets/{self.store.set(request.name, request.value)}")

    async def ListSecrets(self, request: secrets_pb2.ListSecretsRequest,
                          context: Any) -> secrets_pb2.ListSecretsResponse:
        size = request.page_size or 100
        if size < 0 or size > 1000:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "page_size must be between 0 and 1000",
                                 metadata={"field": "page_size"})
        after = _page(request.page_token, "ListSecrets").get("after", "")
        names = [n for n in self.store.list() if n > after]
        page = names[:size]
        nxt = _token({"after": page[-1]}, "ListSecrets") if len(names) > size else ""
        return secrets_pb2.ListSecretsResponse(names=[f"secrets/{n}" for n in page], next_page_token=nxt)

    async def DeleteSecret(self, request: secrets_pb2.DeleteSecretRequest,
                           context: Any) -> secrets_pb2.DeleteSecretResponse:
        self.store.delete(request.name, request.allow_missing)
        return secrets_pb2.DeleteSecretResponse()
