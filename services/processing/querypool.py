"""Query compilation and TestQuery in a worker process, with a time budget.

Compiling a query (CreateJob, UpdateJob) and running a test query are CPU work
in Python: a 1M-item IN list or a pathological query would hold the service's
event loop (and with it health and every other RPC) for as long as it takes.
They run here instead, in a process of their own; one that runs past its budget
is killed (the next call starts a new one) and the call fails with a clear error, so
nothing a caller sends can stall the service. A job started after its query was compiled
takes the idle query worker as its worker process (:meth:`QueryPool.take`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from headwater.errors import HeadwaterError, QueryCompileError, Reason
from headwater.interpreter import tune_interpreter
from headwater.services.processing.launcher import WorkerProcess, start_worker
from headwater.v1 import processing_pb2 as pb

__all__ = ["QueryPool"]


def _marshal(exc: HeadwaterError) -> tuple:
    if isinstance(exc, QueryCompileError):
        return ("compile", exc.message, exc.line, exc.column)
    return ("error", exc.reason.name, exc.message, dict(exc.metadata or {}))


def _unmarshal(err: tuple) -> HeadwaterError:
    if err[0] == "compile":
        return QueryCompileError(err[1], line=err[2], column=err[3])
    return HeadwaterError(Reason[err[1]], err[2], metadata=err[3])


def _compile(job_bytes: bytes, config=None):
    from headwater.services.processing import engine_adapter

    try:
        engine_adapter.compile_job(pb.Job.FromString(job_bytes), config)
    except HeadwaterError as exc:
        return _marshal(exc)
    return None


def _test_query(request_bytes: bytes):
    from headwater.services.processing import engine_adapter

    try:
        return engine_adapter.test_query(pb.TestQueryRequest.FromString(request_bytes)).SerializeToString()
    except HeadwaterError as exc:
        return _marshal(exc)


_STATEFUL_CALLS = {"LAG", "LAST", "ISFIRST", "TOPONE", "COLLECTTOP"}


def _stateful(node, seen: set) -> bool:
    """Whether an AST holds a step that keeps state across events (join, analytic
    function, MATCH_RECOGNIZE)."""
    from dataclasses import fields, is_dataclass

    from headwater.services.processing.sql import ast as A

    if id(node) in seen:
        return False
    seen.add(id(node))
    if isinstance(node, (A.Join, A.MatchRecognize)):
        return True
    if isinstance(node, A.Call) and (node.over is not None or node.name.upper() in _STATEFUL_CALLS):
        return True
    if isinstance(node, (list, tuple)):
        return any(_stateful(x, seen) for x in node)
    if is_dataclass(node):
        return any(_stateful(getattr(node, f.name), seen) for f in fields(node))
    return False


def _partition_parallel(job_bytes: bytes, config=None) -> bool:
    """Whether each input partition can run as a task of its own (Stream Analytics'
    embarrassingly parallel jobs): every statement partition-parallel in the engine's
    physical plan, or a query over one stream input whose steps keep no state across
    events (no GROUP BY or window, join, analytic function or MATCH_RECOGNIZE)."""
    from headwater.services.processing import engine_adapter

    compiled = engine_adapter.compile_job(pb.Job.FromString(job_bytes), config)
    try:  # the planner marks statements partition-parallel (PARTITION BY PartitionId, ...)
        from headwater.services.processing.plan.physical import plan_physical

        statements = plan_physical(compiled.plan, compiled.pm).statements
        if statements and all(st.partition_parallel for st in statements):
            return True
    except (ImportError, AttributeError, TypeError):
        pass
    plan = getattr(compiled, "plan", None)
    try:
        if plan is None or len(plan.inputs) != 1:
            return False
        return not any(st.aggregate or st.windows or _stateful(st.select, set()) for st in plan.statements)
    except (AttributeError, ImportError, TypeError):  # an engine whose plan reads otherwise: merged, safe
        return False


_CALLS: dict[str, Callable[..., Any]] = {"compile": _compile, "test_query": _test_query,
                                         "partition_parallel": _partition_parallel}


def _query_main(conn) -> None:
    """The query worker: import the engine, say so, then answer calls until the service hands
    it a job (it becomes that job's worker) or closes the pipe."""
    from headwater.services.processing.launcher import die_with_parent, set_process_name
    from headwater.services.processing.worker import _child_main, lower_priority

    die_with_parent()
    set_process_name("hw-query")
    lower_priority()  # a pathological query's compile must not take health's CPU
    tune_interpreter()
    import headwater.services.processing.engine_adapter  # noqa: F401 - the engine, before "ready"

    conn.send(("ready",))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg[0] == "become":
            _child_main(conn, *msg[1:])
            return
        _, name, args = msg
        try:
            conn.send(("ok", _CALLS[name](*args)))
        except HeadwaterError as exc:
            conn.send(("error", _marshal(exc)))
        except Exception as exc:  # noqa: BLE001 - an engine fault is the call's, not the worker's
            conn.send(("raised", f"{type(exc).__name__}: {exc}"))


class _Worker:
    """A spawned query worker: its process and its end of the pipe."""

    def __init__(self) -> None:
        # Started from the event loop's thread (the service's main thread): a spawned child's
        # PR_SET_PDEATHSIG fires when the service dies, not when some helper thread ends.
        self.proc, self.conn = start_worker(_query_main, (), "headwater query worker")
        #: only compiles (CreateJob, UpdateJob, a scaled job's plan): it may become a job's worker.
        #: One that ran a TestQuery (a client's sample events) is never handed a job.
        self.clean = True

    async def recv(self):
        """The next message, without blocking the event loop; EOFError when the process is gone."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        fd = self.conn.fileno()

        def readable() -> None:
            if not fut.done():
                fut.set_result(None)

        loop.add_reader(fd, readable)
        try:
            await fut
        finally:
            loop.remove_reader(fd)
        return await asyncio.to_thread(self.conn.recv)  # an answer may be large: read it off the loop

    def kill(self) -> None:
        """SIGKILL; reaped off the event loop (a join in a thread) when one runs."""
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.conn.close()
        try:
            asyncio.get_running_loop().run_in_executor(None, self.proc.join, 5)
        except RuntimeError:  # no loop (the service is gone): reap it here
            with contextlib.suppress(Exception):
                self.proc.join(1)


class QueryPool:
    """The query worker: one process (``spawn``: nothing of the service's gRPC state is
    inherited), started at the first call, answering one call at a time.

    A job started after its query was compiled here takes this process as its worker
    (:meth:`take`): the process has imported the engine already, so the job starts half a
    second sooner and the service spawns one process less; the next compile starts a new
    query worker."""

    def __init__(self) -> None:
        self._worker: _Worker | None = None
        self._ready = False
        self._lock = asyncio.Lock()
        self._closed = False

    async def _started(self) -> _Worker:
        if self._worker is None:
            self._worker, self._ready = _Worker(), False
        w = self._worker
        if not self._ready:
            # The worker up first (a new one imports the engine): the call's budget is its own.
            try:
                msg = await asyncio.wait_for(w.recv(), 120)
            except (TimeoutError, EOFError, OSError):
                self._drop(w)
                raise HeadwaterError(Reason.SERVICE_BUSY, "the query worker did not start; retry",
                                     retry_after=1.0) from None
            assert msg == ("ready",), msg
            self._ready = True
        return w

    async def _run(self, name: str, arg: bytes, budget_s: float, what: str, *more, clean: bool = True):
        async with self._lock:
            if self._closed:
                raise HeadwaterError(Reason.SERVICE_BUSY, "the service is stopping; retry", retry_after=1.0)
            w = await self._started()
            w.clean = w.clean and clean
            try:
                # Off the loop: a query of megabytes is pickled and written while health answers.
                await asyncio.to_thread(w.conn.send, ("call", name, (arg, *more)))
                kind, value = await asyncio.wait_for(w.recv(), budget_s)
            except asyncio.CancelledError:
                # The caller went (its deadline, a disconnect): the worker's late answer must not
                # be read as the next call's, so this worker goes too.
                self._drop(w)
                raise
            except TimeoutError:
                self._drop(w)
                raise HeadwaterError(
                    Reason.INVALID_ARGUMENT,
                    f"{what} took longer than its budget of {budget_s:g} s and was stopped: simplify the query "
                    "(long IN lists, deep nesting)", metadata={"field": "query"}) from None
            except (EOFError, OSError):
                self._drop(w)
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{what} exhausted its worker (memory?) and was stopped",
                                     metadata={"field": "query"}) from None
            if kind == "error":
                raise _unmarshal(value)
            if kind == "raised":
                raise HeadwaterError(Reason.INTERNAL_ERROR, f"{what} failed: {value}")
            return value

    def _drop(self, w: _Worker) -> None:
        """A worker past its budget (or gone) goes; the next call starts a new one."""
        if self._worker is w:
            self._worker = None
        w.kill()

    def take(self) -> tuple[WorkerProcess, Connection] | None:
        """The idle query worker's process and pipe, for a job to run in (it is the pool's no
        more), when it is up, not answering a call and has only compiled; None otherwise."""
        w = self._worker
        if w is None or not self._ready or not w.clean or self._lock.locked() or not w.proc.is_alive():
            return None
        self._worker = None
        return w.proc, w.conn

    async def compile(self, job: pb.Job, config, budget_s: float) -> None:
        err = await self._run("compile", job.SerializeToString(), budget_s, "compiling the query", config)
        if err is not None:
            raise _unmarshal(err)

    async def partition_parallel(self, job: pb.Job, config, budget_s: float) -> bool:
        return await self._run("partition_parallel", job.SerializeToString(), budget_s, "compiling the query",
                               config)

    async def test_query(self, request: pb.TestQueryRequest, budget_s: float) -> pb.TestQueryResponse:
        out = await self._run("test_query", request.SerializeToString(), budget_s, "the test query", clean=False)
        if isinstance(out, tuple):
            raise _unmarshal(out)
        return pb.TestQueryResponse.FromString(out)

    def close(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._drop(self._worker)
