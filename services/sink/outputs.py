"""The sink service's domain: named outputs, their writes, error policy and live subscribers.

The servicer (gRPC) and the dashboard (HTTP) both sit on :class:`Outputs`;
neither knows any sink kind: kinds come from the plugin registry.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from headwater.errors import HeadwaterError, Reason
from headwater.faults import FaultFile
from headwater.names import check_name
from headwater.pluginmanager import NamedRegistry
from headwater.secrets import SecretStore, keep_references, resolve_config
from headwater.services.sink import metrics
from headwater.sinks import (
    Checkpoint,
    ErrorPolicy,
    OutputMode,
    ReadableSink,
    Sink,
    SinkKind,
    SinkRowError,
    SinkSpec,
    replace_keys,
)
from headwater.storage import BackgroundWriter

__all__ = ["Output", "Outputs", "Update", "WriteResult", "call"]

log = logging.getLogger("headwater.sink")


async def call(fn: Callable[..., Any], *args: Any) -> Any:
    """Call a sink method: await a coroutine function, run a plain one in a worker thread."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    result = await asyncio.to_thread(fn, *args)
    if inspect.isawaitable(result):
        result = await result
    return result


def sink_id(name: str) -> str:
    """``sinks/x`` or ``x`` -> ``x``; INVALID_ARGUMENT when malformed."""
    return check_name("sink", name.removeprefix("sinks/"), "name")


@dataclass
class Update:
    """One write as live subscribers see it."""

    table: pa.Table
    mode: OutputMode
    checkpoint: Checkpoint
    replace: bool
    time: datetime
    snapshot: bool = False
    #: The columns these rows replace earlier rows by (update, and complete by key).
    keys: tuple[str, ...] = ()


@dataclass
class WriteResult:
    rows_written: int = 0
    rows_dropped: int = 0
    duplicate: bool = False
    drop_reason: str = ""
    #: Indexes (in the written batch) of the rows dropped.
    dropped_rows: list[int] = field(default_factory=list)


@dataclass
class Stats:
    rows_written: int = 0
    bytes_written: int = 0
    rows_dropped: int = 0
    retries: int = 0
    duplicate_writes: int = 0
    last_write_time: datetime | None = None
    last_error: str = ""


@dataclass
class Output:
    """One sink: its definition, the plugin's Sink object, counters, subscribers."""

    id: str
    kind: SinkKind
    spec: SinkSpec
    error_policy: ErrorPolicy
    create_time: datetime
    description: str = ""
    request_id: str = ""
    sink: Sink | None = None
    stats: Stats = field(default_factory=Stats)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last: dict[str, Checkpoint | None] = field(default_factory=dict)
    trigger: int | None = None
    subscribers: set[asyncio.Queue] = field(default_factory=set)
    dirty: bool = False
    #: Transient failures of writes in a row, and when the first of them happened
    #: (monotonic): error policy Drop gives a write up after DropPolicy's bounds.
    failures: int = 0
    failing_since: float = 0.0

    @property
    def name(self) -> str:
        return f"sinks/{self.id}"

    @property
    def labels(self) -> tuple[str, str]:
        return (self.id, self.kind.name)

    def definition(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind.name, "config": dict(self.spec.config),
                "output_mode": self.spec.output_mode.value, "key_columns": list(self.spec.key_columns),
                "error_policy": self.error_policy.value, "create_time": self.create_time.isoformat(),
                "description": self.description, "request_id": self.request_id}


@dataclass(frozen=True)
class DropPolicy:
    """Error policy Drop: when a write that keeps failing transiently is dropped.

    The service makes one attempt per WriteRows (the writer is the one retry layer,
    docs/errors.md); these bounds count the writer's attempts."""

    attempts: int = 3
    seconds: float = 5.0


class Outputs:
    """All sinks of the service."""

    def __init__(self, data_dir: Path, kinds: NamedRegistry[SinkKind], policy: DropPolicy | None = None,
                 queue_size: int = 1000, allowed_roots: tuple[Path, ...] = (), secrets: SecretStore | None = None,
                 namespace: str = "", registry: str = "", faults: FaultFile | None = None) -> None:
        self.data_dir = data_dir
        self.allowed_roots = allowed_roots
        self.secrets = secrets
        #: Connection strings to this namespace's ingestion and registry (SinkSpec.namespace).
        self.namespace, self.registry = namespace, registry
        self.kinds = kinds
        self.policy = policy or DropPolicy()
        self.faults = faults or FaultFile()
        self.queue_size = queue_size
        self.outputs: dict[str, Output] = {}
        self._file = data_dir / "sinks.json"
        #: sinks.json is written off the event loop; create and delete answer once it is on disk.
        self._writer = BackgroundWriter(self._file, private=True)
        self._unrestored: list[dict[str, Any]] = []  # definitions that no longer validate
        self._mutex = asyncio.Lock()
        self._watchers: set[asyncio.Queue] = set()

    # -- definitions -----------------------------------------------------------------
    def _kind(self, name: str) -> SinkKind:
        kind = self.kinds.get(name) if name else None
        if kind is None:
            known = ", ".join(sorted(k.name for k in self.kinds.unique()))
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"unknown sink kind {name!r} (installed kinds: {known})", metadata={"field": "kind"})
        return kind

    def _build(self, sid: str, kind_name: str, config: dict[str, Any], mode: OutputMode, keys: list[str],
               policy: ErrorPolicy, create_time: datetime, description: str, request_id: str) -> Output:
        kind = self._kind(kind_name)
        if mode not in kind.output_modes:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"sink kind {kind.name!r} does not support output mode {mode.value} "
                                 f"(supported: {', '.join(m.value for m in kind.output_modes)})",
                                 metadata={"field": "output_mode"})
        spec = SinkSpec(name=sid, config=config, output_mode=mode, key_columns=tuple(keys),
                        data_dir=self.data_dir / "sinks" / sid, allowed_roots=self.allowed_roots,
                        namespace=self.namespace, registry=self.registry)
        # Validated with `secret:NAME` resolved; the definition keeps the names the kind did not change.
        resolved = resolve_config(config, self.secrets)
        spec = dataclasses.replace(spec, config=keep_references(config, resolved, kind.validate(resolved, spec)))
        return Output(sid, kind, spec, policy, create_time, description, request_id)

    async def _save(self) -> None:
        kept = [d for d in self._unrestored if d.get("id") not in self.outputs]
        definitions = [*(o.definition() for o in self.outputs.values()), *kept]
        await asyncio.wrap_future(self._writer.submit(
            lambda: json.dumps(definitions, indent=1, default=str).encode()))

    async def open(self) -> None:
        if not self._file.exists():
            return
        for d in json.loads(self._file.read_text()):
            try:
                out = self._build(d["id"], d["kind"], d["config"], OutputMode(d["output_mode"]),
                                  d["key_columns"], ErrorPolicy(d["error_policy"]),
                                  datetime.fromisoformat(d["create_time"]), d.get("description", ""),
                                  d.get("request_id", ""))
            except HeadwaterError as exc:
                # Kept in sinks.json: fixed settings (allowed_paths, a secret) bring it back at the next start.
                log.error("sink %s not restored: %s", d.get("id"), exc)
                self._unrestored.append(d)
                continue
            self.outputs[out.id] = out
            with contextlib.suppress(HeadwaterError):
                await self._ensure_open(out)

    async def _ensure_open(self, out: Output) -> Sink:
        if out.sink is None:
            # `secret:NAME` settings are resolved here, for the plugin only; the definition keeps the name.
            spec = dataclasses.replace(out.spec, config=resolve_config(out.spec.config, self.secrets))
            sink = out.kind.create(spec)
            try:
                await call(sink.open)
            except HeadwaterError as exc:
                out.stats.last_error = str(exc)
                raise
            out.sink = sink
        return out.sink

    async def create(self, sid: str, kind: str, config: dict[str, Any], mode: OutputMode, keys: list[str],
                     policy: ErrorPolicy, description: str = "", request_id: str = "") -> Output:
        sid = sink_id(sid)
        async with self._mutex:
            existing = self.outputs.get(sid)
            if existing is not None:
                if request_id and existing.request_id == request_id:
                    return existing
                raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS, f"sink {sid!r} already exists",
                                     metadata={"resource": f"sinks/{sid}"})
            out = self._build(sid, kind, config, mode, keys, policy, datetime.now(UTC), description,
                              request_id)
            await self._ensure_open(out)
            self.outputs[sid] = out
            await self._save()
        self._notify()
        return out

    def get(self, name: str) -> Output:
        sid = sink_id(name)
        out = self.outputs.get(sid)
        if out is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"sink {sid!r} does not exist",
                                 metadata={"resource": f"sinks/{sid}"})
        return out

    def list(self, kind: str = "") -> list[Output]:
        return [o for _, o in sorted(self.outputs.items()) if not kind or o.kind.name == kind]

    async def delete(self, name: str, allow_missing: bool = False) -> None:
        async with self._mutex:
            try:
                out = self.get(name)
            except HeadwaterError as exc:
                if allow_missing and exc.reason is Reason.RESOURCE_NOT_FOUND:
                    return
                raise
            async with out.lock:
                del self.outputs[out.id]
                await self._save()
                if out.sink is not None:
                    with contextlib.suppress(Exception):
                        await call(out.sink.drop)
                for q in list(out.subscribers):
                    q.put_nowait(None)
                shutil.rmtree(self.data_dir / "sinks" / out.id, ignore_errors=True)
        self._notify()

    # -- writes ----------------------------------------------------------------------
    async def write(self, name: str, table: pa.Table, checkpoint: Checkpoint, commit: bool = False) -> WriteResult:
        out = self.get(name)
        result = WriteResult()
        t0 = time.perf_counter()
        async with out.lock:
            sink = out.sink or await self._once(out, "open", lambda: self._ensure_open(out))
            if checkpoint.tracked:
                if checkpoint.writer not in out.last and sink.exactly_once:
                    out.last[checkpoint.writer] = await self._once(
                        out, "open", lambda: call(sink.last_checkpoint, checkpoint.writer))
                last = out.last.get(checkpoint.writer)
                if not checkpoint.after(last):
                    log.info("%s: write of %s (checkpoint %d, batch %d) already applied (last %s): skipped",
                             out.name, checkpoint.writer or "?", checkpoint.checkpoint_id, checkpoint.batch_id,
                             f"{last.checkpoint_id}/{last.batch_id}" if last else "-")
                    return self._duplicate(out, result)
            rows = table
            applied = True
            if rows.num_rows:  # an empty trigger (of a complete sink) changes nothing
                rows, dropped, reason, applied = await self._write_rows(out, sink, rows, checkpoint,
                                                                        result.dropped_rows)
                result.rows_dropped, result.drop_reason = dropped, reason
                if not applied:
                    return self._duplicate(out, result)
            if commit:
                await self._once(out, "flush", lambda: call(sink.flush))
                out.dirty = False
            else:
                out.dirty = True
            if checkpoint.tracked:
                out.last[checkpoint.writer] = checkpoint
            result.rows_written = rows.num_rows
            out.stats.rows_written += rows.num_rows
            out.stats.bytes_written += rows.nbytes
            out.stats.last_write_time = datetime.now(UTC)
            out.stats.last_error = ""
            metrics.ROWS.labels(*out.labels).inc(rows.num_rows)
            metrics.BYTES.labels(*out.labels).inc(rows.nbytes)
            metrics.LATENCY.labels(*out.labels).observe(time.perf_counter() - t0)
            # Complete mode: the rows replace earlier rows by key (replace_keys); only a
            # result without a key is replaced whole, by a trigger's first batch.
            keys = tuple(replace_keys(out.spec.output_mode, out.spec.key_columns, rows.schema))
            replace = out.spec.output_mode is OutputMode.COMPLETE and not keys and (
                not checkpoint.tracked or checkpoint.checkpoint_id != out.trigger)
            if out.spec.output_mode is OutputMode.COMPLETE:
                out.trigger = checkpoint.checkpoint_id
            if rows.num_rows:
                self._publish(out, Update(rows, out.spec.output_mode, checkpoint, replace, datetime.now(UTC),
                                          keys=keys))
        return result

    def _duplicate(self, out: Output, result: WriteResult) -> WriteResult:
        out.stats.duplicate_writes += 1
        metrics.DUPLICATES.labels(*out.labels).inc()
        result.duplicate = True
        return result

    def _named(self, out: Output, exc: HeadwaterError, rows: pa.Table | None = None) -> HeadwaterError:
        """The error as the writer sees it: naming the output."""
        out.stats.last_error = exc.message
        metrics.ERRORS.labels(*out.labels, exc.reason.value).inc()
        named = f"'{out.id}'" in exc.message or out.name in exc.message
        message = exc.message if named else f"output {out.name} ({out.kind.name}): {exc.message}"
        return HeadwaterError(exc.reason, message, metadata={**exc.metadata, "sink": out.name},
                              retry_after=exc.retry_after)

    async def _once(self, out: Output, operation: str, fn: Callable[[], Any]) -> Any:
        """One attempt of a plugin call (no retry here: the writer retries, docs/errors.md).

        A transient failure is counted (``out.failures``; a write after one counts as a
        retry in the sink's stats) and raised naming the output, with the plugin's
        ``retry_after``; a success ends the run of failures."""
        if out.failures:
            out.stats.retries += 1
            metrics.RETRIES.labels(*out.labels).inc()
        try:
            await self.faults.check(operation, out.id)
            result = await fn()
        except SinkRowError:
            raise
        except HeadwaterError as exc:
            if exc.is_transient:
                if not out.failures:
                    out.failing_since = time.monotonic()
                out.failures += 1
            raise self._named(out, exc) from None
        out.failures = 0
        return result

    def _give_up(self, out: Output) -> bool:
        """Error policy Drop: the failing write has had its attempts."""
        return out.error_policy is ErrorPolicy.DROP and (
            out.failures >= self.policy.attempts or time.monotonic() - out.failing_since >= self.policy.seconds)

    async def _write_rows(self, out: Output, sink: Sink, rows: pa.Table, checkpoint: Checkpoint,
                          dropped_rows: builtins.list[int] | None = None) -> tuple[pa.Table, int, str, bool]:
        """Write under the error policy; returns (rows stored, dropped, reason, applied).
        ``dropped_rows`` gets the dropped rows' indexes in the batch given."""
        dropped, reason = 0, ""
        index = list(range(rows.num_rows))  # each remaining row's index in the batch given
        dropped_rows = [] if dropped_rows is None else dropped_rows
        while True:
            try:
                res = await self._once(out, "write", functools.partial(call, sink.write_batch, rows, checkpoint))
                return rows, dropped, reason, res != "duplicate"
            except SinkRowError as exc:
                named = self._named(out, exc)
                if out.error_policy is not ErrorPolicy.DROP:
                    raise named from None
                bad = sorted({r for r in exc.rows if 0 <= r < rows.num_rows})
                if not bad:
                    bad = list(range(rows.num_rows))
                keep = sorted(set(range(rows.num_rows)) - set(bad))
                dropped += len(bad)
                reason = reason or named.message
                metrics.DROPPED.labels(*out.labels).inc(len(bad))
                out.stats.rows_dropped += len(bad)
                log.warning("%s: dropped %d rows (error policy Drop): %s; sample row: %s", out.name, len(bad),
                            named.message, _sample(rows, bad[0]))
                dropped_rows.extend(index[b] for b in bad)
                index = [index[k] for k in keep]
                rows = rows.take(pa.array(keep, pa.int64()))
                if not rows.num_rows:
                    return rows, dropped, reason, True
            except HeadwaterError as exc:
                if exc.is_transient and self._give_up(out):
                    out.failures = 0
                    n = rows.num_rows
                    metrics.DROPPED.labels(*out.labels).inc(n)
                    out.stats.rows_dropped += n
                    log.warning("%s: dropped %d rows (error policy Drop): %s; sample row: %s", out.name, n,
                                exc.message, _sample(rows, 0))
                    dropped_rows.extend(index)
                    return rows.slice(0, 0), dropped + n, reason or exc.message, True
                raise

    # -- reads -------------------------------------------------------------------------
    async def read(self, name: str) -> pa.Table:
        out = self.get(name)
        sink = await self._ensure_open(out)
        if not isinstance(sink, ReadableSink):
            raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                 f"sink {out.id!r} is a {out.kind.name} sink: only memory and dashboard sinks "
                                 "can be read back", metadata={"resource": out.name})
        return sink.read()

    # -- live subscribers -------------------------------------------------------------
    def subscribe(self, out: Output) -> asyncio.Queue:
        q: asyncio.Queue = asyncio.Queue(self.queue_size)
        out.subscribers.add(q)
        metrics.SUBSCRIBERS.labels(out.id).set(len(out.subscribers))
        return q

    def unsubscribe(self, out: Output, q: asyncio.Queue) -> None:
        out.subscribers.discard(q)
        metrics.SUBSCRIBERS.labels(out.id).set(len(out.subscribers))

    def end_subscriptions(self) -> None:
        """Shutdown: every live subscription ends (its stream returns; clients reconnect)."""
        for out in self.outputs.values():
            for q in list(out.subscribers):
                with contextlib.suppress(asyncio.QueueEmpty):
                    while q.full():
                        q.get_nowait()
                q.put_nowait(None)

    def _publish(self, out: Output, update: Update) -> None:
        for q in list(out.subscribers):
            try:
                q.put_nowait(update)
            except asyncio.QueueFull:
                out.subscribers.discard(q)
                with contextlib.suppress(asyncio.QueueEmpty):
                    q.get_nowait()
                q.put_nowait(OverflowError("subscriber too slow: queue full"))

    def watch(self) -> asyncio.Queue:
        """A queue that gets ``None`` whenever sinks are created or deleted (dashboard index)."""
        q: asyncio.Queue = asyncio.Queue(100)
        self._watchers.add(q)
        return q

    def unwatch(self, q: asyncio.Queue) -> None:
        self._watchers.discard(q)

    def _notify(self) -> None:
        for q in list(self._watchers):
            with contextlib.suppress(asyncio.QueueFull):
                q.put_nowait(None)

    # -- background and shutdown ------------------------------------------------------
    async def poll_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            for out in list(self.outputs.values()):
                if out.sink is None or out.lock.locked():
                    continue
                try:
                    async with out.lock:
                        await call(out.sink.poll)
                except Exception as exc:  # noqa: BLE001 - a failing poll must not stop the others
                    out.stats.last_error = str(exc)
                    log.warning("%s: poll failed: %s", out.name, exc)

    async def close(self) -> None:
        await asyncio.to_thread(self._writer.close)
        for out in list(self.outputs.values()):
            if out.sink is None:
                continue
            async with out.lock:
                try:
                    await call(out.sink.close)
                except Exception as exc:  # noqa: BLE001
                    log.error("%s: close failed: %s", out.name, exc)
            for q in list(out.subscribers):
                with contextlib.suppress(asyncio.QueueFull):
                    q.put_nowait(None)


def _sample(rows: pa.Table, index: int) -> str:
    try:
        return json.dumps(rows.slice(index, 1).to_pylist()[0], default=str)[:500]
    except Exception:  # noqa: BLE001
        return "?"
