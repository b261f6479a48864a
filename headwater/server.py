"""The base every Headwater service runs on.

A service subclasses :class:`Service` and says what it serves; :func:`run`
(the console entry point) and :func:`serve_in_process` (tests) build the
``grpc.aio`` server around it with:

- the standard gRPC health service and server reflection;
- an interceptor that checks the shared access signature of every RPC from its
  metadata, before the request is decoded (docs/security.md): the namespace, the
  right the method needs (:attr:`Service.rights`) and the token's scope
  (:attr:`Service.entity_methods`); refusals are logged once per client per
  interval. It maps exceptions to statuses: a
  :class:`~headwater.errors.HeadwaterError` becomes its code plus a
  ``google.rpc.ErrorInfo`` detail, an undecodable request INVALID_ARGUMENT,
  anything else ``INTERNAL`` with an id that is logged with the traceback (never sent);
- gRPC's receive limit (:meth:`Service.max_receive_bytes`), so an oversize
  request is refused (RESOURCE_EXHAUSTED) before it is buffered;
- a Prometheus ``/metrics`` endpoint, structured logs, optional TLS;
- graceful shutdown on SIGTERM/SIGINT: health goes NOT_SERVING, in-flight RPCs
  get ``shutdown_grace_s`` to finish, then :meth:`Service.stop` flushes and
  checkpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import inspect
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeAlias, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from headwater.auth import (
    Authenticator,
    Caller,
    HttpAuth,
    Namespace,
    PolicyStore,
    RefusalLog,
    Right,
    client_host,
)
from headwater.config import ServiceConfig, load_config
from headwater.errors import HeadwaterError, Reason
from headwater.interpreter import tune_interpreter
from headwater.logs import configure_logging
from headwater.metrics import RPC_LATENCY, RPC_REQUESTS, start_metrics_server
from headwater.reflection import enable_reflection
from headwater.storage import sweep_temporaries

if TYPE_CHECKING:
    import ssl

__all__ = ["GrpcBinding", "RunningService", "Service", "authenticator", "caller", "caller_token",
           "http_auth", "http_ssl_context", "run", "serve_in_process"]

log = logging.getLogger("headwater.server")

# Health, reflection and GetNamespace (where the services are) need no token.
_OPEN_METHODS = ("/grpc.health.v1.Health/", "/grpc.reflection.", "/headwater.v1.NamespaceService/")


@dataclass(frozen=True)
class GrpcBinding:
    """One gRPC service to add: ``add_XServicer_to_server``, the servicer, its full name."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any
    full_name: str


class Service:
    """Subclass per service: name, config class, bindings, rights, start/stop."""

    #: Short name: ``ingestion``, ``registry``, ``processing``, ``sink``.
    name: ClassVar[str] = ""
    #: The dataclass holding this service's settings.
    config_class: ClassVar[type[ServiceConfig]] = ServiceConfig
    #: Right each method needs, by method name (``PublishEvents``) or full
    #: method path; methods not listed need Manage.
    rights: ClassVar[dict[str, Right]] = {}

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config

    def bindings(self) -> Sequence[GrpcBinding]:
        """The gRPC services this service serves."""
        return ()

    @classmethod
    def prepare_process(cls, config: ServiceConfig) -> None:
        """Runs in ``headwater serve``'s process, in its main thread, before the event loop
        starts (no threads, ports or gRPC state of the service yet): the moment to fork helper
        processes. Not called for a service embedded in another event loop (``serve_in_process``)."""

    async def start(self) -> None:
        """Open storage, recover, start background tasks. Runs before the port opens."""

    async def started(self, running: RunningService) -> None:
        """Runs after the gRPC port is bound (start HTTP listeners here)."""

    async def draining(self) -> None:
        """Runs when shutdown begins, before in-flight RPCs get their grace period:
        end long-lived streams (long polls) here so the drain does not wait for them."""

    async def stop(self) -> None:
        """Flush and checkpoint. Runs after in-flight RPCs drained."""

    def right_for(self, method: str) -> Right:
        short = method.rsplit("/", 1)[-1]
        return self.rights.get(method) or self.rights.get(short) or Right.MANAGE

    #: Methods (short or full names) that take a token scoped to one hub: they are
    #: about one hub, which the servicer checks against :func:`caller`'s entity.
    #: Every other method needs a namespace-scoped token.
    entity_methods: ClassVar[frozenset[str]] = frozenset()

    def accepts_entity_token(self, method: str) -> bool:
        return method in self.entity_methods or method.rsplit("/", 1)[-1] in self.entity_methods

    #: Largest request this service accepts by default (gRPC's own default, 4 MiB).
    default_max_receive_bytes: ClassVar[int] = 4 * 1024 * 1024

    def max_receive_bytes(self) -> int:
        """The gRPC receive limit: setting ``max_receive_message_bytes``, else the service's default."""
        return self.config.max_receive_message_bytes or self.default_max_receive_bytes


# -- the interceptor ---------------------------------------------------------------

_T = TypeVar("_T")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")
if TYPE_CHECKING:  # RpcMethodHandler is generic in types-grpcio only
    _Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]

_CALLER: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("headwater_caller", default=None)


def caller() -> Caller | None:
    """The verified caller of the RPC being handled (None when auth is off)."""
    return _CALLER.get()


def caller_token() -> str:
    """The verified SAS token of the RPC being handled ('' when auth is off)."""
    c = _CALLER.get()
    return c.token if c is not None else ""


async def _abort(context: grpc.aio.ServicerContext[Any, Any], err: HeadwaterError, service: str) -> None:
    status = rpc_status.to_status(err.to_status(service))
    await context.abort(status.code, status.details, status.trailing_metadata)


class _Undecodable:
    """What the request deserializer returns for bytes that are not the request message."""

    __slots__ = ("error",)

    def __init__(self, error: HeadwaterError) -> None:
        self.error = error


def _safe_deserializer(deserialize: Callable[[bytes], _T] | None) -> Callable[[bytes], _T | _Undecodable] | None:
    """A deserializer that never raises into gRPC (which would log a traceback and answer UNKNOWN):
    a malformed request becomes INVALID_ARGUMENT, raised by the handler."""
    if deserialize is None:
        return None

    def load(data: bytes) -> _T | _Undecodable:
        try:
            return deserialize(data)
        except Exception as exc:  # noqa: BLE001 - DecodeError and friends
            name = getattr(getattr(deserialize, "__self__", None), "__name__", "request")
            return _Undecodable(HeadwaterError(
                Reason.INVALID_ARGUMENT, f"the request is not a valid {name} message ({type(exc).__name__})",
                metadata={"field": "request"}))

    return load


def _checked(request: _T | _Undecodable) -> _T:
    if isinstance(request, _Undecodable):
        raise request.error
    return request


async def _checked_stream(requests: AsyncIterator[_T | _Undecodable]) -> AsyncIterator[_T]:
    async for request in requests:
        yield _checked(request)


def _metadata_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization":
            return value if isinstance(value, str) else value.decode("latin-1")
    return ""


class _Interceptor(grpc.aio.ServerInterceptor):
    """Authenticates from the metadata alone, before the request is decoded: a refused
    call gets a handler that never deserializes its bytes, answers UNAUTHENTICATED
    (one message for every reason) or PERMISSION_DENIED, and is logged once per
    client per ``auth_refusal_log_interval_s``. Then maps exceptions to statuses."""

    def __init__(self, service: Service, auth: Authenticator | None) -> None:
        self.service = service
        self.auth = auth
        self.refusals = RefusalLog(log, service.config.auth_refusal_log_interval_s)

    def _authorize(self, method: str, metadata: Iterable[tuple[str, str | bytes]] | None) -> Caller:
        assert self.auth is not None
        who = self.auth.authenticate(_metadata_token(metadata))
        who.require(self.service.right_for(method))
        if not self.service.accepts_entity_token(method):
            who.require_namespace(method.rsplit("/", 1)[-1])
        return who

    def _fail(self, method: str, exc: BaseException) -> HeadwaterError:
        if isinstance(exc, HeadwaterError):
            if exc.reason is Reason.INTERNAL_ERROR:
                log.error("internal error in %s: %s", method, exc)
            return exc
        if isinstance(exc, TimeoutError):  # a peer (NATS, PostgreSQL, another service) did not answer in time
            log.warning("%s: a peer timed out: %s", method, exc or type(exc).__name__)
            return HeadwaterError(Reason.SERVICE_TIMEOUT,
                                  f"the {self.service.name} service timed out waiting for its storage or a peer; "
                                  "retry", retry_after=1.0)
        error_id = uuid.uuid4().hex[:12]
        log.exception("unhandled error %s in %s", error_id, method,
                      extra={"fields": {"error_id": error_id, "method": method}})
        return HeadwaterError(Reason.INTERNAL_ERROR,
                              f"internal error {error_id}; the {self.service.name} service log has the details",
                              metadata={"error_id": error_id})

    def _refused(self, handler: _Handler, method: str, err: HeadwaterError) -> _Handler:
        svc = self.service.name
        short = method.rsplit("/", 1)[-1]
        detail = getattr(err, "detail", "") or err.message

        # The request bytes are never decoded.
        async def refuse(request_or_iter: object, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            self.refusals.note(client_host(context.peer()), short, detail)
            RPC_REQUESTS.labels(svc, short, err.code.name).inc()
            await _abort(context, err, svc)

        kind = ("unary_unary" if handler.unary_unary else "unary_stream" if handler.unary_stream
                else "stream_unary" if handler.stream_unary else "stream_stream")
        make: Callable[..., _Handler] = getattr(grpc, f"{kind}_rpc_method_handler")
        return make(refuse, None, handler.response_serializer)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[_Req, _Resp] | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[_Req, _Resp] | None:
        # The handler as the aio server calls it: its behaviours take an aio context (types-grpcio
        # types them for the blocking server) and the wrapped deserializer may give an _Undecodable.
        handler: _Handler | None = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        if method.startswith(_OPEN_METHODS):
            return handler
        who: Caller | None = None
        if self.auth is not None:
            try:
                who = self._authorize(method, handler_call_details.invocation_metadata)
            except HeadwaterError as exc:
                return self._refused(handler, method, exc)
            except Exception as exc:  # noqa: BLE001 - a broken policies file: refuse, say why in the log
                return self._refused(handler, method, self._fail(method, exc))
        behaviour = handler.unary_unary or handler.stream_unary or handler.unary_stream or handler.stream_stream
        if behaviour is None:  # nothing to call, nothing to wrap
            return handler
        inner: Callable[..., Any] = behaviour
        deserialize: Callable[[bytes], Any] | None = _safe_deserializer(handler.request_deserializer)
        svc = self.service.name
        short = method.rsplit("/", 1)[-1]

        def done(code: str, t0: float) -> None:
            RPC_REQUESTS.labels(svc, short, code).inc()
            RPC_LATENCY.labels(svc, short).observe(time.perf_counter() - t0)

        if handler.unary_unary or handler.stream_unary:

            async def unary(request_or_iter: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                t0 = time.perf_counter()
                _CALLER.set(who)
                try:
                    request_or_iter = (_checked(request_or_iter) if handler.unary_unary
                                       else _checked_stream(request_or_iter))
                    result = inner(request_or_iter, context)
                    if inspect.isawaitable(result):
                        result = await result
                    done("OK", t0)
                    return result
                except asyncio.CancelledError:
                    done("CANCELLED", t0)
                    raise
                except Exception as exc:  # noqa: BLE001
                    if _is_abort(exc):
                        done("ABORTED_BY_HANDLER", t0)
                        raise
                    err = self._fail(method, exc)
                    done(err.code.name, t0)
                    await _abort(context, err, svc)

            if handler.unary_unary:
                return grpc.unary_unary_rpc_method_handler(
                    unary, deserialize, handler.response_serializer)
            return grpc.stream_unary_rpc_method_handler(
                unary, deserialize, handler.response_serializer)

        async def streaming(request_or_iter: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            t0 = time.perf_counter()
            _CALLER.set(who)
            try:
                request_or_iter = (_checked(request_or_iter) if handler.unary_stream
                                   else _checked_stream(request_or_iter))
                result = inner(request_or_iter, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                elif inspect.isawaitable(result):
                    await result
                done("OK", t0)
            except asyncio.CancelledError:
                done("CANCELLED", t0)
                raise
            except Exception as exc:  # noqa: BLE001
                if _is_abort(exc):
                    raise
                err = self._fail(method, exc)
                done(err.code.name, t0)
                await _abort(context, err, svc)

        if handler.unary_stream:
            return grpc.unary_stream_rpc_method_handler(
                streaming, deserialize, handler.response_serializer)
        return grpc.stream_stream_rpc_method_handler(
            streaming, deserialize, handler.response_serializer)


def _is_abort(exc: BaseException) -> bool:
    # grpc.aio raises AbortError from context.abort(); let it through untouched.
    return type(exc).__name__ in ("AbortError", "UsageError", "InternalError") and "grpc" in type(exc).__module__


def http_ssl_context(config: ServiceConfig) -> ssl.SSLContext | None:
    """An SSL context for a service's HTTP listeners (ingest, dashboard) when TLS is configured."""
    if not config.tls_cert_file:
        return None
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(config.tls_cert_file, config.tls_key_file)
    return ctx


# -- running -------------------------------------------------------------------------


@dataclass
class RunningService:
    """A started service: its ports and how to stop it."""

    service: Service
    server: grpc.aio.Server
    health: health.aio.HealthServicer
    grpc_port: int
    metrics_port: int
    metrics_server: Any = None

    @property
    def address(self) -> str:
        host = self.service.config.host
        return f"{'localhost' if host in ('0.0.0.0', '127.0.0.1', '::') else host}:{self.grpc_port}"

    async def stop(self, grace: float | None = None) -> None:
        grace = self.service.config.shutdown_grace_s if grace is None else grace
        await self.health.enter_graceful_shutdown()
        await self.service.draining()
        await self.server.stop(grace)
        await self.service.stop()
        if self.metrics_server is not None:
            with contextlib.suppress(Exception):
                self.metrics_server.shutdown()
                self.metrics_server.server_close()


def authenticator(cfg: ServiceConfig) -> Authenticator | None:
    """The token checks ``cfg`` asks for (None when ``auth_enabled`` is off)."""
    if not cfg.auth_enabled:
        return None
    store = PolicyStore(cfg.auth_path()).ensure()
    with contextlib.suppress(OSError):
        os.chmod(store.path, 0o600)
    return Authenticator(store, Namespace(cfg.namespace, cfg.host), cfg.max_token_lifetime_s)


def http_auth(cfg: ServiceConfig, auth: Authenticator | None = None) -> HttpAuth | None:
    """The guard of the HTTP pages (dashboard, /metrics) when ``http_auth`` is on, else None."""
    if not cfg.http_auth:
        return None
    return HttpAuth(auth if auth is not None else authenticator(cfg), cfg.http_basic_auth_user,
                    cfg.http_basic_auth_password)


async def start_service(service: Service) -> RunningService:
    """Start ``service``: storage, gRPC (health, reflection, interceptor), /metrics."""
    cfg = service.config
    auth = authenticator(cfg)
    await asyncio.to_thread(sweep_temporaries, cfg.existing_data_path())
    await service.start()
    server = grpc.aio.server(
        interceptors=[_Interceptor(service, auth)],
        options=[
            # Refused by gRPC (RESOURCE_EXHAUSTED) as soon as the length prefix is read.
            ("grpc.max_receive_message_length", service.max_receive_bytes()),
            ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
        ],
    )
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    for binding in service.bindings():
        binding.add_to_server(binding.servicer, server)
        names.append(binding.full_name)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    enable_reflection(names, server)
    address = f"{cfg.host}:{cfg.grpc_port}"
    busy = HeadwaterError(Reason.SERVICE_BUSY, f"gRPC port {cfg.grpc_port} on {cfg.host} is in use "
                          "(another stack or program); pick another with --port, or 0 for a free one",
                          metadata={"port": cfg.grpc_port})
    try:
        if cfg.tls_cert_file:
            creds = grpc.ssl_server_credentials(
                [(Path(cfg.tls_key_file).read_bytes(), Path(cfg.tls_cert_file).read_bytes())])
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpc: "Failed to bind to address"
        port = 0
    if port == 0:
        await service.stop()
        raise busy
    await server.start()
    metrics_server, metrics_port = None, -1
    if cfg.metrics_port >= 0:
        guard = http_auth(cfg, auth)
        host = cfg.metrics_host or cfg.host
        try:
            metrics_server, metrics_port = start_metrics_server(
                host, cfg.metrics_port, cfg.tls_cert_file, cfg.tls_key_file,
                allow=guard.check if guard is not None else None)
        except OSError as exc:
            await server.stop(0)
            await service.stop()
            raise HeadwaterError(Reason.SERVICE_BUSY,
                                 f"metrics port {cfg.metrics_port} on {host} is not free "
                                 f"({exc.strerror}); pick another with --metrics-port, 0 for a free one, -1 for none",
                                 metadata={"port": cfg.metrics_port}) from None
    running = RunningService(service, server, health_servicer, port, metrics_port, metrics_server)
    await service.started(running)
    for name in ["", *(b.full_name for b in service.bindings())]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("%s serving", service.name,
             extra={"fields": {"grpc": running.address, "metrics_port": metrics_port,
                               "auth": cfg.auth_enabled, "tls": bool(cfg.tls_cert_file),
                               "namespace": sorted(auth.namespace.hosts) if auth else []}})
    if auth is not None and not auth.namespace.configured and cfg.host in ("0.0.0.0", "::"):
        log.warning("listening on every interface, but tokens are accepted only for this machine's names "
                    "(%s): set 'namespace' to the host names clients sign for (docs/security.md)",
                    ", ".join(sorted(auth.namespace.hosts)))
    return running


@contextlib.asynccontextmanager
async def serve_in_process(service: Service) -> AsyncIterator[RunningService]:
    """Run ``service`` inside the current event loop (tests, embedding)."""
    running = await start_service(service)
    try:
        yield running
    finally:
        await running.stop(grace=1.0)


async def _serve_forever(service: Service) -> None:
    running = await start_service(service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"{service.name} listening on {running.address}", flush=True)
    await stop.wait()
    log.info("%s draining (grace %.1fs)", service.name, service.config.shutdown_grace_s)
    await running.stop()
    log.info("%s stopped", service.name)


def run(service_cls: type[Service], argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load configuration, serve until SIGTERM. Returns the exit code."""
    parser = argparse.ArgumentParser(prog=f"headwater serve {service_cls.name}",
                                     description=f"Run the Headwater {service_cls.name} service.")
    parser.add_argument("--config", help="YAML or JSON settings file")
    parser.add_argument("--host", help="address to bind (setting host)")
    parser.add_argument("--port", type=int, help="gRPC port (setting grpc_port)")
    parser.add_argument("--metrics-port", type=int, help="/metrics port (setting metrics_port)")
    parser.add_argument("--data-dir", help="storage folder (setting data_dir)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in {"host": args.host, "grpc_port": args.port,
                                   "metrics_port": args.metrics_port, "data_dir": args.data_dir}.items()
                 if v is not None}
    try:
        cfg = load_config(service_cls.config_class, service_cls.name, args.config, **overrides)
    except HeadwaterError as exc:
        print(f"headwater {service_cls.name}: {exc.message}", flush=True)
        return 2
    configure_logging(service_cls.name, cfg.log_level, cfg.log_format)
    service_cls.prepare_process(cfg)  # before tune_interpreter: its profiler thread is not to be forked
    tune_interpreter()
    try:
        asyncio.run(_serve_forever(service_cls(cfg)))
    except HeadwaterError as exc:
        log.error("%s", exc)
        print(f"headwater serve {service_cls.name}: {exc.message}", file=sys.stderr, flush=True)
        return 1
    return 0
