"""HTTP ingest for clients without gRPC, in the shape of the Event Hubs REST send.

``POST /{hub}/messages`` (or ``/{hub}/partitions/{id}/messages``) with a SAS
token in the ``Authorization`` header (a policy with Send):

- a JSON object: one event whose body is the JSON as sent;
- a JSON array: one event per element, sent as one all-or-nothing batch; with
  ``Content-Type: application/vnd.microsoft.servicebus.json`` each element may
  be the Event Hubs batch shape ``{"Body": ..., "UserProperties": {...},
  "BrokerProperties": {"PartitionKey": ...}}``.

The partition key can also come from the ``BrokerProperties`` header
(``{"PartitionKey": "..."}``) or the ``partitionKey`` query parameter.
Answers 201 with the stored sequence numbers; errors carry the same reasons as
gRPC as JSON ``{"error": {"reason", "message", "metadata"}}`` with a status
(400, 401, 403, 404, 413, 429/503 with Retry-After).

The port is bound when the service starts; aiohttp is imported and the application built at
the first connection (:class:`headwater.listeners.DeferredListener`), which it then serves.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any

import orjson

from headwater.auth import RefusalLog, Right
from headwater.errors import HeadwaterError, Reason
from headwater.eventhub.wire import PublishEventsRequestPacked
from headwater.listeners import Closer, DeferredListener, serve_aiohttp
from headwater.server import authenticator, http_ssl_context
from headwater.services.ingestion import metrics as m
from headwater.v1 import event_pb2

if TYPE_CHECKING:  # imported at the first connection
    from aiohttp import web

    from headwater.auth import Authenticator

__all__ = ["HTTP_STATUS", "start_http_ingest"]

log = logging.getLogger("headwater.ingestion.http")

HTTP_STATUS = {
    Reason.INVALID_ARGUMENT: 400, Reason.MESSAGE_SIZE_EXCEEDED: 413, Reason.UNAUTHORIZED: 401,
    Reason.PERMISSION_DENIED: 403, Reason.RESOURCE_NOT_FOUND: 404, Reason.QUOTA_EXCEEDED: 429,
    Reason.SERVICE_BUSY: 503, Reason.SERVICE_TIMEOUT: 504, Reason.PRECONDITION_FAILED: 412,
}
_BATCH_TYPE = "application/vnd.microsoft.servicebus.json"


def _error(exc: HeadwaterError) -> web.Response:
    from aiohttp import web

    status = HTTP_STATUS.get(exc.reason, 500)
    headers = {}
    if exc.retry_after:
        headers["Retry-After"] = f"{max(exc.retry_after, 0.001):.3f}"
    m.HTTP_REQUESTS.labels(str(status)).inc()
    # The ErrorInfo metadata a gRPC call gets for the same error (HeadwaterError.to_status).
    metadata = {"service": "ingestion", **exc.metadata}
    body = {"error": {"reason": exc.reason.value, "message": exc.message, "metadata": metadata}}
    return web.Response(status=status, body=orjson.dumps(body), content_type="application/json", headers=headers)


def _event_bytes(item, batch_shape: bool, default_key: str) -> tuple[bytes, str]:
    if batch_shape and isinstance(item, dict) and "Body" in item:
        body = item["Body"]
        body = body.encode() if isinstance(body, str) else orjson.dumps(body)
        props = {str(k): str(v) for k, v in (item.get("UserProperties") or {}).items()}
        key = str((item.get("BrokerProperties") or {}).get("PartitionKey") or default_key)
        ev = event_pb2.EventData(body=body, properties=props, content_type="application/json", partition_key=key)
        return ev.SerializeToString(), key
    ev = event_pb2.EventData(body=orjson.dumps(item), content_type="application/json", partition_key=default_key)
    return ev.SerializeToString(), default_key


async def start_http_ingest(servicer, config, port: int) -> tuple[DeferredListener, int]:
    """Bind ``host:port`` (OSError as aiohttp's TCPSite raises it; TLS set up now) and serve HTTP
    ingest from the first connection on; returns (the listener, the bound port)."""
    ssl_context = http_ssl_context(config)
    auth = authenticator(config)

    async def open_app(sockets: list[socket.socket]) -> Closer:
        return await serve_aiohttp(lambda: _app(servicer, config, auth), sockets, ssl_context, access_log=None)

    listener = await DeferredListener.bind("HTTP ingest", config.host, port, open_app)
    return listener, listener.port


def _app(servicer: Any, config: Any, auth: Authenticator | None) -> web.Application:
    """The aiohttp application: POST /{hub}/messages and /{hub}/partitions/{id}/messages."""
    from aiohttp import web

    refusals = RefusalLog(log, config.auth_refusal_log_interval_s)

    async def send(request: web.Request) -> web.Response:
        hub = request.match_info["hub"]
        try:
            if auth is not None:  # the same checks as gRPC, before the body is read
                try:
                    caller = auth.authenticate(request.headers.get("Authorization", ""))
                    caller.require(Right.SEND)
                    caller.require_entity(hub)
                except HeadwaterError as exc:
                    refusals.note(request.remote or "unknown", "http send", getattr(exc, "detail", exc.message))
                    raise
            raw = await request.read()
            if len(raw) > config.max_message_bytes * 2:
                raise HeadwaterError(Reason.MESSAGE_SIZE_EXCEEDED,
                                     f"request body of {len(raw)} bytes is over the limit",
                                     metadata={"size": len(raw), "limit": config.max_message_bytes})
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"the body is not JSON: {exc}",
                                     metadata={"field": "body"}) from None
            key = request.query.get("partitionKey", "")
            broker = request.headers.get("BrokerProperties")
            if broker:
                try:
                    key = str(orjson.loads(broker).get("PartitionKey") or key)
                except (orjson.JSONDecodeError, AttributeError):
                    raise HeadwaterError(Reason.INVALID_ARGUMENT, "BrokerProperties header is not a JSON object",
                                         metadata={"field": "BrokerProperties"}) from None
            batch_shape = request.content_type == _BATCH_TYPE
            items = data if isinstance(data, list) else [data]
            if not items:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "the JSON array is empty", metadata={"field": "body"})
            encoded = [_event_bytes(item, batch_shape, key) for item in items]
            keys = {k for _, k in encoded}
            pid = request.match_info.get("partition", "")
            req = PublishEventsRequestPacked(hub=hub, events=[e for e, _ in encoded], partition_id=pid,
                                             partition_key="" if pid else (keys.pop() if len(keys) == 1 else ""))
            if len(keys) > 1 and not pid:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "a batch must share one partition key",
                                     metadata={"field": "BrokerProperties.PartitionKey"})
            resp = await servicer._publish(req)
        except HeadwaterError as exc:
            return _error(exc)
        m.HTTP_REQUESTS.labels("201").inc()
        return web.Response(status=201, content_type="application/json", body=orjson.dumps({
            "partitionId": resp.partition_id, "firstSequenceNumber": resp.first_sequence_number,
            "lastSequenceNumber": resp.last_sequence_number,
            "enqueuedTime": resp.enqueued_time.ToJsonString()}))

    app = web.Application(client_max_size=config.max_message_bytes * 2 + 4096)
    app.router.add_post("/{hub}/messages", send)
    app.router.add_post("/{hub}/partitions/{partition}/messages", send)
    return app
