"""The physical plan: per statement, its operators and the implementation each runs.

Every statement is a pipeline ``source -> [join | apply | match | analytic] -> filter ->
window aggregate | project``. An operator runs *vectorised* (over Arrow/Polars batches,
:mod:`headwater.services.processing.exec.vector`) where an implementation with the row
implementation's exact meaning exists, else *row* (one record at a time,
:mod:`headwater.services.processing.exec.statement`). The choice is per operator and
depends on what the statement does, never on how it is spelled: ``a.k``, ``k``,
``UPPER(k)``, a WITH step or arrival time instead of TIMESTAMP BY plan the same way.
Expressions inside a vectorised operator run as Polars expressions, or (one expression at
a time) through the row implementation where :mod:`.vexpr` has no exact form.

Partition-parallel (Stream Analytics' "embarrassingly parallel" rules): a statement whose
every source is read ``PARTITION BY PartitionId`` (or that groups by PartitionId) and whose
steps are partition-parallel too runs per input partition; others merge all partitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from headwater.functions import AggregateFunction, AggregateKind
from headwater.services.processing.plan.binder import join_fields, referenced_fields, star_only, walk
from headwater.services.processing.plan.logical import LogicalPlan, LogicalStatement
from headwater.services.processing.sql import ast as A
from headwater.windows import AlignedShape, SessionShape, SlidingShape, SnapshotShape

if TYPE_CHECKING:
    from headwater.pluginmanager import PluginManager

__all__ = ["PhysicalStatement", "PhysicalPlan", "plan_physical", "VECTOR_AGGREGATES"]

#: Aggregates with a vectorised implementation: every AggregateFunction.columnar kind.
VECTOR_AGGREGATES = frozenset(AggregateKind)
#: Those the sliding-window path computes.
_SLIDING_AGGREGATES = frozenset({AggregateKind.COUNT, AggregateKind.SUM, AggregateKind.AVG})
_ANALYTIC = {"lag", "last", "isfirst"}


@dataclass
class PhysicalStatement:
    target: str
    is_output: bool
    vectorized: bool
    operators: list[tuple[str, str]] = field(default_factory=list)  # (operator, vectorised | row)
    reason: str = ""  # why the statement runs row, if it does
    partition_parallel: bool = False
    window: str = ""  # aligned | session | snapshot | logic (the vectorised aggregate's window)


@dataclass
class PhysicalPlan:
    statements: list[PhysicalStatement]


def _aggregate_calls(ls: LogicalStatement, pm: PluginManager) -> list[tuple[A.Call, AggregateFunction]]:
    out = []
    nodes = [i.expr for i in ls.select.items] + ([ls.select.having] if ls.select.having is not None else [])
    for root in nodes:
        for n in walk(root):
            if isinstance(n, A.Call):
                fn = pm.functions.get(f"{n.name} DISTINCT") if n.distinct else pm.functions.get(n.name, n.namespace)
                if fn is None and n.distinct:
                    fn = pm.functions.get(n.name, n.namespace)
                if isinstance(fn, AggregateFunction):
                    out.append((n, fn))
    return out


def _row_reason(ls: LogicalStatement, plan: LogicalPlan, pm: PluginManager, vector_steps: set[str]) -> tuple[str, str]:
    """(reason the statement needs the row implementation or "", vectorised window kind)."""
    sel = ls.select
    if sel.joins:
        return _join_reason(ls, plan), ""
    if sel.applies:
        return "APPLY", ""
    if sel.match is not None:
        return "MATCH_RECOGNIZE", ""
    src = sel.source
    low = src.name.lower()
    if low in {s.lower() for s in plan.steps} and low not in vector_steps:
        return f"reads step {src.name}, which runs row", ""
    if src.timestamp_over:
        return "TIMESTAMP BY ... OVER (substreams)", ""
    if low in plan.query.tables:
        return "CREATE TABLE input", ""
    roots = [i.expr for i in sel.items] + [x for x in (sel.where, sel.having) if x is not None]
    for root in roots:
        for n in walk(root):
            if isinstance(n, A.Call) and not n.namespace and (n.name.lower() in _ANALYTIC or (
                    n.over is not None and (n.over.limit_duration or n.over.partition_by))):
                if not ls.aggregate and vector_analytic(n):
                    continue
                return f"analytic function {n.name}", ""
            if isinstance(n, A.SystemWindowId):
                return "System.Window().Id", ""
    if referenced_fields(ls, src.ref) is None and not star_only(ls, src.ref):
        return "whole records (the input as a value, x.*)", ""
    if not ls.aggregate:
        return "", ""
    if len(ls.windows) != 1 or ls.windows[0].label is not None:
        return "several windows (Windows(...))", ""
    win = ls.windows[0]
    spec = win.config.columnar()
    if isinstance(spec, SlidingShape) and not win.partition_by:
        for call, fn in _aggregate_calls(ls, pm):
            if call.namespace or fn.columnar not in _SLIDING_AGGREGATES or call.distinct \
                    or call.over is not None or len(call.args) > 1:
                return f"aggregate {call.name} over a SlidingWindow", ""
        return "", "sliding"
    if win.kind.buffered or win.kind.per_group:
        return f"{win.kind.name} (buffered per group)", ""
    if isinstance(spec, AlignedShape):
        if win.partition_by:
            return "window partitioned by OVER", ""
        kind = "aligned"
    elif isinstance(spec, SessionShape):
        keys = [_field(k) for k in ls.group_keys]
        part = [_field(p) for p in win.partition_by]
        if any(k is None for k in keys + part) or part != keys:
            return "SessionWindow partitioned other than by its group keys", ""
        kind = "session"
    elif isinstance(spec, SnapshotShape):
        kind = "snapshot"
    elif win.partition_by or win.kind.partitioned:
        return f"{win.kind.name} partitioned by OVER", ""
    else:
        kind = "logic"
    for call, fn in _aggregate_calls(ls, pm):
        col = fn.columnar
        if call.namespace or col not in VECTOR_AGGREGATES or call.over is not None or fn.ordered:
            return f"aggregate {call.name}", kind
        if call.distinct and col is not AggregateKind.COUNT_DISTINCT:
            return f"aggregate {call.name}(DISTINCT)", kind
        if len(call.args) > 1 or fn.constant_args:
            return f"aggregate {call.name}", kind
        if call.args and isinstance(call.args[0], A.Column) and len(call.args[0].parts) == 1 and \
                call.args[0].parts[0].lower() in {src.ref.lower()}:
            return f"{call.name} of the whole record", kind
    return "", kind


def _join_reason(ls: LogicalStatement, plan: LogicalPlan) -> str:
    """A statement with a JOIN runs vectorised (exec/vjoin.py) when it is one JOIN of two
    streams or of a stream and reference data, then WHERE and a projection of fields and
    expressions (no aggregate, analytic function, APPLY, MATCH_RECOGNIZE or whole records)."""
    sel = ls.select
    if len(sel.joins) != 1 or sel.applies or sel.match is not None:
        return "JOIN (more than one, or with APPLY/MATCH_RECOGNIZE)"
    if ls.aggregate or sel.having is not None:
        return "JOIN with an aggregate"
    for src in (sel.source, sel.joins[0].source):  # a row step's rows come as batches of their values
        low = src.name.lower()
        if src.timestamp_over:
            return "JOIN over TIMESTAMP BY ... OVER (substreams)"
        if low in plan.query.tables:
            return "JOIN of a CREATE TABLE input"
        if join_fields(ls, src.ref) is None:
            return "JOIN reading whole records (*, the alias as a value)"
    if sel.source.name.lower() in {r.lower() for r in plan.references}:
        return "JOIN from reference data"
    roots = [i.expr for i in sel.items] + [x for x in (sel.where, sel.joins[0].on) if x is not None]
    for root in roots:
        for n in walk(root):
            if isinstance(n, A.Call) and not n.namespace and (n.name.lower() in _ANALYTIC or n.over is not None):
                return f"JOIN with analytic function {n.name}"
            if isinstance(n, A.SystemWindowId):
                return "System.Window().Id"
    return ""


def vector_analytic(n: A.Call) -> bool:
    """LAG and LAST have a vectorised implementation (exec/vector.py, VectorAnalytic) over
    ``OVER ([PARTITION BY ...] LIMIT DURATION(...))`` without WHEN, with constant offset and
    default; the others (WHEN, ISFIRST, aggregates OVER) run row by row."""
    low = n.name.lower()
    over = n.over
    if low not in ("lag", "last") or n.star or over is None or not over.limit_duration or over.when is not None \
            or over.order_by or not n.args:
        return False
    if low == "lag":
        if len(n.args) > 3 or (len(n.args) >= 2 and not (isinstance(n.args[1], A.Literal) and type(
                n.args[1].value) is int and n.args[1].value >= 1)):
            return False
        return len(n.args) < 3 or isinstance(n.args[2], A.Literal)
    return len(n.args) == 1 or (len(n.args) == 2 and isinstance(n.args[1], A.Literal))


def _analytic_calls(ls: LogicalStatement) -> list[A.Call]:
    sel = ls.select
    roots = [i.expr for i in sel.items] + [x for x in (sel.where, sel.having) if x is not None]
    return [n for root in roots for n in walk(root) if isinstance(n, A.Call) and not n.namespace
            and n.name.lower() in _ANALYTIC]


def _field(node: A.Node) -> str | None:
    if isinstance(node, A.Column):
        return node.parts[-1].lower()
    return None


def _parallel(ls: LogicalStatement, plan: LogicalPlan, parallel_steps: set[str]) -> bool:
    sel = ls.select
    sources = [sel.source] + [j.source for j in sel.joins]
    steps = {s.lower() for s in plan.steps}
    for s in sources:
        low = s.name.lower()
        if low in steps:
            if low not in parallel_steps:
                return False
        elif low in {r.lower() for r in plan.references}:
            continue
        elif not (s.partition_by and s.partition_by.lower() == "partitionid"):
            by_partition = ls.aggregate and any(_field(k) == "partitionid" for k in ls.group_keys)
            if not by_partition:
                return False
    return True


def plan_physical(plan: LogicalPlan, pm: PluginManager, vectorize: bool = True) -> PhysicalPlan:
    out = []
    vector_steps: set[str] = set()
    parallel_steps: set[str] = set()
    for ls in plan.statements:
        reason, kind = _row_reason(ls, plan, pm, vector_steps) if vectorize else ("vectorising disabled", "")
        vec = not reason
        sel = ls.select
        impl = "vectorised" if vec else "row"
        ops = [(f"source {sel.source.name} AS {sel.source.ref}" +
                (" TIMESTAMP BY" if sel.source.timestamp_by is not None else " (arrival time)"), impl)]
        for j in sel.joins:
            ops.append((f"{j.kind} join {j.source.name} AS {j.source.ref}", impl))
        for ap in sel.applies:
            ops.append((f"{'outer' if ap.outer else 'cross'} apply {ap.call.name} AS {ap.alias}", "row"))
        if sel.match is not None:
            ops.append(("match_recognize", "row"))
        calls = _analytic_calls(ls)
        if calls:
            ops.append(("analytic " + ", ".join(dict.fromkeys(c.name.upper() for c in calls)), impl))
        if sel.where is not None:
            ops.append(("filter (WHERE)", impl))
        if ls.aggregate:
            w = ls.windows[0] if len(ls.windows) == 1 else None
            wname = w.kind.name if w is not None else "Windows(...)"
            ops.append((f"window aggregate {wname}" + (f" [{kind}]" if vec else ""), impl))
        else:
            ops.append(("project", impl))
        par = _parallel(ls, plan, parallel_steps)
        if par:
            parallel_steps.add(ls.target.lower())
        if vec and not ls.is_output:
            vector_steps.add(ls.target.lower())
        out.append(PhysicalStatement(ls.target, ls.is_output, vec, ops, reason, par, kind))
    return PhysicalPlan(out)
