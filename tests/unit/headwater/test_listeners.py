"""headwater.listeners.DeferredListener: binds as asyncio's create_server does, opens at the first
connection (which is then served), turns the endpoint off when opening fails, stops either way."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from headwater.listeners import Closer, DeferredListener


async def _echo_opener(sockets: list[socket.socket], opened: list[int]) -> Closer:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    opened.append(len(sockets))
    servers = [await asyncio.start_server(echo, sock=s) for s in sockets]

    async def close() -> None:
        for server in servers:
            server.close()
            await server.wait_closed()

    return close


async def test_opens_at_the_first_connection_and_serves_it() -> None:
    opened: list[int] = []
    gate = asyncio.Event()

    async def opener(sockets: list[socket.socket]) -> Closer:
        await gate.wait()  # the library "loads": connections wait in the backlog meanwhile
        return await _echo_opener(sockets, opened)

    listener = await DeferredListener.bind("echo", "127.0.0.1", 0, opener)
    assert listener.port > 0 and not listener.opened and opened == []
    conns = [await asyncio.open_connection("127.0.0.1", listener.port) for _ in range(3)]
    for i, (_, writer) in enumerate(conns):
        writer.write(f"hello {i}\n".encode())
    gate.set()
    answers = [await asyncio.wait_for(reader.readline(), 10) for reader, _ in conns]
    assert answers == [b"hello 0\n", b"hello 1\n", b"hello 2\n"] and opened == [1] and listener.opened
    for _, writer in conns:
        writer.close()
    await listener.stop()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", listener.port)


async def test_a_taken_port_fails_as_create_server_does() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(OSError) as asyncio_err:
            await asyncio.start_server(lambda r, w: None, "127.0.0.1", port)
        with pytest.raises(OSError) as ours:
            await DeferredListener.bind("x", "127.0.0.1", port, lambda s: _echo_opener(s, []))
        assert (ours.value.errno, str(ours.value)) == (asyncio_err.value.errno, str(asyncio_err.value))
    finally:
        server.close()
        await server.wait_closed()


async def test_a_failing_open_logs_and_turns_the_endpoint_off(caplog) -> None:
    async def opener(sockets: list[socket.socket]) -> Closer:
        raise ImportError("no module named 'nothing'")

    listener = await DeferredListener.bind("the test endpoint", "127.0.0.1", 0, opener)
    with caplog.at_level(logging.ERROR, logger="headwater.listeners"):
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        try:  # the queued connection is dropped (reset) as the listening socket closes
            data = await asyncio.wait_for(reader.read(1), 10)
        except ConnectionError:
            data = b""
        assert data == b""
        writer.close()
    assert any("the test endpoint" in r.getMessage() for r in caplog.records)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", listener.port)
    await listener.stop()


async def test_stop_before_any_connection_frees_the_port() -> None:
    listener = await DeferredListener.bind("x", "127.0.0.1", 0, lambda s: _echo_opener(s, []))
    port = listener.port
    await listener.stop()
    again = await DeferredListener.bind("x", "127.0.0.1", port, lambda s: _echo_opener(s, []))
    await again.stop()
