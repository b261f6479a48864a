"""Side endpoints whose port is bound at start and whose server is built at the first connection.

A service's side endpoints (the ingestion service's Kafka and HTTP ingest ports, the sink's
dashboard) bring libraries that cost more start CPU than the rest of the service (kafka-python,
aiohttp), and most runs never get a connection on them. :class:`DeferredListener` binds the
listening sockets at start exactly as ``loop.create_server(host, port)`` would (same addresses,
options, backlog and bind errors), watches them with ``loop.add_reader`` and, when the first
connection is pending, runs the endpoint's ``open(sockets)``: it imports the library off the event
loop and starts the real server on the very same sockets, which then accepts the connections
queued meanwhile; none is refused or lost.

    listener = await DeferredListener.bind("Kafka endpoint", host, port, open_kafka)
    listener.port                         # the bound port (the first socket's)
    ...
    await listener.stop()                 # the raw sockets, or the real server, whichever is live

``open(sockets)`` returns the coroutine function that stops what it started. If it fails the
error is logged naming the endpoint and the sockets are closed: the endpoint is off, the
service carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported by serve_aiohttp, at the first connection
    from aiohttp import web

__all__ = ["BACKLOG", "Closer", "DeferredListener", "Opener", "bind_sockets", "serve_aiohttp"]

log = logging.getLogger("headwater.listeners")

#: listen() backlog, as asyncio's create_server: connections arriving while the library loads wait here.
BACKLOG = 100

#: Stops what an :data:`Opener` started (closes its server and connections).
Closer = Callable[[], Awaitable[None]]
#: Starts the real server on the bound sockets (they are its from then on); returns its closer.
Opener = Callable[[list[socket.socket]], Awaitable[Closer]]


def _numeric(host: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


async def bind_sockets(host: str | None, port: int, backlog: int = BACKLOG) -> list[socket.socket]:
    """Listening, non-blocking sockets on ``host:port`` as ``loop.create_server(host, port)`` binds them:
    every address ``getaddrinfo(host, port, AI_PASSIVE)`` gives (``""``/None: every interface),
    SO_REUSEADDR, IPV6_V6ONLY on IPv6 sockets; raises OSError as it does when an address is taken."""
    host = host or None
    if host is None or _numeric(host):  # no lookup: no executor thread
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, family=socket.AF_UNSPEC,
                                                             type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    completed = False
    try:
        for af, socktype, proto, _, sa in dict.fromkeys(infos):  # each address once, in the resolver's order
            try:
                sock = socket.socket(af, socktype, proto)
            except OSError:  # a family/type/protocol combination this host lacks, as asyncio skips it
                continue
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, True)
            if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, True)
            try:
                sock.bind(sa)
            except OSError as err:
                raise OSError(err.errno, f"error while attempting to bind on address {sa!r}: "
                                         f"{(err.strerror or str(err)).lower()}") from None
        if not sockets:
            raise OSError(f"no address to listen on for {host}:{port}")
        for sock in sockets:
            sock.setblocking(False)
            sock.listen(backlog)
        completed = True
    finally:
        if not completed:
            for sock in sockets:
                sock.close()
    return sockets


class DeferredListener:
    """An endpoint's bound sockets, handed to its real server at the first connection."""

    def __init__(self, name: str, sockets: list[socket.socket], opener: Opener) -> None:
        self.name = name
        self.sockets = sockets
        #: the bound port (the first socket's)
        self.port: int = sockets[0].getsockname()[1]
        self._open = opener
        self._loop = asyncio.get_running_loop()
        self._opening: asyncio.Task[None] | None = None
        self._closer: Closer | None = None
        self._stopped = False
        for sock in sockets:
            self._loop.add_reader(sock.fileno(), self._first_connection)

    @classmethod
    async def bind(cls, name: str, host: str | None, port: int, opener: Opener,
                   backlog: int = BACKLOG) -> DeferredListener:
        """Bind ``host:port`` now (OSError as ``create_server`` raises it); ``opener`` at the first connection."""
        return cls(name, await bind_sockets(host, port, backlog), opener)

    @property
    def opened(self) -> bool:
        """Whether the real server runs (the first connection came and ``open`` succeeded)."""
        return self._closer is not None

    def _unwatch(self) -> None:
        for sock in self.sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())

    def _first_connection(self) -> None:
        if self._opening is not None or self._stopped:
            return
        self._unwatch()
        self._opening = self._loop.create_task(self._run_open())

    async def _run_open(self) -> None:
        try:
            self._closer = await self._open(list(self.sockets))
        except asyncio.CancelledError:
            self._close_sockets()
            raise
        except Exception:
            log.exception("%s failed to start at its first connection; it is off (the service carries on)",
                          self.name)
            self._close_sockets()

    def _close_sockets(self) -> None:
        self._unwatch()
        for sock in self.sockets:
            sock.close()

    async def stop(self) -> None:
        """Close whichever is live: the bound sockets, or the real server; a pending open is cancelled."""
        if self._stopped:
            return
        self._stopped = True
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._opening
        if self._closer is not None:
            await self._closer()
        else:
            self._close_sockets()


async def serve_aiohttp(build: Callable[[], web.Application], sockets: list[socket.socket],
                        ssl_context: ssl.SSLContext | None, **runner_options: Any) -> Closer:
    """An :data:`Opener`'s body for an aiohttp endpoint: aiohttp imported off the event loop, the
    application ``build()`` then, served on the bound ``sockets``; returns its closer."""
    await asyncio.to_thread(importlib.import_module, "aiohttp.web")
    from aiohttp import web

    runner = web.AppRunner(build(), **runner_options)
    await runner.setup()
    try:
        for sock in sockets:
            await web.SockSite(runner, sock, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner.cleanup
