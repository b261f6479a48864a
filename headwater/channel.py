"""gRPC channels for clients: address, TLS and a SAS token on every call.

Used by the SDK and by any service that calls another. The token is signed
from the connection string's key and renewed before it expires.
"""

from __future__ import annotations

import socket
import time
import urllib.parse
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import grpc

from headwater.auth import DEFAULT_TOKEN_TTL_S, ConnectionString

if TYPE_CHECKING:  # what a blocking continuation returns (types-grpcio names them; grpc has no such classes)
    from grpc import _CallFuture, _CallIterator

__all__ = ["aio_channel", "sync_channel", "TokenSource"]

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.keepalive_time_ms", 30_000),
    # Reconnect quickly after a service restart: gRPC's default backoff (1 s
    # growing to 120 s) can outlast the retry policy's own budget.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2_000),
    # gRPC core reads this as MIN_CONNECT_TIMEOUT too: how long one connection attempt may take
    # (TCP, TLS, the server's HTTP/2 SETTINGS). At 100 ms, a peer slower than that to answer (a
    # loaded machine, a TLS handshake, a distant client) could never be reached. A refused
    # connection still fails at once and is retried after the backoff above.
    ("grpc.min_reconnect_backoff_ms", 20_000),
]
# Spread calls over every address a name resolves to (several ingestion instances
# behind one DNS name, or an endpoint listing host:port,host:port). Loopback
# addresses keep gRPC's default (pick_first): one local service.
_ROUND_ROBIN = [("grpc.lb_policy_name", "round_robin")]
_LOCAL = ("localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0")


def _options(target: str) -> list[Any]:
    if target.startswith("ipv4:") or target.rpartition(":")[0] not in _LOCAL:
        return _OPTIONS + _ROUND_ROBIN
    return _OPTIONS


def _target(conn: ConnectionString) -> str:
    """The gRPC target: ``host:port``, or ``ipv4:a:p,b:q`` for an endpoint naming several instances."""
    netloc = urllib.parse.urlparse(conn.endpoint).netloc
    if "," in netloc:
        return multi_target(netloc)
    return conn.address


def multi_target(addresses: str) -> str:
    """``a:p,b:q`` -> the gRPC target ``ipv4:<ip of a>:p,<ip of b>:q`` (names resolved once)."""
    out = []
    for hostport in addresses.split(","):
        host, _, port = hostport.strip().rpartition(":")
        out.append(f"{socket.gethostbyname(host.strip('[]'))}:{port}")
    return "ipv4:" + ",".join(out)


class TokenSource:
    """Signs and caches the SAS token for one connection string and entity."""

    def __init__(self, conn: ConnectionString, entity: str = "", ttl_s: int = DEFAULT_TOKEN_TTL_S) -> None:
        self.conn, self.entity, self.ttl_s = conn, entity, ttl_s
        self._token: str | None = None
        self._renew_at = 0.0

    def metadata(self) -> tuple[tuple[str, str], ...]:
        now = time.time()
        if self._token is None or now >= self._renew_at:
            self._token = self.conn.token(self.entity, self.ttl_s)
            self._renew_at = now + self.ttl_s * 0.8
        return (("authorization", self._token),) if self._token else ()



class _AioAuthBase:
    def __init__(self, tokens: TokenSource) -> None:
        self.tokens = tokens

    def _details(self, d: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        md = grpc.aio.Metadata(*(tuple(d.metadata or ()) + self.tokens.metadata()))
        return grpc.aio.ClientCallDetails(d.method, d.timeout, md, d.credentials, d.wait_for_ready)


# grpc.aio files an interceptor under the first call kind it implements only
# (an if/elif chain), so each kind needs its own object.
class _AioAuthUU(_AioAuthBase, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, _Req], Awaitable[grpc.aio.UnaryUnaryCall[_Req, _Resp]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: _Req,
    ) -> _Resp | grpc.aio.UnaryUnaryCall[_Req, _Resp]:
        return await continuation(self._details(client_call_details), request)


class _AioAuthUS(_AioAuthBase, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, _Req], Awaitable[grpc.aio.UnaryStreamCall[_Req, _Resp]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: _Req,
    ) -> AsyncIterator[_Resp] | grpc.aio.UnaryStreamCall[_Req, _Resp]:
        return await continuation(self._details(client_call_details), request)


class _AioAuthSU(_AioAuthBase, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, AsyncIterable[_Req] | Iterable[_Req]],
                               Awaitable[grpc.aio.StreamUnaryCall[_Req, _Resp]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[_Req] | Iterable[_Req],
    ) -> _Resp | grpc.aio.StreamUnaryCall[_Req, _Resp]:
        return await continuation(self._details(client_call_details), request_iterator)


class _AioAuthSS(_AioAuthBase, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, AsyncIterable[_Req] | Iterable[_Req]],
                               Awaitable[grpc.aio.StreamStreamCall[_Req, _Resp]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request_iterator: AsyncIterable[_Req] | Iterable[_Req],
    ) -> AsyncIterator[_Resp] | grpc.aio.StreamStreamCall[_Req, _Resp]:
        return await continuation(self._details(client_call_details), request_iterator)


def _aio_auth(tokens: TokenSource) -> list[grpc.aio.ClientInterceptor]:
    return [_AioAuthUU(tokens), _AioAuthUS(tokens), _AioAuthSU(tokens), _AioAuthSS(tokens)]


class _CallDetails(grpc.ClientCallDetails):
    """A blocking call's details with the token added to its metadata (gRPC reads the attributes)."""

    def __init__(self, d: grpc.ClientCallDetails, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.method, self.timeout, self.metadata, self.credentials = d.method, d.timeout, metadata, d.credentials
        self.wait_for_ready = getattr(d, "wait_for_ready", None)
        self.compression = getattr(d, "compression", None)


class _SyncAuth(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    def __init__(self, tokens: TokenSource) -> None:
        self.tokens = tokens

    def _details(self, d: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(d, tuple(d.metadata or ()) + self.tokens.metadata())

    def intercept_unary_unary(self, continuation: Callable[[grpc.ClientCallDetails, _Req], _CallFuture[_Resp]],
                              client_call_details: grpc.ClientCallDetails, request: _Req) -> _CallFuture[_Resp]:
        return continuation(self._details(client_call_details), request)

    def intercept_unary_stream(self, continuation: Callable[[grpc.ClientCallDetails, _Req], _CallIterator[_Resp]],
                               client_call_details: grpc.ClientCallDetails, request: _Req) -> _CallIterator[_Resp]:
        return continuation(self._details(client_call_details), request)

    def intercept_stream_unary(self, continuation: Callable[[grpc.ClientCallDetails, Iterator[_Req]], _CallFuture[_Resp]],
                               client_call_details: grpc.ClientCallDetails,
                               request_iterator: Iterator[_Req]) -> _CallFuture[_Resp]:
        return continuation(self._details(client_call_details), request_iterator)

    def intercept_stream_stream(self, continuation: Callable[[grpc.ClientCallDetails, Iterator[_Req]], _CallIterator[_Resp]],
                                client_call_details: grpc.ClientCallDetails,
                                request_iterator: Iterator[_Req]) -> _CallIterator[_Resp]:
        return continuation(self._details(client_call_details), request_iterator)


def _creds(conn: ConnectionString, root_certificates: bytes | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(root_certificates=root_certificates)


def aio_channel(conn: ConnectionString | str, entity: str = "", *,
                root_certificates: bytes | None = None, address: str = "") -> grpc.aio.Channel:
    """An asyncio channel to ``conn``'s endpoint (or ``address``, another service of its
    namespace, see :mod:`headwater.namespace`) that signs every call for ``conn``'s namespace."""
    if isinstance(conn, str):
        conn = ConnectionString.parse(conn)
    interceptors = _aio_auth(TokenSource(conn, entity))
    target = address or _target(conn)
    if conn.use_tls or root_certificates:
        return grpc.aio.secure_channel(target, _creds(conn, root_certificates),
                                       options=_options(target), interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=_options(target), interceptors=interceptors)


def sync_channel(conn: ConnectionString | str, entity: str = "", *,
                 root_certificates: bytes | None = None, address: str = "") -> grpc.Channel:
    """A blocking channel to ``conn``'s endpoint (or ``address``) that signs every call."""
    if isinstance(conn, str):
        conn = ConnectionString.parse(conn)
    target = address or _target(conn)
    if conn.use_tls or root_certificates:
        channel = grpc.secure_channel(target, _creds(conn, root_certificates), options=_options(target))
    else:
        channel = grpc.insecure_channel(target, options=_options(target))
    return grpc.intercept_channel(channel, _SyncAuth(TokenSource(conn, entity)))
