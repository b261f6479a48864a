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

from headwater.errors import HeadwaterError, QueryCompileError, Reason
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


def _compile(job_bytes: bytes):
    from headwater.services.processing import engine_adapter

    try:
        engine_adapter.compile_job(pb.Job.FromString(job_bytes))
    except HeadwaterError as exc:
        return _marshal(exc)
    return None


def _test_query(request_bytes: bytes):
    from headwater.services.processing import engine_adapter

    try:
        return engine_adapter.test_query(pb.TestQueryRequest.FromString(request_bytes)).SerializeToString()
    except HeadwaterError as exc:
        return _marshal(exc)


def _warm() -> None:
    import headwater.services.processing.engine_adapter  # noqa: F401


class QueryPool:
    """A worker process for compile and TestQuery calls (``spawn``: nothing of the
    service's gRPC state is inherited)."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def _executor(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))
        return self._pool

    def warm(self) -> None:
        """Start the worker and import the engine in it now, not at the first call."""
        self._executor().submit(_warm)

    async def _run(self, fn, arg: bytes, budget_s: float, what: str):
        pool = self._executor()
        fut = asyncio.get_running_loop().run_in_executor(pool, fn, arg)
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
        for proc in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(Exception):
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    async def compile(self, job: pb.Job, budget_s: float) -> None:
        err = await self._run(_compile, job.SerializeToString(), budget_s, "compiling the query")
        if err is not None:
            raise _unmarshal(err)

    async def test_query(self, request: pb.TestQueryRequest, budget_s: float) -> pb.TestQueryResponse:
        out = await self._run(_test_query, request.SerializeToString(), budget_s, "the test query")
        if isinstance(out, tuple):
            raise _unmarshal(out)
        return pb.TestQueryResponse.FromString(out)

    def close(self) -> None:
        if self._pool is not None:
            self._kill(self._pool)
