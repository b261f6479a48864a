"""Query compilation and TestQuery in a worker process, with a time budget.

Compiling a query (CreateJob, UpdateJob) and running a test query are CPU work
in Python: a 1M-item IN list or a pathological query would hold the service's
event loop (and with it health and every other RPC) for as long as it takes.
They run here instead, in a process of their own; one that runs past its budget
is killed (and replaced) and the call fails with a clear error, so nothing a
caller sends can stall the service.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import multiprocessing
import os
import threading
import time

from headwater.errors import HeadwaterError, QueryCompileError, Reason
from headwater.interpreter import tune_interpreter
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


def _init_worker(parent: int) -> None:
    """A pool worker leaves when the service that started it is gone (kill -9 included), so
    none outlives it as an orphan: a thread checks the parent every second. (Not
    ``PR_SET_PDEATHSIG``: it fires when the *thread* that spawned the worker ends.)"""
    tune_interpreter()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="parent watch", daemon=True).start()


def _warm() -> None:
    import headwater.services.processing.engine_adapter  # noqa: F401


class QueryPool:
    """A worker process for compile and TestQuery calls (``spawn``: nothing of the
    service's gRPC state is inherited)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._closed = False

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                initargs=(os.getpid(),))
        return self._pool

    def warm(self) -> None:
        """Start the worker and import the engine in it now, not at the first call."""
        self._executor().submit(_warm)

    async def _run(self, fn, arg: bytes, budget_s: float, what: str, *more):
        pool = self._executor()
        loop = asyncio.get_running_loop()
        # The worker up first (a new one imports the engine): the budget is the call's own.
        await asyncio.wait_for(loop.run_in_executor(pool, _warm), 120)
        fut = loop.run_in_executor(pool, fn, arg, *more)
        try:
            return await asyncio.wait_for(fut, budget_s)
        except TimeoutError:
            self._kill(pool)
            raise HeadwaterError(
                Reason.INVALID_ARGUMENT,
                f"{what} took longer than its budget of {budget_s:g} s and was stopped: simplify the query "
                "(long IN lists, deep nesting)", metadata={"field": "query"}) from None
        except concurrent.futures.process.BrokenProcessPool:
            self._kill(pool)
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{what} exhausted its worker (memory?) and was stopped",
                                 metadata={"field": "query"}) from None

    def _kill(self, pool) -> None:
        """The worker past its budget goes; the next call starts a new one."""
        if self._pool is pool:
            self._pool = None
            if not self._closed:
                self.warm()  # the next one starts now
        for proc in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def compile(self, job: pb.Job, config, budget_s: float) -> None:
        err = await self._run(_compile, job.SerializeToString(), budget_s, "compiling the query", config)
        if err is not None:
            raise _unmarshal(err)

    async def partition_parallel(self, job: pb.Job, config, budget_s: float) -> bool:
        return await self._run(_partition_parallel, job.SerializeToString(), budget_s, "compiling the query",
                               config)

    async def test_query(self, request: pb.TestQueryRequest, budget_s: float) -> pb.TestQueryResponse:
        out = await self._run(_test_query, request.SerializeToString(), budget_s, "the test query")
        if isinstance(out, tuple):
            raise _unmarshal(out)
        return pb.TestQueryResponse.FromString(out)

    def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            self._kill(self._pool)
