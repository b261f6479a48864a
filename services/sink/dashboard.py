"""The live dashboard (Power BI streaming datasets and a report), served with aiohttp.

Pages: ``/`` lists the datasets (every sink; memory and dashboard sinks also
show their stored rows), ``/datasets/{id}`` shows one dataset as a chart (bars
per key for the latest window, lines over windows) and a table, updating live
through server-sent events. Everything it serves is in ``static/``: no page
loads anything from the internet.

JSON API: ``GET /api/datasets``; ``GET /api/datasets/{id}`` (definition and
stored rows); ``GET /api/datasets/{id}/events`` (SSE: ``snapshot`` then one
``rows`` event per write, ``{"rows": [...], "replace": bool, "keys": [...], "mode": ...}``:
the rows replace the earlier rows with the same ``keys``, or are added when empty);
``GET /api/events`` (SSE: ``datasets`` whenever sinks are created or deleted, and
every few seconds with fresh row counts).

The port is bound when the service starts; aiohttp is imported and the application built at
the first connection (:class:`headwater.listeners.DeferredListener`), which it then serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import pyarrow as pa

from headwater.errors import HeadwaterError, Reason
from headwater.listeners import Closer, DeferredListener, serve_aiohttp
from headwater.services.sink.outputs import Output, Outputs, Update
from headwater.sinks import ReadableSink

if TYPE_CHECKING:  # aiohttp: imported at the first connection
    import ssl

    from aiohttp import web

__all__ = ["make_app", "start_dashboard"]

STATIC = Path(__file__).with_name("static")
#: Rows sent in a snapshot (the newest).
SNAPSHOT_ROWS = 2000
_KEEPALIVE_S = 15.0
_INDEX_REFRESH_S = 3.0


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=str, option=orjson.OPT_NON_STR_KEYS)


def _rows(table: pa.Table) -> list[dict]:
    return table.to_pylist()


def _describe(out: Output) -> dict[str, Any]:
    cfg = out.spec.config
    return {"name": out.id, "kind": out.kind.name, "mode": out.spec.output_mode.value,
            "key_columns": list(out.spec.key_columns), "rows_written": out.stats.rows_written,
            "title": cfg.get("title") or out.description or out.id,
            "chart": {"key": cfg.get("key"), "value": cfg.get("value"), "time": cfg.get("time")},
            "readable": out.sink is not None and isinstance(out.sink, ReadableSink)}


def make_app(outputs: Outputs) -> web.Application:
    from aiohttp import web

    app = web.Application()

    async def page(name: str) -> web.FileResponse:
        return web.FileResponse(STATIC / name, headers={"Cache-Control": "no-store"})

    async def index(request: web.Request) -> web.StreamResponse:
        return await page("index.html")

    async def dataset_page(request: web.Request) -> web.StreamResponse:
        _get(request)
        return await page("dataset.html")

    def _get(request: web.Request) -> Output:
        try:
            return outputs.get(request.match_info["id"])
        except HeadwaterError as exc:
            raise web.HTTPNotFound(text=exc.message) from None

    async def snapshot(out: Output) -> dict[str, Any]:
        rows: list[dict] = []
        if out.sink is not None and isinstance(out.sink, ReadableSink):
            table = await outputs.read(out.id)
            rows = _rows(table.slice(max(0, table.num_rows - SNAPSHOT_ROWS)))
        return {**_describe(out), "rows": rows, "replace": True}

    async def api_datasets(request: web.Request) -> web.Response:
        return web.Response(body=_dumps([_describe(o) for o in outputs.list()]), content_type="application/json")

    async def api_dataset(request: web.Request) -> web.Response:
        return web.Response(body=_dumps(await snapshot(_get(request))), content_type="application/json")

    async def sse(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        return resp

    async def send(resp: web.StreamResponse, event: str, data: Any) -> None:
        await resp.write(b"event: " + event.encode() + b"\ndata: " + _dumps(data) + b"\n\n")

    async def api_dataset_events(request: web.Request) -> web.StreamResponse:
        out = _get(request)
        q = outputs.subscribe(out)
        try:
            resp = await sse(request)
            await send(resp, "snapshot", await snapshot(out))
            while True:
                try:
                    item = await asyncio.wait_for(q.get(), _KEEPALIVE_S)
                except TimeoutError:
                    await resp.write(b": keepalive\n\n")
                    continue
                if item is None or isinstance(item, Exception):
                    await send(resp, "closed", {"reason": str(item or "sink deleted")})
                    break
                assert isinstance(item, Update)
                await send(resp, "rows", {"rows": _rows(item.table), "replace": item.replace,
                                          "keys": list(item.keys), "mode": item.mode.value, "checkpoint_id": item.checkpoint.checkpoint_id})
            return resp
        except (ConnectionResetError, asyncio.CancelledError):
            return web.StreamResponse()
        finally:
            outputs.unsubscribe(out, q)

    async def api_events(request: web.Request) -> web.StreamResponse:
        q = outputs.watch()
        try:
            resp = await sse(request)
            await send(resp, "datasets", [_describe(o) for o in outputs.list()])
            while True:
                # Sinks created or deleted now; row counts every few seconds.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(q.get(), _INDEX_REFRESH_S)
                await send(resp, "datasets", [_describe(o) for o in outputs.list()])
        except (ConnectionResetError, asyncio.CancelledError):
            return web.StreamResponse()
        finally:
            outputs.unwatch(q)

    app.router.add_get("/", index)
    app.router.add_get("/datasets/{id}", dataset_page)
    app.router.add_get("/api/datasets", api_datasets)
    app.router.add_get("/api/datasets/{id}", api_dataset)
    app.router.add_get("/api/datasets/{id}/events", api_dataset_events)
    app.router.add_get("/api/events", api_events)
    app.router.add_static("/static/", STATIC)
    return app


def _guarded(app: web.Application, allow) -> web.Application:
    """Every page and API answers 401 (with a Basic challenge, so a browser asks) unless
    ``allow(Authorization header)``."""
    from aiohttp import web

    @web.middleware
    async def guard(request: web.Request, handler):
        if not allow(request.headers.get("Authorization", "")):
            return web.Response(status=401, text="unauthorized: sign in with the dashboard's user, or send a "
                                "SharedAccessSignature token with Listen",
                                headers={"WWW-Authenticate": 'Basic realm="headwater dashboard"'})
        return await handler(request)

    app.middlewares.insert(0, guard)
    return app


async def start_dashboard(outputs: Outputs, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                          allow: Callable[[str], bool] | None = None) -> tuple[DeferredListener, int]:
    """Bind the dashboard's port on ``host:port`` (0 = a free port) now, HeadwaterError when it cannot;
    import aiohttp and build the pages at the first connection. Returns the listener and the bound port.
    ``allow(authorization_header) -> bool`` guards every page when given."""

    def build() -> web.Application:
        app = make_app(outputs)
        return app if allow is None else _guarded(app, allow)

    async def open_app(sockets: list[socket.socket]) -> Closer:
        return await serve_aiohttp(build, sockets, ssl_context, handle_signals=False, shutdown_timeout=1.0)

    try:
        listener = await DeferredListener.bind("dashboard", host, port, open_app)
    except OSError as exc:
        raise HeadwaterError(Reason.SERVICE_BUSY,
                             f"dashboard cannot listen on {host}:{port}: {exc.strerror or exc} "
                             "(set dashboard_port, or -1 to disable the dashboard)") from None
    return listener, listener.port
