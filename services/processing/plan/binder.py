"""Semantic checks and name resolution: :class:`ast.Query` -> :class:`logical.LogicalPlan`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from headwater.services.processing.plan.logical import LogicalPlan, LogicalStatement, WindowSpec
from headwater.services.processing.sql import ast as A
from headwater.services.processing.sql.diagnostics import error, suggest
from headwater.windows import UNITS, WindowArgs, WindowKind

if TYPE_CHECKING:
    from headwater.pluginmanager import PluginManager

__all__ = ["analyze", "DEFAULT_OUTPUT", "window_args", "duration_us"]

DEFAULT_OUTPUT = "output"
_NAMED = {"duration", "hop", "offset", "timeout", "maxduration"}


def duration_us(unit: str, n: float, pos) -> int:
    try:
        u = UNITS[unit.lower()]
    except KeyError:
        raise error(f"unknown time unit {unit!r}{suggest(unit, UNITS)}", pos) from None
    return int(round(n * u))


def _number(node: A.Node) -> float | None:
    if isinstance(node, A.Literal) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return float(node.value)
    return None


#: what the positional durations of the builtin windows are, for error messages
_POSITIONAL = {"tumblingwindow": ("size", "offset"), "hoppingwindow": ("size", "hop", "offset"),
               "slidingwindow": ("size",), "sessionwindow": ("timeout", "maximum duration")}
_POSITIONAL.update({k.removesuffix("window"): v for k, v in list(_POSITIONAL.items())})


def window_args(call: A.Call) -> WindowArgs:
    positional: list[int] = []
    named: dict[str, int] = {}
    extra: list[Any] = []
    unit: str | None = None
    for arg in call.args:
        if isinstance(arg, A.Call) and arg.name.lower() in _NAMED and not arg.namespace:
            size = _number(arg.args[1]) if len(arg.args) == 2 else None
            if size is None or not isinstance(arg.args[0], A.Column):
                raise error(f"{arg.name} takes (unit, size)", arg.pos)
            key = arg.name.lower()
            if key in named:
                raise error(f"{arg.name} is given twice", arg.pos)
            named[key] = duration_us(arg.args[0].parts[-1], size, arg.args[0].pos)
        elif isinstance(arg, A.Column) and len(arg.parts) == 1:
            if arg.parts[0].lower() not in UNITS:
                raise error(f"unknown time unit {arg.parts[0]!r}{suggest(arg.parts[0], UNITS)}", arg.pos)
            unit = arg.parts[0]
        elif isinstance(arg, A.Literal) and (number := _number(arg)) is not None:
            if unit is None:  # not a duration: the window kind decides (CountWindow(n))
                extra.append(arg.value)
            else:
                positional.append(duration_us(unit, number, arg.pos))
        elif isinstance(arg, A.Literal):
            if unit is not None and isinstance(arg.value, str):
                names = _POSITIONAL.get(call.name.lower(), ())
                what = names[len(positional)] if len(positional) < len(names) else "duration"
                n = call.args.index(arg) + 1
                raise error(f"{call.name}: the {what} (argument {n}) must be a number, got {arg.value!r}",
                            arg.pos)
            extra.append(arg.value)
        else:
            raise error(f"{call.name}: window sizes must be constants", arg.pos)
    part = bool(call.over and call.over.partition_by)
    return WindowArgs(tuple(positional), named, part, tuple(extra))


class _Analyzer:
    def __init__(self, pm: PluginManager, references: Iterable[str], inputs: Iterable[str] | None = None) -> None:
        self.pm = pm
        self.references = {r.lower() for r in references}
        #: the stream inputs the caller has (a job's input aliases); None: not known, any
        #: name that is not a step or reference is taken for an input
        self.inputs = None if inputs is None else {i.lower(): i for i in inputs}

    def window_kind(self, call: A.Call) -> WindowKind | None:
        if call.namespace:
            return None
        return self.pm.windows.get(call.name)

    def configure(self, kind: WindowKind, call: A.Call, label: str | None = None) -> WindowSpec:
        args = window_args(call)
        if call.over is not None and call.over.partition_by and not kind.partitioned:  # args.partition_by
            raise error(f"{call.name} does not take OVER (PARTITION BY ...)", call.over.pos)
        try:
            config = kind.configure(args)
        except ValueError as exc:
            raise error(f"{call.name}: {exc}", call.pos) from None
        return WindowSpec(kind, config, label, list(call.over.partition_by) if call.over else [], call.pos)

    def group_by(self, sel: A.Select, st: LogicalStatement) -> None:
        windows: list[WindowSpec] = []
        snapshot_nodes: list[A.Node] = []
        keys: list[A.Node] = []
        first_window: A.Node | None = None
        for g in sel.group_by:
            if isinstance(g, A.SystemTimestamp):
                snapshot_nodes.append(g)
                continue
            if isinstance(g, A.Call) and not g.namespace and g.name.lower() == "windows":
                if first_window is not None:
                    raise error("only one window per GROUP BY; use Windows(...) for several", g.pos)
                first_window = g
                windows.extend(self.windows_call(g))
                continue
            if isinstance(g, A.Call) and (kind := self.window_kind(g)) is not None:
                if first_window is not None:
                    raise error("only one window per GROUP BY; use Windows(...) for several", g.pos)
                first_window = g
                windows.append(self.configure(kind, g))
                continue
            if isinstance(g, A.Call) and self.pm.functions.get(g.name, g.namespace) is None:
                known = [k.name for k in self.pm.windows.unique()] + [f.name for f in self.pm.functions.unique()]
                raise error(f"unknown window or function {g.name!r}{suggest(g.name, known)}", g.pos)
            self.no_window_inside(g, group_by=True)
            keys.append(g)
        if not windows:
            if not snapshot_nodes:
                raise error("GROUP BY needs a window: a window function or System.Timestamp()",
                            sel.group_by[0].pos)
            kind = self.pm.windows.get("SnapshotWindow")
            if kind is None:
                raise error("no snapshot window kind is registered", snapshot_nodes[0].pos)
            windows.append(WindowSpec(kind, kind.configure(WindowArgs()), None, [], snapshot_nodes[0].pos))
        else:
            keys.extend(snapshot_nodes)
        st.windows, st.group_keys = windows, keys

    def windows_call(self, call: A.Call) -> list[WindowSpec]:
        specs = []
        labelled = None
        for arg in call.args:
            label = None
            inner = arg
            if isinstance(arg, A.Call) and arg.name.lower() == "window" and not arg.namespace:
                if len(arg.args) != 2 or not isinstance(arg.args[0], A.Literal) or arg.args[0].value is None:
                    raise error("Window takes ('id', window)", arg.pos)
                label, inner = str(arg.args[0].value), arg.args[1]
            if labelled is None:
                labelled = label is not None
            elif labelled != (label is not None):
                raise error("either all windows in Windows(...) have an id or none has", arg.pos)
            if isinstance(inner, A.SystemTimestamp):
                snapshot = self.pm.windows.get("SnapshotWindow")
                if snapshot is None:  # as GROUP BY System.Timestamp() reports it
                    raise error("no snapshot window kind is registered", inner.pos)
                specs.append(WindowSpec(snapshot, snapshot.configure(WindowArgs()), label, [], inner.pos))
                continue
            kind = self.window_kind(inner) if isinstance(inner, A.Call) else None
            if kind is None or not isinstance(inner, A.Call):
                raise error("Windows(...) takes window functions", inner.pos)
            specs.append(self.configure(kind, inner, label))
        if not specs:
            raise error("Windows(...) needs at least one window", call.pos)
        labels = [s.label for s in specs if s.label is not None]
        if len(labels) != len(set(labels)):
            raise error("window ids in Windows(...) must be unique", call.pos)
        return specs

    def grouped_only(self, sel: A.Select, st: LogicalStatement, aliases: set[str]) -> None:
        """Outside aggregates, SELECT and HAVING may read only GROUP BY keys (or fields of them)."""
        from headwater.functions import AggregateFunction
        from headwater.services.processing.plan.explain import to_sql

        def path(col: A.Column) -> tuple[str, ...]:
            parts = [p.lower() for p in col.parts]
            if len(parts) > 1 and parts[0] in aliases:
                parts = parts[1:]
            return tuple(parts)

        key_paths = {path(k) for k in st.group_keys if isinstance(k, A.Column)}
        key_exprs = {to_sql(k).lower() for k in st.group_keys}
        select_items = {i.alias.lower(): i.expr for i in sel.items if i.alias}

        def check(n: A.Node, seen: frozenset = frozenset()) -> None:
            if isinstance(n, (A.Literal, A.SystemTimestamp, A.SystemWindowId, A.Star)):
                return
            if isinstance(n, A.Call) and (n.over is not None or
                                          isinstance(self.pm.functions.get(n.name, n.namespace), AggregateFunction)
                                          or (n.distinct and self.pm.functions.get(f"{n.name} DISTINCT"))):
                return
            if to_sql(n).lower() in key_exprs:
                return
            if isinstance(n, A.Call) and n.args and isinstance(n.args[0], A.Column) and \
                    getattr(self.pm.functions.get(n.name, n.namespace), "unit_arg", False):
                for a in n.args[1:]:  # DATEADD(minute, ...): the first argument is a date part
                    check(a, seen)
                return
            if isinstance(n, A.Column):
                p = path(n)
                if any(p[:len(k)] == k for k in key_paths):
                    return
                target = select_items.get(n.parts[0].lower()) if len(n.parts) == 1 else None
                if target is not None and target not in seen:
                    check(target, seen | {target})
                    return
                raise error(f"{'.'.join(n.parts)} must be in GROUP BY or inside an aggregate", n.pos)
            for v in vars(n).values():
                if isinstance(v, A.Node):
                    check(v, seen)
                elif isinstance(v, (list, tuple)):
                    for x in v:
                        if isinstance(x, A.Node):
                            check(x, seen)
                        elif isinstance(x, tuple):
                            for y in x:
                                if isinstance(y, A.Node):
                                    check(y, seen)

        for item in sel.items:
            check(item.expr)
        if sel.having is not None:
            check(sel.having)

    def expressions(self, sel: A.Select) -> None:
        """Checks of single expressions: date parts of DATEADD & co., CASE with ELSE."""
        for n in _walk(sel):
            if isinstance(n, A.Case) and n.default is None:
                raise error("CASE needs an ELSE (Stream Analytics requires it; ELSE NULL for no value)", n.pos)
            if isinstance(n, A.Call) and n.args and isinstance(n.args[0], A.Column) and len(n.args[0].parts) == 1:
                fn = self.pm.functions.get(n.name, n.namespace)
                units = getattr(fn, "units", None) if getattr(fn, "unit_arg", False) else None
                part = n.args[0].parts[0]
                if units and part.lower() not in units:
                    raise error(f"{n.name}: unknown date part {part!r}{suggest(part, units)}", n.args[0].pos)

    def no_window_inside(self, node: A.Node, group_by: bool = False) -> None:
        for n in _walk(node):
            if isinstance(n, A.Call) and self.window_kind(n) is not None:
                raise error(f"{n.name} can only be used directly in GROUP BY", n.pos)
            if group_by and isinstance(n, A.SystemTimestamp) and n is not node:
                raise error("a window must be specified: an expression of System.Timestamp() is "
                            "not a window", n.pos)

    def is_aggregate(self, node: A.Node) -> bool:
        return self.find_aggregate(node) is not None

    def find_aggregate(self, node: A.Node) -> A.Node | None:
        from headwater.functions import AggregateFunction

        for n in _walk(node):
            if isinstance(n, A.Call) and not (n.over and (n.over.limit_duration or n.over.partition_by)):
                fn = self.pm.functions.get(n.name, n.namespace) if not n.distinct else \
                    self.pm.functions.get(f"{n.name} DISTINCT") or self.pm.functions.get(n.name, n.namespace)
                if isinstance(fn, AggregateFunction):
                    return n
        return None

    def run(self, query: A.Query) -> LogicalPlan:
        steps: dict[str, str] = {}
        for name, _stmt, pos in query.steps:
            if name.lower() in steps:
                raise error(f"step {name!r} is defined twice", pos)
            steps[name.lower()] = name
        inputs: dict[str, str] = {}
        refs: dict[str, str] = {}
        statements: list[LogicalStatement] = []
        outputs: dict[str, str] = {}
        defined: set[str] = set()
        for name, stmt, _pos in query.steps:
            for sel in stmt.selects:
                if sel.into is not None:
                    raise error("a WITH step cannot have INTO", sel.into_pos)
                statements.append(self.statement(sel, name, False, steps, defined, inputs, refs))
            defined.add(name.lower())
        for stmt in query.statements:
            for sel in stmt.selects:
                target = sel.into or DEFAULT_OUTPUT
                if target.lower() in steps:
                    raise error(f"INTO {target!r} names a step; outputs and steps need different names",
                                sel.into_pos or sel.pos)
                outputs.setdefault(target.lower(), target)
                statements.append(self.statement(sel, outputs[target.lower()], True, steps, defined | set(steps),
                                                 inputs, refs))
        return LogicalPlan(query, list(inputs.values()), list(refs.values()), [n for n, _, _ in query.steps],
                           list(outputs.values()), statements)

    def statement(self, sel: A.Select, target: str, is_output: bool, steps: dict[str, str], defined: set[str],
                  inputs: dict[str, str], refs: dict[str, str]) -> LogicalStatement:
        st = LogicalStatement(sel, target, is_output)
        aliases: dict[str, A.Node] = {}
        for src in [sel.source] + [j.source for j in sel.joins]:
            low = src.name.lower()
            if low in steps:
                if low not in defined:
                    raise error(f"step {src.name!r} is used before it is defined", src.pos)
                if src.timestamp_by is not None:
                    raise error("TIMESTAMP BY applies to inputs, not to steps", src.timestamp_by.pos)
            elif low in self.references:
                refs.setdefault(low, src.name)
                if src.timestamp_by is not None:
                    raise error("TIMESTAMP BY does not apply to a reference input", src.timestamp_by.pos)
            else:
                if self.inputs is not None and low not in self.inputs:
                    known = list(self.inputs.values()) + list(steps.values()) + sorted(self.references)
                    raise error(f"{src.name!r} is neither an input nor a WITH step"
                                f"{suggest(src.name, known)}", src.pos)
                inputs.setdefault(low, src.name)
            if src.timestamp_by is not None:
                self.no_window_inside(src.timestamp_by)
                for n in _walk(src.timestamp_by):
                    if isinstance(n, A.SystemTimestamp):
                        raise error("TIMESTAMP BY cannot use System.Timestamp()", n.pos)
            if src.ref.lower() in aliases:
                raise error(f"alias {src.ref!r} is used twice", src.pos)
            aliases[src.ref.lower()] = src
        if sel.source.name.lower() in self.references:
            raise error("a query must read a stream; a reference input can only be joined", sel.source.pos)
        for ap in sel.applies:
            if ap.alias.lower() in aliases:
                raise error(f"alias {ap.alias!r} is used twice", ap.pos)
            aliases[ap.alias.lower()] = ap
            fname = ap.call.name.lower()
            if fname not in ("getarrayelements", "getrecordproperties") or len(ap.call.args) != 1:
                raise error("APPLY takes GetArrayElements(array) or GetRecordProperties(record)", ap.call.pos)
        self.expressions(sel)
        if sel.where is not None:
            self.no_window_inside(sel.where)
            agg = self.find_aggregate(sel.where)
            if agg is not None:
                raise error("aggregates are not allowed in WHERE; use HAVING", agg.pos)
        for item in sel.items:
            self.no_window_inside(item.expr)
        if sel.group_by:
            self.group_by(sel, st)
            st.aggregate = True
            self.grouped_only(sel, st, set(aliases))
        else:
            roots = [i.expr for i in sel.items] + ([sel.having] if sel.having is not None else [])
            node = next((agg for r in roots if (agg := self.find_aggregate(r)) is not None), None)
            if node is not None:
                raise error("an aggregate needs GROUP BY with a window (or System.Timestamp())", node.pos)
        if sel.joins and any(isinstance(i.expr, A.Star) and not i.expr.path for i in sel.items):
            star = next(i.expr for i in sel.items if isinstance(i.expr, A.Star) and not i.expr.path)
            raise error("SELECT * cannot be used with JOIN: name the columns, or alias.* for one side", star.pos)
        if st.aggregate and any(isinstance(i.expr, A.Star) for i in sel.items):
            star = next(i.expr for i in sel.items if isinstance(i.expr, A.Star))
            raise error("SELECT * cannot be used with GROUP BY", star.pos)
        if sel.distinct:
            raise error("SELECT DISTINCT is not supported; use GROUP BY with a window, or "
                        "COUNT(DISTINCT ...)", sel.pos)
        if sel.match is not None and (sel.joins or sel.applies or sel.group_by):
            raise error("MATCH_RECOGNIZE cannot be combined with JOIN, APPLY or GROUP BY", sel.match.pos)
        return st


def _walk(node: Any):
    """Every AST node under ``node`` (depth first), including ``node``."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, A.Node):
            yield n
            for v in vars(n).values():
                if isinstance(v, A.Node):
                    stack.append(v)
                elif isinstance(v, (list, tuple)):
                    for x in v:
                        if isinstance(x, A.Node):
                            stack.append(x)
                        elif isinstance(x, tuple):
                            stack.extend(y for y in x if isinstance(y, A.Node))


walk = _walk


def analyze(query: A.Query, pm: PluginManager, references: Iterable[str] = frozenset(),
            inputs: Iterable[str] | None = None) -> LogicalPlan:
    """``inputs``: the stream input aliases the caller has; a FROM/JOIN source that is none of
    them, no reference and no WITH step is then a compile error (None: not checked)."""
    return _Analyzer(pm, references, inputs).run(query)


#: Columns Stream Analytics adds to every Event Hubs input event (the binder adds them to
#: an input only when a statement reading it references one).
SYSTEM_COLUMNS = ("PartitionId", "EventEnqueuedUtcTime")


def _roots(ls: LogicalStatement) -> list[A.Node]:
    sel = ls.select
    roots: list[A.Node] = [i.expr for i in sel.items]
    roots += [x for x in (sel.where, sel.having) if x is not None]
    roots += list(ls.group_keys)
    for w in ls.windows:
        roots += list(w.partition_by)
    for src in [sel.source] + [j.source for j in sel.joins]:
        if src.timestamp_by is not None:
            roots.append(src.timestamp_by)
        roots += list(src.timestamp_over)
    roots += [j.on for j in sel.joins] + [ap.call for ap in sel.applies]
    if sel.match is not None:
        roots += list(sel.match.partition_by) + [m.expr for m in sel.match.measures] + list(sel.match.define.values())
    return roots


def referenced_fields(ls: LogicalStatement, alias: str) -> set[str] | None:
    """Top-level fields (lower case) of source ``alias`` that the statement reads, or None
    when it reads whole records (``SELECT *``, the alias as a value, a JOIN or APPLY)."""
    sel = ls.select
    alias = alias.lower()
    if sel.joins or sel.applies or sel.match is not None:
        return None
    fields: set[str] = set()
    for root in _roots(ls):
        for n in _walk(root):
            if isinstance(n, A.Star):
                return None
            if isinstance(n, A.Column):
                p = [x.lower() for x in n.parts]
                if p[0] == alias:
                    if len(p) == 1:
                        return None
                    fields.add(p[1])
                else:
                    fields.add(p[0])
            elif isinstance(n, A.Call) and n.args and not n.star and n.name.lower() == "count":
                continue
    return fields


def join_fields(ls: LogicalStatement, alias: str) -> set[str] | None:
    """Top-level fields (lower case) of ``alias`` that a statement with JOINs reads, or
    None when it reads the whole record (the alias as a value, ``alias.*``, ``*``). A bare
    field may be any source's, so it counts for every alias; DATEDIFF's unit and alias
    arguments are no fields."""
    sel = ls.select
    alias = alias.lower()
    aliases = {sel.source.ref.lower()} | {j.source.ref.lower() for j in sel.joins}
    fields: set[str] = set()
    skip: set[int] = set()
    for root in _roots(ls):
        for n in _walk(root):
            if id(n) in skip:
                continue
            if isinstance(n, A.Call) and n.name.lower() == "datediff" and len(n.args) == 3:
                skip.add(id(n.args[0]))
                skip.update(id(x) for x in n.args[1:] if isinstance(x, A.Column) and len(x.parts) == 1
                            and x.parts[0].lower() in aliases)
            elif isinstance(n, A.Star):
                return None
            elif isinstance(n, A.Column):
                p = [x.lower() for x in n.parts]
                if p[0] == alias:
                    if len(p) == 1:
                        return None
                    fields.add(p[1])
                elif p[0] not in aliases:
                    fields.add(p[0])
    return fields


def system_columns(plan: LogicalPlan) -> dict[str, set[str]]:
    """Per stream input (lower case): the system columns its readers reference, by name
    (a column in the plan, ``PARTITION BY PartitionId``, or all of them for
    ``GetMetadataPropertyValue``)."""
    out: dict[str, set[str]] = {}
    for ls in plan.statements:
        sel = ls.select
        for src in [sel.source] + [j.source for j in sel.joins]:
            low = src.name.lower()
            if low not in {i.lower() for i in plan.inputs}:
                continue
            if src.partition_by and src.partition_by.lower() == "partitionid":
                out.setdefault(low, set()).add("PartitionId")
            names = set()
            for root in _roots(ls):
                for n in _walk(root):
                    if isinstance(n, A.Column):
                        p = [x.lower() for x in n.parts]
                        if len(p) > 1 and p[0] == src.ref.lower():
                            p = p[1:]
                        names.add(p[0])
                    elif isinstance(n, A.Call) and n.name.lower() == "getmetadatapropertyvalue":
                        names.update(c.lower() for c in SYSTEM_COLUMNS)  # the function reads them
            for col in SYSTEM_COLUMNS:
                if col.lower() in names:
                    out.setdefault(low, set()).add(col)
    return out


def metadata_inputs(plan: LogicalPlan) -> set[str]:
    """The stream inputs (lower case) read by a statement calling ``GetMetadataPropertyValue``:
    the runtime asks ingestion for their events' properties (a cost others do not pay)."""
    out: set[str] = set()
    names = {i.lower() for i in plan.inputs}
    for ls in plan.statements:
        sel = ls.select
        if any(isinstance(n, A.Call) and n.name.lower() == "getmetadatapropertyvalue"
               for root in _roots(ls) for n in _walk(root)):
            out.update(low for src in [sel.source] + [j.source for j in sel.joins]
                       if (low := src.name.lower()) in names)
    return out


def star_only(ls: LogicalStatement, alias: str) -> bool:
    """True when the statement reads whole records only through ``SELECT *`` items (no
    ``x.*``, no alias as a value, one source, no aggregate)."""
    sel = ls.select
    if ls.aggregate or sel.joins or sel.applies or sel.match is not None:
        return False
    if not any(isinstance(i.expr, A.Star) and not i.expr.path for i in sel.items):
        return False
    alias = alias.lower()
    for root in _roots(ls):
        for n in _walk(root):
            if isinstance(n, A.Star) and (n.path or n is not root):
                return False
            if isinstance(n, A.Column) and len(n.parts) == 1 and n.parts[0].lower() == alias:
                return False
    return True
