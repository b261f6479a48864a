"""Physical planning: compile expressions to closures and statements to operator pipelines.

Functions, operators and windows come from the plugin registries only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headwater.functions import AggregateFunction, CastError, Operator, ScalarFunction, from_micros
from headwater.services.processing.exec.analytic import Analytic, AnalyticSpec
from headwater.services.processing.exec.base import Env, QueryRuntimeError, get_ci
from headwater.services.processing.exec.join import ReferenceJoin, StreamJoin
from headwater.services.processing.exec.match_recognize import MatchRecognize
from headwater.services.processing.exec.project import Apply, Filter
from headwater.services.processing.exec.statement import StatementOp
from headwater.services.processing.exec.window_aggregate import AggSpec, WindowAggregate, WindowRun
from headwater.services.processing.plan.binder import duration_us, walk
from headwater.services.processing.plan.logical import LogicalStatement
from headwater.services.processing.sql import ast as A
from headwater.services.processing.sql.diagnostics import error, suggest

__all__ = ["ExprCompiler", "Scope", "plan_statement", "PlannedStatement", "output_name"]

_RUNTIME_ERRORS = (CastError, ValueError, TypeError, ZeroDivisionError, OverflowError, ArithmeticError,
                   AttributeError, KeyError, IndexError)
_ANALYTIC = {"lag", "last", "isfirst"}
_MISSING = object()


@dataclass
class Scope:
    aliases: set[str]
    main: str | None
    mode: str = "row"  # row | agg
    aggs: list[AggSpec] = field(default_factory=list)
    analytics: list[AnalyticSpec] | None = None
    select_items: dict[str, A.Node] = field(default_factory=dict)
    in_having: bool = False
    symbols: set[str] = field(default_factory=set)


def output_name(item: A.SelectItem, index: int) -> str:
    if item.alias:
        return item.alias
    e = item.expr
    if isinstance(e, A.Column):
        return e.parts[-1]
    if isinstance(e, A.Subscript):
        return e.parts[-1]
    if isinstance(e, A.SystemWindowId):
        return "Id"
    if isinstance(e, A.SystemTimestamp):
        return "Timestamp"
    if isinstance(e, A.Call):
        return e.name.lower()
    if isinstance(e, A.Cast):
        return "try_cast" if e.try_ else "cast"
    return f"column{index + 1}"


class ExprCompiler:
    def __init__(self, pm) -> None:
        self.pm = pm

    def op(self, name: str, pos) -> Callable:
        fn = self.pm.functions.get(name)
        if not isinstance(fn, Operator):
            raise error(f"operator {name} is not available (no plugin registers it)", pos)
        return fn.fn

    # -- entry -------------------------------------------------------------------
    def compile(self, node: A.Node, scope: Scope) -> Callable[[Env], Any]:
        m = getattr(self, "_" + type(node).__name__.lower(), None)
        if m is None:
            raise error("this expression is not allowed here", node.pos)
        return m(node, scope)

    def _literal(self, node: A.Literal, scope: Scope):
        v = node.value
        return lambda e: v

    def _star(self, node: A.Star, scope: Scope):
        raise error("'*' is only allowed in a SELECT list or COUNT(*)", node.pos)

    def _systemtimestamp(self, node, scope):
        return lambda e: from_micros(e.ts)

    def _systemwindowid(self, node, scope):
        return lambda e: e.wid

    def _column(self, node: A.Column, scope: Scope):
        parts = node.parts
        p0 = parts[0].lower()
        if scope.in_having and len(parts) == 1 and p0 in scope.select_items and scope.mode == "agg":
            # SEMANTICS.md §15.3: a SELECT alias in HAVING (QP uses HAVING [Count] >= 3)
            target = scope.select_items.pop(p0)
            try:
                return self.compile(target, scope)
            finally:
                scope.select_items[p0] = target
        if p0 in scope.aliases and (len(parts) > 1 or scope.main is None):
            alias, rest = p0, parts[1:]
            if not rest:
                return lambda e: e.recs.get(alias)
            return _path(lambda e: e.recs.get(alias), rest)
        if scope.main is not None:
            main = scope.main
            if len(parts) == 1 and p0 in scope.aliases:
                # the input (or step) name as a value is the whole record, unless the record
                # has a field of that name (SELECT temperature FROM temperature)
                field = parts[0]

                def record_or_field(e):
                    r = e.recs.get(main)
                    v = get_ci(r, field)
                    return r if v is None and not _has_ci(r, field) else v
                return record_or_field
            if len(parts) == 1:
                field = parts[0]

                def one(e):
                    r = e.recs.get(main)
                    if type(r) is dict:
                        v = r.get(field, _MISSING)
                        if v is not _MISSING:
                            return v
                    return get_ci(r, field)
                return one
            return _path(lambda e: e.recs.get(main), parts)
        first = parts[0]
        rest = parts[1:]

        def search(e: Env):
            for rec in e.recs.values():
                v = get_ci(rec, first)
                if v is not None:
                    return v
            return None
        return _path(search, rest) if rest else search

    def _subscript(self, node: A.Subscript, scope: Scope):
        return _path(self.compile(node.base, scope), node.parts)

    def _unary(self, node: A.Unary, scope: Scope):
        inner = self.compile(node.operand, scope)
        if node.op == "+":
            return inner
        fn = self.op({"NOT": "NOT", "-": "NEG"}.get(node.op, node.op), node.pos)
        return lambda e: fn(inner(e))

    def _binary(self, node: A.Binary, scope: Scope):
        left, right = self.compile(node.left, scope), self.compile(node.right, scope)
        fn = self.op(node.op, node.pos)
        if node.op == "AND":
            def f_and(e):
                a = left(e)
                if a is False:
                    return False
                return fn(a, right(e))
            return f_and
        if node.op == "OR":
            def f_or(e):
                a = left(e)
                if a is True:
                    return True
                return fn(a, right(e))
            return f_or
        return lambda e: fn(left(e), right(e))

    def _between(self, node: A.Between, scope: Scope):
        x, lo, hi = (self.compile(n, scope) for n in (node.expr, node.low, node.high))
        ge, le, and_, not_ = self.op(">=", node.pos), self.op("<=", node.pos), self.op("AND", node.pos), \
            self.op("NOT", node.pos)
        neg = node.negated

        def f(e):
            v = x(e)
            r = and_(ge(v, lo(e)), le(v, hi(e)))
            return not_(r) if neg else r
        return f

    def _inlist(self, node: A.InList, scope: Scope):
        x = self.compile(node.expr, scope)
        items = [self.compile(n, scope) for n in node.items]
        eq, not_ = self.op("=", node.pos), self.op("NOT", node.pos)
        neg = node.negated

        def f(e):
            v = x(e)
            result: Any = False
            for it in items:
                r = eq(v, it(e))
                if r is True:
                    result = True
                    break
                if r is None:
                    result = None
            return not_(result) if neg else result
        return f

    def _isnull(self, node: A.IsNull, scope: Scope):
        x = self.compile(node.expr, scope)
        if node.negated:
            return lambda e: x(e) is not None
        return lambda e: x(e) is None

    def _like(self, node: A.Like, scope: Scope):
        x, p = self.compile(node.expr, scope), self.compile(node.pattern, scope)
        fn, not_ = self.op("LIKE", node.pos), self.op("NOT", node.pos)
        if node.negated:
            return lambda e: not_(fn(x(e), p(e)))
        return lambda e: fn(x(e), p(e))

    def _case(self, node: A.Case, scope: Scope):
        whens = [(self.compile(c, scope), self.compile(v, scope)) for c, v in node.whens]
        default = self.compile(node.default, scope) if node.default is not None else (lambda e: None)
        if node.operand is not None:
            operand = self.compile(node.operand, scope)
            eq = self.op("=", node.pos)

            def simple(e):
                v = operand(e)
                for c, r in whens:
                    if eq(v, c(e)) is True:
                        return r(e)
                return default(e)
            return simple

        def searched(e):
            for c, r in whens:
                if c(e) is True:
                    return r(e)
            return default(e)
        return searched

    def _cast(self, node: A.Cast, scope: Scope):
        x = self.compile(node.expr, scope)
        t = node.type_name
        fn = self.op("TRY_CAST" if node.try_ else "CAST", node.pos)
        if node.try_:
            return lambda e: fn(x(e), t)

        def cast(e):
            try:
                return fn(x(e), t)
            except (CastError, ValueError, TypeError, OverflowError) as exc:
                raise QueryRuntimeError(f"CAST failed: {exc}") from None
        return cast

    def _call(self, node: A.Call, scope: Scope):
        name = node.name
        low = name.lower()
        ns = node.namespace
        if ns and ns.lower() not in ("udf", "uda") and scope.symbols and ns.lower() in scope.symbols:
            raise error(f"{name} is not a function", node.pos)
        if not ns and low in _ANALYTIC:
            return self._analytic(node, scope)
        if not ns and self.pm.windows.get(name) is not None:
            raise error(f"{name} can only be used in GROUP BY", node.pos)
        fn = self.pm.functions.get(f"{name} DISTINCT") if node.distinct and not ns else None
        if fn is None:
            fn = self.pm.functions.get(name, ns)
        if fn is None:
            known = [(f"{f.namespace}." if getattr(f, "namespace", "") else "") + f.name
                     for f in self.pm.functions.unique() if not isinstance(f, Operator)]
            full = f"{ns}.{name}" if ns else name
            raise error(f"unknown function {full!r}{suggest(full, known)}", node.pos)
        if isinstance(fn, AggregateFunction):
            if node.over is not None and (node.over.limit_duration or node.over.partition_by):
                return self._analytic(node, scope, fn)
            return self._aggregate(node, scope, fn)
        if not isinstance(fn, ScalarFunction):
            raise error(f"{name} is not a function", node.pos)
        if node.star or node.distinct or node.over is not None:
            raise error(f"{name} is not an aggregate", node.pos)
        nargs = len(node.args)
        if nargs < fn.min_args or (fn.max_args is not None and nargs > fn.max_args):
            want = str(fn.min_args) if fn.max_args == fn.min_args else \
                f"{fn.min_args} to {fn.max_args}" if fn.max_args is not None else f"at least {fn.min_args}"
            raise error(f"{name} takes {want} argument(s), got {nargs}", node.pos)
        args: list[Callable] = []
        rest = node.args
        if fn.unit_arg:
            unit = node.args[0]
            if not isinstance(unit, A.Column) or len(unit.parts) != 1:
                raise error(f"{name}: the first argument is a date part such as minute", unit.pos)
            u = unit.parts[0]
            rest = node.args[1:]
            if low == "datediff" and len(rest) == 2:
                a, b = rest
                if isinstance(a, A.Column) and isinstance(b, A.Column) and len(a.parts) == len(b.parts) == 1 \
                        and a.parts[0].lower() in scope.aliases and b.parts[0].lower() in scope.aliases:
                    return self._datediff_aliases(u, a.parts[0].lower(), b.parts[0].lower(), node)
            args.append(lambda e, u=u: u)
        args += [self.compile(a, scope) for a in rest]
        f = fn.fn
        nullprop = fn.null_propagates
        label = f"{ns + '.' if ns else ''}{name}"
        udf = bool(ns)

        def call(e):
            vals = [a(e) for a in args]
            if nullprop and None in vals:
                return None
            try:
                return f(*vals)
            except QueryRuntimeError:
                raise
            except Exception as exc:  # noqa: BLE001 - a function failing stops the job, with its name
                if udf or isinstance(exc, _RUNTIME_ERRORS):
                    text = str(exc)  # a function's own message may name it already
                    named = text.lower().startswith(f"{label.lower()}:")
                    raise QueryRuntimeError(text if named else f"{label}: {text}") from None
                raise
        return call

    def _datediff_aliases(self, unit: str, a: str, b: str, node):
        u = duration_us(unit, 1, node.pos)

        def f(e):
            t = e.times or {}
            if a not in t or b not in t:
                return None
            return (t[b] - t[a]) // u
        return f

    def _aggregate(self, node: A.Call, scope: Scope, fn: AggregateFunction):
        if scope.mode != "agg":
            raise error(f"aggregate {node.name} needs GROUP BY with a window", node.pos)
        star = node.star
        arg = None
        fn, node = self._configure(fn, node)
        if star and not fn.star:
            raise error(f"{node.name}(*) is not allowed", node.pos)
        if not node.args and not star and not fn.no_args:
            raise error(f"{node.name} needs an argument", node.pos)
        if len(node.args) > 1:
            raise error(f"{node.name} takes one argument", node.pos)
        if node.args:
            a0 = node.args[0]
            if isinstance(a0, A.Column) and len(a0.parts) == 1 and a0.parts[0].lower() in scope.aliases \
                    and fn.star and not node.distinct:
                star = True  # COUNT(input) == COUNT(*)
            else:
                inner = Scope(scope.aliases, scope.main, "row", analytics=scope.analytics)
                for n in walk(a0):
                    if isinstance(n, A.Call) and n.over is None and \
                            isinstance(self.pm.functions.get(n.name, n.namespace), AggregateFunction):
                        raise error("aggregates cannot be nested", n.pos)
                arg = self.compile(a0, inner)
        order = None
        if fn.ordered:
            if node.over is None or not node.over.order_by:
                raise error(f"{node.name} needs OVER (ORDER BY ...)", node.pos)
            inner = Scope(scope.aliases, scope.main, "row")
            order = [(self.compile(o.expr, inner), o.descending) for o in node.over.order_by]
        elif node.over is not None:
            raise error(f"{node.name} does not take OVER here", node.over.pos)
        idx = len(scope.aggs)
        scope.aggs.append(AggSpec(fn, arg, star, node.distinct, order, node))
        return lambda e: e.aggs[idx]

    def _configure(self, fn: AggregateFunction, node: A.Call) -> tuple[AggregateFunction, A.Call]:
        """``fn`` configured with the call's constant arguments (``constant_args`` leading,
        ``trailing_constant_args`` trailing, e.g. ``AnomalyDetection_SpikeAndDip(x, 95, 120,
        'spikes')``), and the call without them."""
        lead, trail = fn.constant_args, getattr(fn, "trailing_constant_args", 0)
        if not lead and not trail:
            return fn, node
        args = node.args
        consts = args[:lead] + (args[len(args) - trail:] if trail else [])
        literals = [c for c in consts if isinstance(c, A.Literal)]
        if len(args) < lead + trail or len(literals) != len(consts):
            where = " and ".join(w for w, n in (("first", lead), ("last", trail)) if n)
            raise error(f"{node.name} takes {lead + trail} constant argument(s) ({where})", node.pos)
        try:
            fn = fn.configure(*(c.value for c in literals))
        except ValueError as exc:
            raise error(f"{node.name}: {exc}", node.pos) from None
        return fn, A.Call(node.pos, node.name, args[lead:len(args) - trail], node.namespace, node.distinct,
                          node.star, node.over)

    def _analytic(self, node: A.Call, scope: Scope, agg: AggregateFunction | None = None):
        if scope.analytics is None:
            raise error(f"{node.name} is not allowed here", node.pos)
        over = node.over
        low = node.name.lower()
        inner = Scope(scope.aliases, scope.main, "row")
        partition = [self.compile(p, inner) for p in (over.partition_by if over else [])]
        when = self.compile(over.when, inner) if over and over.when is not None else None
        duration = None
        if over and over.limit_duration:
            unit, n = over.limit_duration
            duration = duration_us(unit, n, over.pos)
        if low == "isfirst":
            if len(node.args) != 2 or not isinstance(node.args[0], A.Column) or \
                    not isinstance(node.args[1], A.Literal):
                raise error("IsFirst takes (unit, size)", node.pos)
            if not isinstance(node.args[1].value, (int, float)) or isinstance(node.args[1].value, bool):
                raise error(f"IsFirst: the size (argument 2) must be a number, got {node.args[1].value!r}",
                            node.args[1].pos)
            size = duration_us(node.args[0].parts[0], float(node.args[1].value), node.args[0].pos)
            spec = AnalyticSpec("isfirst", None, partition, None, when, interval=size)
        else:
            if duration is None or over is None:  # a duration comes from OVER
                raise error(f"{node.name} needs OVER (LIMIT DURATION(unit, n))", node.pos)
            if agg is not None:
                # TopOne/CollectTop/AnomalyDetection_* OVER ([PARTITION BY] [ORDER BY] LIMIT DURATION [WHEN])
                agg, node = self._configure(agg, node)
                if len(node.args) > 1:
                    raise error(f"{node.name} takes one argument", node.pos)
                if not node.args and not node.star and not agg.no_args:
                    raise error(f"{node.name} needs an argument", node.pos)
                order = None
                if agg.ordered:
                    if not over.order_by:
                        raise error(f"{node.name} needs ORDER BY in its OVER clause", over.pos)
                    order = [(self.compile(o.expr, inner), o.descending) for o in over.order_by]
                arg = self.compile(node.args[0], inner) if node.args else None
                spec = AnalyticSpec("agg", AggSpec(agg, arg, node.star, False, order, node).value, partition,
                                    duration, when, agg=agg)
            else:
                if not node.args and not node.star:
                    raise error(f"{node.name} needs an argument", node.pos)
                value = None if node.star else self.compile(node.args[0], inner)
                if low == "lag":
                    if len(node.args) > 3:
                        raise error("LAG takes (expr[, offset[, default]])", node.pos)
                    offset = 1
                    if len(node.args) >= 2:
                        o = node.args[1]
                        if not isinstance(o, A.Literal) or not isinstance(o.value, int) or o.value < 1:
                            raise error("the LAG offset must be a positive integer constant", o.pos)
                        offset = o.value
                    default = self.compile(node.args[2], inner) if len(node.args) == 3 else None
                    spec = AnalyticSpec("lag", value, partition, duration, when, offset, default)
                else:
                    if len(node.args) > 2:
                        raise error("LAST takes (expr[, default])", node.pos)
                    default = self.compile(node.args[1], inner) if len(node.args) == 2 else None
                    spec = AnalyticSpec("last", value, partition, duration, when, 0, default)
        spec.node = node
        idx = len(scope.analytics)
        scope.analytics.append(spec)
        return lambda e: e.an[idx]


def _has_ci(rec: Any, key: str) -> bool:
    if type(rec) is not dict:
        return False
    low = key.lower()
    return key in rec or any(k.lower() == low for k in rec)


def _path(base: Callable[[Env], Any], parts: list[str]) -> Callable[[Env], Any]:
    if not parts:
        return base
    if len(parts) == 1:
        p = parts[0]
        return lambda e: get_ci(base(e), p)

    def f(e):
        v = base(e)
        for p in parts:
            if v is None:
                return None
            v = get_ci(v, p)
        return v
    return f


# -- statements ---------------------------------------------------------------------
@dataclass
class PlannedStatement:
    op: StatementOp
    inputs: list[tuple[str, Any]]  # per input slot: ("source", Source spec) or ("step", name)
    target: str
    is_output: bool


def project_fn(items: list[A.SelectItem], comp: ExprCompiler, scope: Scope) -> Callable[[Env], dict]:
    compiled: list[tuple[str, str, Callable]] = []
    for i, item in enumerate(items):
        e = item.expr
        if isinstance(e, A.Star):
            if e.path:
                compiled.append(("star", "", comp.compile(A.Column(e.pos, e.path), scope)))
            elif scope.main is not None:
                main = scope.main
                compiled.append(("star", "", lambda env, m=main: env.recs.get(m)))
            else:
                compiled.append(("stars", "", lambda env: env.recs))
            continue
        compiled.append(("expr", output_name(item, i), comp.compile(e, scope)))

    if all(kind == "expr" for kind, _, _ in compiled):
        names, fns, seen = [], [], set()
        for _, name, fn in compiled:
            if name.lower() not in seen:
                seen.add(name.lower())
                names.append(name)
                fns.append(fn)
        pairs = list(zip(names, fns))

        def project_plain(env: Env) -> dict:
            return {name: fn(env) for name, fn in pairs}
        return project_plain

    def project(env: Env) -> dict:
        out: dict[str, Any] = {}
        seen: set[str] = set()
        for kind, name, fn in compiled:
            if kind == "expr":
                low = name.lower()
                if low in seen:
                    continue
                seen.add(low)
                out[name] = fn(env)
                continue
            recs = [fn(env)] if kind == "star" else list(fn(env).values())
            for rec in recs:
                if isinstance(rec, dict):
                    for k, v in rec.items():
                        low = k.lower()
                        if low not in seen:
                            seen.add(low)
                            out[k] = v
        return out
    return project


def _conjuncts(node: A.Node) -> list[A.Node]:
    if isinstance(node, A.Binary) and node.op == "AND":
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def _aliases_of(node: A.Node, aliases: set[str]) -> set[str] | None:
    """Aliases an expression reads; None when it reads anything else (unqualified fields,
    System.Timestamp(), analytic functions)."""
    found: set[str] = set()
    for n in walk(node):
        if isinstance(n, A.Column):
            if len(n.parts) < 2 or n.parts[0].lower() not in aliases:
                return None
            found.add(n.parts[0].lower())
        elif isinstance(n, (A.SystemTimestamp, A.SystemWindowId)) or (isinstance(n, A.Call) and n.over is not None):
            return None
    return found


def _equi_keys(on: A.Node, right: str, left_aliases: set[str], comp: ExprCompiler, scope: Scope):
    """Closures computing the values of ON's ``left_expr = right_expr`` conjuncts on each side."""
    lefts, rights = _equi_nodes(on, right, left_aliases)
    if not lefts:
        return None, None
    lf = [comp.compile(x, scope) for x in lefts]
    rf = [comp.compile(x, scope) for x in rights]
    return (lambda e: [f(e) for f in lf]), (lambda e: [f(e) for f in rf])


def _equi_nodes(on: A.Node, right: str, left_aliases: set[str]) -> tuple[list[A.Node], list[A.Node]]:
    """ON's ``left_expr = right_expr`` conjuncts: (left sides, right sides)."""
    lefts, rights = [], []
    every = left_aliases | {right}
    for c in _conjuncts(on):
        if not (isinstance(c, A.Binary) and c.op == "="):
            continue
        a, b = _aliases_of(c.left, every), _aliases_of(c.right, every)
        if not a or not b:
            continue
        if a <= left_aliases and b == {right}:
            lefts.append(c.left)
            rights.append(c.right)
        elif b <= left_aliases and a == {right}:
            lefts.append(c.right)
            rights.append(c.left)
    return lefts, rights


def _time_bound(on: A.Node, right: str, left_aliases: set[str], pos) -> tuple[str, int, int]:
    """From ``DATEDIFF(unit, a, b) BETWEEN lo AND hi`` in ON: (anchor alias, lo, hi) of
    ts(right) - ts(anchor) in us."""
    for c in _conjuncts(on):
        if isinstance(c, A.Between) and not c.negated and isinstance(c.expr, A.Call) \
                and c.expr.name.lower() == "datediff" and len(c.expr.args) == 3:
            u, a, b = c.expr.args
            if not (isinstance(u, A.Column) and isinstance(a, A.Column) and isinstance(b, A.Column)
                    and len(u.parts) == len(a.parts) == len(b.parts) == 1):
                continue
            if not (isinstance(c.low, A.Literal) and isinstance(c.high, A.Literal)):
                raise error("DATEDIFF bounds of a JOIN must be constants", c.pos)
            for bound, what in ((c.low, "lower"), (c.high, "upper")):
                if not isinstance(bound.value, (int, float)) or isinstance(bound.value, bool):
                    raise error(f"the {what} DATEDIFF bound of a JOIN must be a number, got {bound.value!r}",
                                bound.pos)
            unit = duration_us(u.parts[0], 1, u.pos)
            lo, hi = float(c.low.value) * unit, float(c.high.value) * unit
            an, bn = a.parts[0].lower(), b.parts[0].lower()
            if bn == right and an in left_aliases:
                return an, int(lo), int(hi)
            if an == right and bn in left_aliases:
                return bn, int(-hi), int(-lo)
    raise error(f"a JOIN of two streams needs DATEDIFF(unit, left, right) BETWEEN x AND y in ON (if {right!r} "
                "is reference data, give it as a reference input)", pos)


def plan_statement(ls: LogicalStatement, comp: ExprCompiler, steps: set[str], references: set[str],
                   reference_rows: Callable[[str], list[dict]], make_source: Callable) -> PlannedStatement:
    sel = ls.select
    aliases: set[str] = {sel.source.ref.lower()}
    main: str | None = sel.source.ref.lower()
    inputs: list[tuple[str, Any]] = []

    def slot(src: A.Source):
        low = src.name.lower()
        if low in steps:
            inputs.append(("step", low))
        else:
            inputs.append(("source", make_source(src)))

    slot(sel.source)
    joins: list[Any] = []
    for j in sel.joins:
        ralias = j.source.ref.lower()
        left_aliases = set(aliases)
        aliases.add(ralias)
        main = None
        scope = Scope(set(aliases), None)
        on = comp.compile(j.on, scope)
        lkey, rkey = _equi_keys(j.on, ralias, left_aliases, comp, scope)
        if j.source.name.lower() in references:
            name = j.source.name.lower()
            joins.append(ReferenceJoin(ralias, functools.partial(reference_rows, name), on, j.kind == "left", lkey, rkey))
        else:
            anchor, lo, hi = _time_bound(j.on, ralias, left_aliases, j.pos)
            joins.append(StreamJoin(ralias, anchor, lo, hi, on, j.kind == "left", lkey, rkey))
            slot(j.source)
    stages: list[Any] = []
    for ap in sel.applies:
        scope = Scope(set(aliases), main)
        arg = comp.compile(ap.call.args[0], scope)
        stages.append(Apply(arg, ap.alias, ap.call.name.lower() == "getrecordproperties", ap.outer))
        aliases.add(ap.alias.lower())
    if sel.match is not None:
        stages.append(_match_stage(sel.match, comp, main or sel.source.ref.lower()))
        main = (sel.match.alias or sel.source.ref).lower()
        aliases.add(main)
    analytics: list[AnalyticSpec] = []
    row_scope = Scope(aliases, main, "row", analytics=analytics)
    where = comp.compile(sel.where, row_scope) if sel.where is not None else None
    select_items = {i.alias.lower(): i.expr for i in sel.items if i.alias}
    if ls.aggregate:
        agg_scope = Scope(aliases, main, "agg", analytics=analytics, select_items=select_items)
        keys = [comp.compile(k, row_scope) for k in ls.group_keys]
        runs = [WindowRun(w.kind, w.config, w.label, [comp.compile(p, row_scope) for p in w.partition_by])
                for w in ls.windows]
        project = project_fn(sel.items, comp, agg_scope)
        agg_scope.in_having = True
        having = comp.compile(sel.having, agg_scope) if sel.having is not None else None
        tail: list[Any] = []
        if where is not None:
            tail.append(Filter(where))
        tail.append(WindowAggregate(runs, keys, agg_scope.aggs, having, project))
        final = None
    else:
        having_scope = Scope(aliases, main, "row", analytics=analytics)
        having = comp.compile(sel.having, having_scope) if sel.having is not None else None
        final = project_fn(sel.items, comp, row_scope)
        tail = [Filter(p) for p in (where, having) if p is not None]
    if analytics:
        stages.append(Analytic(analytics))
    stages.extend(tail)
    op = StatementOp(ls.target, sel.source.ref, joins, stages, final)
    return PlannedStatement(op, inputs, ls.target, ls.is_output)


def _match_stage(mr: A.MatchRecognize, comp: ExprCompiler, main: str) -> MatchRecognize:
    symbols: list[str] = []

    def collect(node):
        if node[0] == "sym":
            if node[1] not in symbols:
                symbols.append(node[1])
        elif node[0] in ("seq", "alt"):
            for x in node[1]:
                collect(x)
        else:
            collect(node[1])
    collect(mr.pattern)
    for s in mr.define:
        if s not in symbols:
            raise error(f"DEFINE {s!r} is not in the PATTERN", mr.pos)
    sym_scope = Scope({main, *symbols}, main, symbols=set(symbols))
    # every symbol alias reads the row being classified
    define = {}
    for s, cond in mr.define.items():
        f = comp.compile(cond, sym_scope)
        define[s] = (lambda f: lambda e: f(Env({**{x: e.recs[main] for x in symbols}, main: e.recs[main]}, e.ts)))(f)  # noqa: B023 - bound by the outer lambda
    partition = [comp.compile(p, Scope({main}, main)) for p in mr.partition_by]
    measures: list[tuple[str, Callable]] = []
    for i, item in enumerate(mr.measures):
        measures.append((output_name(item, i), _measure(item.expr, comp, main, symbols)))
    unit, n = mr.limit_duration
    duration = duration_us(unit, n, mr.pos)

    def measure(rows: list[Env], labels: list[str]) -> dict:
        out = {}
        for name, f in measures:
            out[name] = f(rows, labels)
        return out
    alias = (mr.alias or main).lower()
    return MatchRecognize(partition, duration, mr.pattern, define, symbols, measure, mr.skip_to_next_row, alias)


def _measure(node: A.Node, comp: ExprCompiler, main: str, symbols: list[str]):
    """MEASURES: First/Last/Count/Sum/Min/Max/Avg(symbol.field) over the rows of a symbol."""
    if isinstance(node, A.Call) and not node.namespace and node.name.lower() in \
            ("first", "last", "count", "sum", "min", "max", "avg"):
        fname = node.name.lower()
        sym = None
        arg = node.args[0] if node.args else None
        if isinstance(arg, A.Column) and arg.parts[0].lower() in symbols:
            sym = arg.parts[0].lower()
            path = arg.parts[1:]
        elif node.star or arg is None:
            path = []
        else:
            raise error(f"{node.name} in MEASURES takes symbol.field", node.pos)
        get = _path(lambda e: e.recs[main], path) if path else (lambda e: e.recs[main])

        def f(rows, labels):
            vals = [get(r) for r, lab in zip(rows, labels) if sym is None or lab == sym]
            if fname == "first":
                return vals[0] if vals else None
            if fname == "last":
                return vals[-1] if vals else None
            if fname == "count":
                return len(vals)
            nums = [v for v in vals if v is not None]
            if not nums:
                return None
            if fname == "sum":
                return sum(nums)
            if fname == "avg":
                return sum(nums) / len(nums)
            return min(nums) if fname == "min" else max(nums)
        return f
    raise error("MEASURES items must be First/Last/Count/Sum/Min/Max/Avg(symbol.field)", node.pos)


def plan_vector_statement(ls: LogicalStatement, comp: ExprCompiler, steps: set[str], window: str,
                          make_source: Callable):
    """The vectorised implementation of a statement the physical plan marks vectorised:
    ``(VectorStatement, input slots)``. Expressions carry their row closure as fallback."""
    from headwater.services.processing.exec.vector import VectorAggregate, VectorStatement, VExpr

    sel = ls.select
    alias = sel.source.ref.lower()
    low = sel.source.name.lower()
    inputs: list[tuple[str, Any]] = [("step", low) if low in steps else ("source", make_source(sel.source))]
    row_scope = Scope({alias}, alias, "row", analytics=[])
    where = VExpr(sel.where, comp.compile(sel.where, row_scope)) if sel.where is not None else None
    functions = comp.pm.functions
    if ls.aggregate:
        select_items = {i.alias.lower(): i.expr for i in sel.items if i.alias}
        agg_scope = Scope({alias}, alias, "agg", analytics=[], select_items=select_items)
        keys = [VExpr(k, comp.compile(k, row_scope)) for k in ls.group_keys]
        project = project_fn(sel.items, comp, agg_scope)
        agg_scope.in_having = True
        having_fn = comp.compile(sel.having, agg_scope) if sel.having is not None else None
        key_fields: dict[str, tuple[int, str]] = {}
        for i, k in enumerate(ls.group_keys):
            if isinstance(k, A.Column) and (len(k.parts) == 1 or (len(k.parts) == 2 and k.parts[0].lower() == alias)):
                key_fields.setdefault(k.parts[-1].lower(), (i, k.parts[-1]))
        rep = _fields_outside_aggregates(sel, alias, comp.pm) - set(key_fields)
        agg = VectorAggregate(window, ls.windows[0].config, keys, agg_scope.aggs, project, having_fn, alias, rep)
        agg.key_fields = key_fields
        if having_fn is None:
            agg.columns = _output_columns(sel, alias, agg_scope.aggs, select_items)
        return VectorStatement(ls.target, alias, functions, where, None, None, agg), inputs
    items: list[tuple[str, Any]] = []
    for i, item in enumerate(sel.items):
        if isinstance(item.expr, A.Star):
            items.append(("*", None))  # SELECT *: the record's fields (plan/physical.py allows no x.*)
            continue
        items.append((output_name(item, i), VExpr(item.expr, comp.compile(item.expr, row_scope))))
    having = VExpr(sel.having, comp.compile(sel.having, row_scope)) if sel.having is not None else None
    analytic = None
    if row_scope.analytics:  # LAG/LAST (plan/physical.py allows no other analytic function here)
        from headwater.services.processing.exec.analytic import Analytic
        from headwater.services.processing.exec.vector import VectorAnalytic

        columns = []
        for sp in row_scope.analytics:
            assert sp.value is not None  # LAG and LAST have a value expression
            columns.append(([VExpr(p, f) for p, f in zip(sp.node.over.partition_by, sp.partition)],
                            VExpr(sp.node.args[0], sp.value)))
        analytic = VectorAnalytic(Analytic(row_scope.analytics), columns)
    return VectorStatement(ls.target, alias, functions, where, having, items, None, analytic), inputs


def plan_vector_join(ls: LogicalStatement, comp: ExprCompiler, steps: set[str], references: set[str],
                     reference_rows: Callable[[str], Any], make_source: Callable):
    """The vectorised implementation of a statement with one JOIN (exec/vjoin.py):
    ``(VectorJoinStatement, input slots)``; its expressions carry their row closures."""
    from headwater.services.processing.exec.vector import VExpr
    from headwater.services.processing.exec.vjoin import ReferenceSide, StreamSide, VectorJoinStatement

    sel = ls.select
    j = sel.joins[0]
    left, right = sel.source.ref.lower(), j.source.ref.lower()
    inputs: list[tuple[str, Any]] = []

    def slot(src: A.Source) -> None:
        low = src.name.lower()
        if low in steps:
            inputs.append(("step", low))
        else:
            s = make_source(src)
            s.exact = True  # the JOIN compares values of the types they came in
            inputs.append(("source", s))
    slot(sel.source)  # in the row path's order, so compile errors come in its order
    scope = Scope({left, right}, None)
    comp.compile(j.on, scope)
    lkeys, rkeys = _equi_nodes(j.on, right, {left})
    if j.source.name.lower() in references:
        name = j.source.name.lower()

        def rows() -> Any:
            return reference_rows(name)
        side: Any = ReferenceSide(rows, j.kind == "left")
    else:
        _anchor, lo, hi = _time_bound(j.on, right, {left}, j.pos)
        side = StreamSide(lo, hi, j.kind == "left")
        slot(j.source)
    on = [VExpr(c, comp.compile(c, scope)) for c in _conjuncts(j.on)]
    where = VExpr(sel.where, comp.compile(sel.where, scope)) if sel.where is not None else None
    items: list[tuple[str, VExpr | None]] = [(output_name(item, i), VExpr(item.expr, comp.compile(item.expr, scope)))
                                             for i, item in enumerate(sel.items)]
    op = VectorJoinStatement(ls.target, left, right, comp.pm.functions, side, on,
                             [VExpr(x, comp.compile(x, scope)) for x in lkeys],
                             [VExpr(x, comp.compile(x, scope)) for x in rkeys], where, items)
    return op, inputs


def _fields_outside_aggregates(sel: A.Select, alias: str, pm) -> set[str]:
    """Fields SELECT and HAVING read outside aggregates (the group's first event gives them)."""
    out: set[str] = set()
    stack = [i.expr for i in sel.items] + ([sel.having] if sel.having is not None else [])
    while stack:
        n = stack.pop()
        if isinstance(n, A.Call) and (isinstance(pm.functions.get(n.name, n.namespace), AggregateFunction) or
                                      (n.distinct and pm.functions.get(f"{n.name} DISTINCT") is not None)):
            continue
        if isinstance(n, A.Column):
            p = [x.lower() for x in n.parts]
            out.add(p[1] if len(p) > 1 and p[0] == alias else p[0])
        if isinstance(n, A.Node):
            for v in vars(n).values():
                if isinstance(v, A.Node):
                    stack.append(v)
                elif isinstance(v, (list, tuple)):
                    stack.extend(x for x in v if isinstance(x, A.Node))
    return out


def _output_columns(sel: A.Select, alias: str, aggs: list, select_items: dict) -> list[tuple] | None:
    """SELECT of a grouped statement as columns of the aggregate's result, when every item
    is a field (a group key), System.Timestamp() or an aggregate call: then the output is
    built as a batch, not row by row. None otherwise."""
    out: list[tuple] = []
    seen: set[str] = set()
    for i, item in enumerate(sel.items):
        name = output_name(item, i)
        if name.lower() in seen:
            continue
        seen.add(name.lower())
        e = item.expr
        if isinstance(e, A.SystemTimestamp):
            out.append((name, "ts", None))
        elif isinstance(e, A.Column) and (len(e.parts) == 1 or (len(e.parts) == 2 and e.parts[0].lower() == alias)):
            if len(e.parts) == 1 and e.parts[0].lower() in select_items:
                return None
            out.append((name, "field", e.parts[-1].lower()))
        else:
            j = next((j for j, a in enumerate(aggs) if a.node is e), None)
            if j is None:
                return None
            out.append((name, "agg", j))
    return out
