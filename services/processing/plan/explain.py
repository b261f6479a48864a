"""A readable plan: what each statement reads, the stages it runs, and which path runs it.

    headwater query explain --query Q.asaql
"""

from __future__ import annotations

from typing import Any

from headwater.services.processing.plan.logical import LogicalPlan
from headwater.services.processing.sql import ast as A

__all__ = ["explain", "to_sql"]


def to_sql(n: Any) -> str:
    """An expression back as query text (normalised spacing and case)."""
    if isinstance(n, A.Literal):
        v = n.value
        if v is None:
            return "NULL"
        if isinstance(v, bool):
            return "1" if v else "0"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        return repr(v)
    if isinstance(n, A.Column):
        return ".".join(n.parts)
    if isinstance(n, A.Star):
        return ".".join(n.path + ["*"])
    if isinstance(n, A.SystemTimestamp):
        return "System.Timestamp()"
    if isinstance(n, A.SystemWindowId):
        return "System.Window().Id"
    if isinstance(n, A.Unary):
        return f"NOT {to_sql(n.operand)}" if n.op == "NOT" else f"{n.op}{to_sql(n.operand)}"
    if isinstance(n, A.Binary):
        return f"({to_sql(n.left)} {n.op} {to_sql(n.right)})"
    if isinstance(n, A.Between):
        return f"{to_sql(n.expr)} {'NOT ' if n.negated else ''}BETWEEN {to_sql(n.low)} AND {to_sql(n.high)}"
    if isinstance(n, A.InList):
        return f"{to_sql(n.expr)} {'NOT ' if n.negated else ''}IN ({', '.join(to_sql(i) for i in n.items)})"
    if isinstance(n, A.IsNull):
        return f"{to_sql(n.expr)} IS {'NOT ' if n.negated else ''}NULL"
    if isinstance(n, A.Like):
        return f"{to_sql(n.expr)} {'NOT ' if n.negated else ''}LIKE {to_sql(n.pattern)}"
    if isinstance(n, A.Case):
        parts = ["CASE"] + ([to_sql(n.operand)] if n.operand else [])
        parts += [f"WHEN {to_sql(c)} THEN {to_sql(v)}" for c, v in n.whens]
        parts += ([f"ELSE {to_sql(n.default)}"] if n.default is not None else []) + ["END"]
        return " ".join(parts)
    if isinstance(n, A.Cast):
        return f"{'TRY_CAST' if n.try_ else 'CAST'}({to_sql(n.expr)} AS {n.type_name})"
    if isinstance(n, A.Subscript):
        return ".".join([to_sql(n.base)] + n.parts)
    if isinstance(n, A.Call):
        name = f"{n.namespace}.{n.name}" if n.namespace else n.name
        args = "*" if n.star else ", ".join(to_sql(a) for a in n.args)
        out = f"{name}({'DISTINCT ' if n.distinct else ''}{args})"
        if n.over is not None:
            o = n.over
            bits = []
            if o.partition_by:
                bits.append("PARTITION BY " + ", ".join(to_sql(p) for p in o.partition_by))
            if o.order_by:
                bits.append("ORDER BY " + ", ".join(to_sql(x.expr) + (" DESC" if x.descending else "")
                                                    for x in o.order_by))
            if o.limit_duration:
                bits.append(f"LIMIT DURATION({o.limit_duration[0]}, {o.limit_duration[1]:g})")
            if o.when is not None:
                bits.append(f"WHEN {to_sql(o.when)}")
            out += f" OVER ({' '.join(bits)})"
        return out
    return type(n).__name__


def _us(v: int) -> str:
    if v == 0:
        return "0"
    for unit, size in (("d", 86_400_000_000), ("h", 3_600_000_000), ("min", 60_000_000), ("s", 1_000_000),
                       ("ms", 1000)):
        if v and v % size == 0:
            return f"{v // size}{unit}"
    return f"{v}us"


def _window(w) -> str:
    cfg = w.config
    fields = getattr(cfg, "__dataclass_fields__", {})
    args = ", ".join(f"{k}={_us(getattr(cfg, k)) if isinstance(getattr(cfg, k), int) else getattr(cfg, k)}"
                     for k in fields)
    label = f" id={w.label!r}" if w.label is not None else ""
    part = f" OVER (PARTITION BY {', '.join(to_sql(p) for p in w.partition_by)})" if w.partition_by else ""
    return f"{w.kind.name}({args}){part}{label}"


def explain(plan: LogicalPlan, physical) -> str:
    """Per statement: what it reads, each operator with its implementation (vectorised or
    row), and whether it runs per input partition (partition-parallel) or merged."""
    lines = [f"inputs: {', '.join(plan.inputs) or '-'}; references: {', '.join(plan.references) or '-'}; "
             f"outputs: {', '.join(plan.outputs)}"]
    for name, cols in plan.query.tables.items():
        lines.append(f"schema {name}: " + ", ".join(f"{c} {t}" for c, t in cols))
    for st, ph in zip(plan.statements, physical.statements):
        sel = st.select
        impl = "vectorised" if ph.vectorized else "row"
        par = "partition-parallel" if ph.partition_parallel else "merged across partitions"
        why = f"; row: {ph.reason}" if ph.reason else ""
        lines.append(f"{'output' if st.is_output else 'step'} [{st.target}] ({impl}, {par}{why})")
        src = sel.source
        if src.name.lower() in {s.lower() for s in plan.steps}:
            ts = " (step)"
        elif src.timestamp_by is not None:
            ts = f" TIMESTAMP BY {to_sql(src.timestamp_by)}"
        else:
            ts = " (arrival time)"
        over = f" OVER {', '.join(to_sql(o) for o in src.timestamp_over)}" if src.timestamp_over else ""
        part = f" PARTITION BY {src.partition_by}" if src.partition_by else ""
        lines.append(f"  read {src.name} AS {src.ref}{ts}{over}{part} [{impl}]")
        for j in sel.joins:
            lines.append(f"  {j.kind} join {j.source.name} AS {j.source.ref} ON {to_sql(j.on)} [{impl}]")
        for ap in sel.applies:
            lines.append(f"  {'outer' if ap.outer else 'cross'} apply {to_sql(ap.call)} AS {ap.alias} [row]")
        if sel.match is not None:
            lines.append("  match_recognize PATTERN " + repr(sel.match.pattern) + " [row]")
        if sel.where is not None:
            lines.append(f"  filter {to_sql(sel.where)} [{impl}]")
        if st.aggregate:
            keys = ", ".join(to_sql(k) for k in st.group_keys) or "-"
            lines.append(f"  aggregate keys {keys} windows {'; '.join(_window(w) for w in st.windows)} [{impl}]")
        if sel.having is not None:
            lines.append(f"  having {to_sql(sel.having)} [{impl}]")
        items = ", ".join(to_sql(i.expr) + (f" AS {i.alias}" if i.alias else "") for i in sel.items)
        lines.append(f"  project {items} [{impl}]")
    return "\n".join(lines) + "\n"
