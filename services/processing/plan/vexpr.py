"""Expressions as Polars expressions: the vectorised implementation of an expression.

:func:`translate` turns a bound expression into a ``pl.Expr`` over a batch whose column
types are known, with the meaning the row implementation (the function plugins) gives it:
strings compare case-insensitively, a string compared with a number is read as a number
(NULL when it is not one), NULL propagates, AND/OR/NOT are three-valued. Where the exact
meaning is not available vectorised for these types (LIKE, CASE, nested fields, functions
without a ``vectorized`` hook, ...) it raises :class:`NotVectorized` and the operator
evaluates that one expression with the row implementation over the batch's rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from headwater.functions import ScalarFunction
from headwater.services.processing.plan.binder import duration_us
from headwater.services.processing.sql import ast as A

if TYPE_CHECKING:
    from polars.expr.whenthen import ChainedThen, Then

    from headwater.pluginmanager import Function, NamedRegistry

    FunctionRegistry = NamedRegistry[Function]

__all__ = ["NotVectorized", "Columns", "translate", "PLAIN", "TS", "REC"]

#: The event time column of a batch (us since the epoch, int64).
TS = "__ts"
#: A batch of whole records as Python values (``SELECT *`` over events a typed batch would change).
REC = "__rec"
#: Column types whose values are read exactly as the row path reads them.
PLAIN = (pl.Utf8, pl.Int64, pl.Float64, pl.Boolean, pl.Null)
_NUM = (pl.Int64, pl.Float64, pl.Int32, pl.UInt32, pl.UInt64, pl.Float32)
_CMP = {"=": "eq", "<>": "ne", "!=": "ne", "<": "lt", ">": "gt", "<=": "le", ">=": "ge"}


def _near_bigint_limit(approx: pl.Expr) -> pl.Expr:
    """True when a result computed in floats comes near the bigint range's ends: Polars
    integers wrap there, so the batch takes the row path, which fails on a true overflow
    (a float result that large is computed the same way there)."""
    return (approx.abs() >= 9.2e18).fill_null(False).any()


class NotVectorized(Exception):
    """This expression, over these column types, has no exact vectorised form."""


@dataclass
class Columns:
    """The batch as an expression sees it: ``aliases`` that name the record (lower case),
    ``names`` lower-case field -> column, ``dtypes`` column -> type."""

    aliases: set[str]
    names: dict[str, str]
    dtypes: dict[str, pl.DataType]
    functions: FunctionRegistry | None = None  # the plugin manager's function registry
    #: scalar boolean expressions that are True when the batch needs the row implementation
    #: for the expression just translated (a division by zero must fail as the row path fails)
    checks: list[pl.Expr] = field(default_factory=list)
    #: analytic calls already computed as columns of the batch: id(call node) -> column
    analytic: dict[int, str] | None = None
    #: a JOIN's batch: alias -> (lower-case field -> column); fields are read qualified
    qualified: dict[str, dict[str, str]] | None = None
    #: a JOIN's batch: alias -> its event time column (DATEDIFF(unit, a, b) over aliases)
    times: dict[str, str] | None = None

    @classmethod
    def of(cls, df: pl.DataFrame, aliases: set[str], functions: FunctionRegistry | None = None) -> Columns:
        names: dict[str, str] = {}
        for c in df.columns:
            names.setdefault(c.lower(), c)
        return cls(aliases, names, dict(df.schema), functions)


def _kind(dtype) -> str:
    if dtype == pl.Utf8:
        return "str"
    if dtype == pl.Boolean:
        return "bool"
    if dtype == pl.Null:
        return "null"
    if dtype in _NUM:
        return "num"
    if dtype == pl.Datetime or isinstance(dtype, pl.Datetime):
        return "time"
    return "other"


def translate(node: A.Node, cols: Columns) -> tuple[pl.Expr, str]:
    """``(expression, kind)``; kind is str | num | bool | null | time."""
    if type(node) is A.Literal:
        v = node.value
        if v is None:
            return pl.lit(None), "null"
        if isinstance(v, bool):
            return pl.lit(v), "bool"
        if isinstance(v, (int, float)):
            return pl.lit(v), "num"
        if isinstance(v, str):
            return pl.lit(v), "str"
        raise NotVectorized
    if type(node) is A.Column:
        if REC in cols.dtypes:
            raise NotVectorized  # whole records as Python values: fields are read by row
        parts = node.parts
        if cols.qualified is not None:  # a JOIN: alias.field only (a bare field searches every record)
            names = cols.qualified.get(parts[0].lower()) if len(parts) == 2 else None
            if names is None:
                raise NotVectorized
            parts = parts[1:]
        else:
            names = cols.names
            if len(parts) == 2 and parts[0].lower() in cols.aliases:
                parts = parts[1:]
            if len(parts) != 1 or parts[0].lower() in cols.aliases:
                raise NotVectorized  # a nested field or the whole record
        name = names.get(parts[0].lower())
        if name is None:
            return pl.lit(None), "null"
        dtype = cols.dtypes[name]
        if dtype not in PLAIN:
            raise NotVectorized
        return pl.col(name), _kind(dtype)
    if type(node) is A.SystemTimestamp:
        return pl.col(TS).cast(pl.Datetime("us", "UTC")), "time"
    if type(node) is A.Unary:
        e, k = translate(node.operand, cols)
        if node.op == "+" and k == "num":
            return e, k
        if node.op == "-" and k == "num":
            cols.checks.append(_near_bigint_limit(-e.cast(pl.Float64)))
            return -e, k
        if node.op == "NOT" and k in ("bool", "null"):
            return ~e.cast(pl.Boolean), "bool"
        raise NotVectorized
    if type(node) is A.Binary:
        op = node.op
        if op in ("AND", "OR"):
            a, b = _boolean(node.left, cols), _boolean(node.right, cols)
            return (a & b if op == "AND" else a | b), "bool"
        if op in _CMP:
            return _compare(op, node.left, node.right, cols), "bool"
        if op in ("+", "-", "*", "/"):
            a, ka = translate(node.left, cols)
            b, kb = translate(node.right, cols)
            if "null" in (ka, kb):
                return pl.lit(None), "null"
            if op == "+" and ka == kb == "str":
                return a + b, "str"
            if ka == kb == "num":
                if op == "/":
                    cols.checks.append((b == 0).fill_null(False).any())
                    return a / b, "num"
                fa, fb = a.cast(pl.Float64), b.cast(pl.Float64)
                cols.checks.append(_near_bigint_limit(fa + fb if op == "+" else fa - fb if op == "-" else fa * fb))
                return (a + b if op == "+" else a - b if op == "-" else a * b), "num"
        raise NotVectorized
    if type(node) is A.IsNull:
        e, _ = translate(node.expr, cols)
        return (e.is_not_null() if node.negated else e.is_null()), "bool"
    if type(node) is A.Between:
        ge = _compare(">=", node.expr, node.low, cols)
        le = _compare("<=", node.expr, node.high, cols)
        r = ge & le
        return (~r if node.negated else r), "bool"
    if type(node) is A.InList:
        if not node.items:
            raise NotVectorized
        r = _compare("=", node.expr, node.items[0], cols)
        for it in node.items[1:]:
            r = r | _compare("=", node.expr, it, cols)
        return (~r if node.negated else r), "bool"
    if type(node) is A.Cast:
        e, k = translate(node.expr, cols)
        if k == "null":
            return pl.lit(None), "null"
        if node.type_name == "float" and k in ("num", "str"):
            return e.cast(pl.Float64, strict=node.try_ is False), "num"
        name = _col_name(node.expr, cols) if node.type_name == "bigint" and k == "num" else None
        if name is not None and cols.dtypes.get(name) == pl.Int64:
            return e, "num"
        raise NotVectorized
    if type(node) is A.Call:
        if cols.analytic and id(node) in cols.analytic:
            name = cols.analytic[id(node)]
            dtype = cols.dtypes[name]
            if dtype not in PLAIN:
                raise NotVectorized
            return pl.col(name), _kind(dtype)
        return _call(node, cols)
    if type(node) is A.Like:
        e, k = translate(node.expr, cols)
        p = node.pattern
        if k == "null" or (isinstance(p, A.Literal) and p.value is None):
            return pl.lit(None, dtype=pl.Boolean), "bool"
        if k != "str" or not isinstance(p, A.Literal) or not isinstance(p.value, str) or "[" in p.value:
            raise NotVectorized
        r = e.str.contains(_like_regex(p.value))
        return (~r if node.negated else r), "bool"
    if type(node) is A.Case:
        return _case(node, cols)
    raise NotVectorized


_REGEX_META = set("\\.+*?()|[]{}^$#&-~")


def _like_regex(pattern: str) -> str:
    """LIKE's meaning (``%`` any run, ``_`` one character, the whole text, case-insensitive)
    as a regular expression for Polars."""
    out = []
    for c in pattern:
        out.append(".*" if c == "%" else "." if c == "_" else "\\" + c if c in _REGEX_META else c)
    return "(?is)^" + "".join(out) + "$"


def _case(node: A.Case, cols: Columns) -> tuple[pl.Expr, str]:
    """CASE with conditions that are true, false or NULL and results of one kind."""
    conds = []
    for c, _ in node.whens:
        conds.append(_compare("=", node.operand, c, cols) if node.operand is not None else _boolean(c, cols))
    results = [translate(v, cols) for _, v in node.whens]
    default = translate(node.default, cols) if node.default is not None else (pl.lit(None), "null")
    kinds = {k for _, k in results + [default]} - {"null"}
    if len(kinds) > 1 or kinds - {"str", "num", "bool"}:
        raise NotVectorized
    (first, (value, _)), *rest = zip(conds, results)  # the parser requires at least one WHEN
    expr: Then | ChainedThen = pl.when(first.fill_null(False)).then(value)
    for cond, (value, _) in rest:
        expr = expr.when(cond.fill_null(False)).then(value)
    return expr.otherwise(default[0]), (kinds.pop() if kinds else "null")


def _col_name(node: A.Node, cols: Columns) -> str | None:
    if isinstance(node, A.Column):
        return cols.names.get(node.parts[-1].lower())
    return None


def _boolean(node: A.Node, cols: Columns) -> pl.Expr:
    e, k = translate(node, cols)
    if k not in ("bool", "null"):
        raise NotVectorized
    return e.cast(pl.Boolean)


def _compare(op: str, left: A.Node, right: A.Node, cols: Columns) -> pl.Expr:
    a, ka = translate(left, cols)
    b, kb = translate(right, cols)
    method = _CMP[op]
    if "null" in (ka, kb):
        return pl.lit(None, dtype=pl.Boolean)
    if ka == kb == "str":
        return getattr(a.str.to_lowercase(), method)(b.str.to_lowercase())
    if ka in ("num", "bool") and kb in ("num", "bool"):
        if ka == "bool":
            a = a.cast(pl.Int64)
        if kb == "bool":
            b = b.cast(pl.Int64)
        return getattr(a, method)(b)
    if {ka, kb} == {"str", "num"}:
        if ka == "str":
            a = a.cast(pl.Float64, strict=False)
        else:
            b = b.cast(pl.Float64, strict=False)
        return getattr(a, method)(b)
    raise NotVectorized


#: ScalarFunction.vectorized_type -> the kind translate() reports
_TYPE_KIND = {"nvarchar(max)": "str", "bigint": "num", "float": "num", "bit": "bool"}


def _call(node: A.Call, cols: Columns) -> tuple[pl.Expr, str]:
    """A scalar function with a vectorised form, as the plugin declares it: ``vectorized``
    (Polars expressions in, one out), or ``vectorized_text`` over a text argument."""
    if node.star or node.distinct or node.over is not None or cols.functions is None:
        raise NotVectorized
    if cols.times and node.name.lower() == "datediff" and not node.namespace and len(node.args) == 3:
        u, a, b = node.args
        times: dict[str, str] = cols.times
        if isinstance(u, A.Column) and isinstance(a, A.Column) and isinstance(b, A.Column) and \
                len(u.parts) == len(a.parts) == len(b.parts) == 1 and \
                a.parts[0].lower() in times and b.parts[0].lower() in times:
            # DATEDIFF between the aliases' event times, as the row path computes it (floor)
            unit = duration_us(u.parts[0], 1, u.pos)
            ta, tb = pl.col(times[a.parts[0].lower()]), pl.col(times[b.parts[0].lower()])
            return (tb - ta) // unit, "num"
    fn = cols.functions.get(node.name, node.namespace)
    if not isinstance(fn, ScalarFunction):
        raise NotVectorized
    if fn.vectorized is not None:
        args = [translate(a, cols)[0] for a in node.args]
        return fn.vectorized(*args), "other"
    if fn.vectorized_text is not None and len(node.args) == 1:
        e, k = translate(node.args[0], cols)
        if k == "null":
            return pl.lit(None), "null"
        if k == "str":
            return fn.vectorized_text(e), _TYPE_KIND.get(fn.vectorized_type, "other")
    raise NotVectorized
