"""The query engine's public entry points.

    compiled = compile_query(text, references={"rules"})      # QueryCompileError on bad text
    rt = compiled.runtime(OrderingPolicy.from_seconds(late=5, ooo=0, action="adjust"),
                          reference_data={"rules": rows})
    rt.feed("input", rows, arrival_times=[us, ...])          # batches per input, any time
    rt.feed_bodies("input", [b'{"a":1}', ...], arrival_times,  # JSON bodies, decoded in one go;
                   partition_ids=[...])                        # each input partition ordered apart
    rt.advance_time(now_us)                                   # idle inputs: watermark moves on
    rows = rt.take()                                          # {output alias: [row, ...]} so far
    timed = rt.take_with_time()                               # {output alias: [(ts_us, row), ...]}
    blob = rt.snapshot(); rt2 = compiled.runtime(...); rt2.restore(blob)
    rt.flush()                                                # end of input: close every window
    rt.counters                                               # late/early/out_of_order/dropped/...

Times are ``int`` microseconds since 1970-01-01 UTC. Row values are Python values
(datetimes as ``datetime``); :func:`format_rows` gives JSON-ready rows with datetimes
as ``2021-12-10T10:00:00.0000000Z``.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from headwater.errors import QueryCompileError
from headwater.functions import format_datetime
from headwater.services.processing.exec.base import MAX_TS, MIN_TS, QueryRuntimeError
from headwater.services.processing.exec.scan import Source
from headwater.services.processing.sql import ast as A
from headwater.services.processing.plan.binder import analyze
from headwater.services.processing.plan.logical import LogicalPlan
from headwater.services.processing.sql.parser import parse
from headwater.services.processing.exec.compile import ExprCompiler, Scope, plan_statement
from headwater.services.processing.state import snapshot
from headwater.services.processing.exec.watermarks import Counters, OrderingPolicy

__all__ = ["CompiledQuery", "Runtime", "compile_query", "format_rows", "format_value", "OrderingPolicy",
           "QueryRuntimeError", "Counters"]


def compile_query(text: str, pm=None, *, references: Iterable[str] = ()) -> CompiledQuery:
    """Parse, check and plan ``text``; every problem is a QueryCompileError with line/column.

    ``references`` names the static reference inputs (joined without a time bound).
    """
    if not isinstance(text, str):
        raise QueryCompileError("the query must be text", line=1, column=1)
    if pm is None:
        from headwater.pluginmanager import get_plugin_manager

        pm = get_plugin_manager()
    pm.collect()
    refs = {r.lower() for r in references}
    old = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(max(old, 3000))
        query = parse(text)
        plan = analyze(query, pm, refs)
        compiled = CompiledQuery(text, plan, pm, refs)
        compiled.runtime()  # plan once so every planning error surfaces at compile time
    except RecursionError:
        raise QueryCompileError("the query is nested too deeply", line=1, column=1) from None
    finally:
        sys.setrecursionlimit(old)
    return compiled


@dataclass
class CompiledQuery:
    text: str
    plan: LogicalPlan
    pm: Any
    references: set[str]

    @property
    def inputs(self) -> list[str]:
        return list(self.plan.inputs)

    @property
    def outputs(self) -> list[str]:
        return list(self.plan.outputs)

    def explain(self) -> str:
        """The plan as text: per statement what it reads and the stages it runs, and the path."""
        from headwater.services.processing.exec.columnar import try_columnar
        from headwater.services.processing.plan.explain import explain

        return explain(self.plan, try_columnar(self, OrderingPolicy()) is not None)

    def runtime(self, policy: OrderingPolicy | None = None, *,
                reference_data: dict[str, list[dict]] | None = None, columnar: bool = True) -> Runtime:
        return Runtime(self, policy or OrderingPolicy(), reference_data or {}, columnar)


class Runtime:
    """A running query: feed events per input, take output rows per output alias."""

    def __init__(self, compiled: CompiledQuery, policy: OrderingPolicy, reference_data: dict[str, list[dict]],
                 columnar: bool = True) -> None:
        self.compiled = compiled
        self.policy = policy
        self.counters = Counters()
        self.refs = {k.lower(): list(v) for k, v in reference_data.items()}
        self.sources: dict[str, list[Source]] = {}
        self.watermark = MIN_TS
        self.outputs: dict[str, list[tuple[int, dict]]] = {o: [] for o in compiled.plan.outputs}
        comp = ExprCompiler(compiled.pm)
        plan = compiled.plan
        steps = {s.lower() for s in plan.steps}
        self.statements = []
        # queues[i][slot]: pending (ts, seq, record) for statement i's input slot
        self.queues: list[list[list]] = []
        self.subscribers: dict[str, list[tuple[int, int]]] = {}
        self._seq = 0

        def make_source(src: A.Source) -> Source:
            alias = src.ref
            scope = Scope({alias.lower()}, alias.lower())
            ts = comp.compile(src.timestamp_by, scope) if src.timestamp_by is not None else None
            over = [comp.compile(o, scope) for o in src.timestamp_over]
            field = None
            tb = src.timestamp_by
            if isinstance(tb, A.Column) and (len(tb.parts) == 1 or (len(tb.parts) == 2 and
                                                                    tb.parts[0].lower() == alias.lower())):
                field = tb.parts[-1]
            s = Source(src.name, alias, ts, over, policy, compiled.plan.query.tables.get(src.name.lower()), field)
            self.sources.setdefault(src.name.lower(), []).append(s)
            return s

        self._slots: list[list[Any]] = []
        for i, ls in enumerate(plan.statements):
            ps = plan_statement(ls, comp, steps, compiled.references, self._ref_rows, make_source)
            self.statements.append(ps)
            self.queues.append([[] for _ in ps.inputs])
            for k, (kind, what) in enumerate(ps.inputs):
                if kind == "step":
                    self.subscribers.setdefault(what, []).append((i, k))
            self._slots.append([what for kind, what in ps.inputs])
        self.columnar = None
        self.mode: str | None = None
        if columnar:
            from headwater.services.processing.exec.columnar import try_columnar

            self.columnar = try_columnar(compiled, policy)

    def _ref_rows(self, name: str) -> list[dict]:
        return self.refs.get(name, [])

    def set_reference(self, name: str, rows: list[dict]) -> None:
        self.refs[name.lower()] = list(rows)

    # -- input ---------------------------------------------------------------------
    def feed(self, input_name: str, rows: list[dict], arrival_times: list[int] | None = None,
             now: int | None = None, partition_ids: list | None = None) -> None:
        """Add a batch of decoded events of one input (arrival times in us, or None for
        "arrived on time": event time for TIMESTAMP BY inputs, ``now`` otherwise).

        ``partition_ids`` (one per event) keeps each input partition's event ordering and
        watermark apart, as Stream Analytics does; the input's watermark is the lowest.
        """
        srcs = self.sources.get(input_name.lower())
        if srcs is None:
            return
        if self._use_columnar(arrival_times):
            self.columnar.feed_rows(rows, arrival_times, self.counters, partition_ids)
            return
        if now is None:
            now = int(time.time() * 1e6)
        self.counters.events_in += len(rows)
        with _fewer_gc_passes():
            for s in srcs:
                s.push(rows, arrival_times, now, self.counters, partition_ids)
            self._advance()

    def feed_bodies(self, input_name: str, bodies: list[bytes], arrival_times: list[int] | None = None,
                    now: int | None = None, partition_ids: list | None = None) -> None:
        """Add a batch of JSON bodies (one event each, or JSON arrays of events)."""
        srcs = self.sources.get(input_name.lower())
        if srcs is None:
            return
        if self._use_columnar(arrival_times):
            self.columnar.feed_bodies(bodies, arrival_times, self.counters, partition_ids)
            return
        from headwater.serializers import decode_json_bodies

        rows, arrivals, parts = decode_json_bodies(bodies, arrival_times, self.counters, partition_ids)
        self.feed(input_name, rows, arrivals, now, parts)

    def _use_columnar(self, arrival_times) -> bool:
        """The columnar path serves every query it supports; decided on the first batch."""
        if self.mode is None:
            self.mode = "columnar" if self.columnar is not None else "row"
        return self.mode == "columnar"

    def advance_time(self, now: int) -> None:
        """The arrival clock moved to ``now`` (us): idle inputs' watermarks advance."""
        if self.mode == "columnar":
            self.columnar.advance_time(now)
            return
        for srcs in self.sources.values():
            for s in srcs:
                s.clock.advance_time(now)
        with _fewer_gc_passes():
            self._advance()

    def flush(self) -> None:
        """End of input: everything is final."""
        if self.mode == "columnar":
            self.columnar.flush(self.outputs)
            return
        with _fewer_gc_passes():
            self._advance(MAX_TS)

    def take(self) -> dict[str, list[dict]]:
        """Output rows produced since the last take, per output alias."""
        return {name: [r for _, r in rows] for name, rows in self.take_with_time().items()}

    def take_with_time(self) -> dict[str, list[tuple[int, dict]]]:
        """Like :meth:`take`, each row with its System.Timestamp() (us)."""
        if self.mode == "columnar":
            self.columnar.drain(self.outputs)
        out = {name: list(rows) for name, rows in self.outputs.items()}
        for rows in self.outputs.values():
            rows.clear()
        return out

    # -- the time loop -------------------------------------------------------------------
    def _advance(self, force: int | None = None) -> None:
        if force is not None:
            w = force
        else:
            marks = [s.watermark() for srcs in self.sources.values() for s in srcs]
            w = min(marks) if marks else MIN_TS
        if w < self.watermark:
            w = self.watermark
        self.watermark = w
        for srcs in self.sources.values():
            for s in srcs:
                released = s.release(w)
                if released:
                    for i in range(len(self.statements)):
                        for k, slot in enumerate(self._slots[i]):
                            if slot is s:
                                q = self.queues[i][k]
                                for ts, rec in released:
                                    q.append((ts, self._seq, rec))
                                    self._seq += 1
        for i, ps in enumerate(self.statements):
            batches = []
            for q in self.queues[i]:
                q.sort(key=lambda t: (t[0], t[1]))
                batches.append([(ts, rec) for ts, _, rec in q])
                q.clear()
            rows = ps.op.run(batches, w)
            if not rows:
                continue
            if ps.is_output:
                self.outputs[ps.target].extend(rows)
            for si, k in self.subscribers.get(ps.target.lower(), ()):
                q = self.queues[si][k]
                for ts, rec in rows:
                    q.append((ts, self._seq, rec))
                    self._seq += 1

    # -- checkpoints ------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The whole state (sources, windows, joins, pending output) as bytes."""
        if self.mode == "columnar":
            return snapshot.dumps({"columnar": self.columnar.snapshot(), "counters": self.counters,
                                   "outputs": self.outputs}, self.compiled.text)
        state = {
            "sources": {k: [s.snapshot() for s in v] for k, v in self.sources.items()},
            "statements": [ps.op.snapshot() for ps in self.statements],
            "queues": self.queues,
            "watermark": self.watermark,
            "outputs": self.outputs,
            "counters": self.counters,
            "seq": self._seq,
        }
        return snapshot.dumps(state, self.compiled.text)

    def restore(self, blob: bytes) -> None:
        """Continue from :meth:`snapshot` (of a runtime of the same query)."""
        state = snapshot.loads(blob, self.compiled.text)
        self.counters = state["counters"]
        self.outputs = state["outputs"]
        if "columnar" in state:
            if self.columnar is None:
                raise snapshot.SnapshotError("the snapshot is of the columnar path; build the runtime with "
                                             "columnar=True")
            self.mode = "columnar"
            self.columnar.restore(state["columnar"])
            return
        for k, v in state["sources"].items():
            for s, st in zip(self.sources.get(k, []), v):
                s.restore(st)
        for ps, st in zip(self.statements, state["statements"]):
            ps.op.restore(st)
        self.queues = state["queues"]
        self.watermark = state["watermark"]
        self._seq = state["seq"]


@contextmanager
def _fewer_gc_passes():
    """The row path allocates a few small objects per event, all short-lived or kept in
    window state: with the default thresholds the cyclic collector runs every 700
    allocations and costs ~20% of the time. Raise the first threshold while a batch runs."""
    old = gc.get_threshold()
    if old[0] >= 50_000:
        yield
        return
    gc.set_threshold(50_000, old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def format_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return format_datetime(v)
    if isinstance(v, dict):
        return {k: format_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [format_value(x) for x in v]
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return None
    return v


def format_rows(rows: list[dict]) -> list[dict]:
    """JSON-ready rows: datetimes as ``2021-12-10T10:00:00.0000000Z``."""
    return [format_value(r) for r in rows]
