"""``ReadTable``'s ``filter`` and ``order_by``: a small grammar of its own, compiled to Polars.

The text never reaches a SQL engine (Polars SQL has ``read_csv()`` and other
table functions that open server files). It is parsed here, against the
table's own columns, into Polars expressions::

    filter   := or
    or       := and ("OR" and)*
    and      := not ("AND" not)*
    not      := "NOT" not | predicate
    predicate:= operand [ ("=" | "<>" | "!=" | "<" | "<=" | ">" | ">=") operand
                        | ["NOT"] "LIKE" string
                        | ["NOT"] "IN" "(" literal ("," literal)* ")"
                        | "IS" ["NOT"] "NULL" ]
    operand  := literal | column | "(" or ")"
    literal  := 'text' ('' escapes a quote) | number | -number | TRUE | FALSE | NULL
    column   := name | "quoted name" | [bracketed name] | `backquoted name`

    order_by := column ["ASC" | "DESC"] ["NULLS" ("FIRST" | "LAST")] ("," ...)*

Names match a column exactly, else case-insensitively when that is unambiguous
(as Stream Analytics does). Errors are INVALID_ARGUMENT naming the field and the
1-based position: ``filter: unknown column 'cty' at position 1 (columns: city, n)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from headwater.errors import HeadwaterError, Reason

__all__ = ["apply", "compile_filter", "compile_order", "MAX_TEXT", "MAX_IN_ITEMS"]

#: Longest filter or order_by accepted (characters).
MAX_TEXT = 64 * 1024
#: Most values in one IN list.
MAX_IN_ITEMS = 10_000
#: Deepest nesting of parentheses and NOTs.
MAX_DEPTH = 64

_KEYWORDS = {"AND", "OR", "NOT", "LIKE", "IN", "IS", "NULL", "TRUE", "FALSE", "ASC", "DESC", "NULLS", "FIRST",
             "LAST"}
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*"|\[[^\]]*\]|`[^`]*`)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><>|!=|<=|>=|=|<|>|\(|\)|,|-)
""", re.VERBOSE)


@dataclass(frozen=True)
class _Tok:
    kind: str  # num str qid id op kw end
    text: str
    pos: int  # 0-based offset

    @property
    def upper(self) -> str:
        return self.text.upper()


class _Error(Exception):
    def __init__(self, pos: int, message: str) -> None:
        super().__init__(message)
        self.pos, self.message = pos, message


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    i = 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            what = "an unterminated quoted text" if ch in "'\"[`" else f"unexpected character {ch!r}"
            out.append(_Tok("bad", what, i))  # raised when the parser gets here: errors in reading order
            return out
        kind = m.lastgroup or ""
        if kind != "ws":
            value = m.group()
            if kind == "id" and value.upper() in _KEYWORDS:
                kind = "kw"
            out.append(_Tok(kind, value, i))
        i = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


@dataclass(frozen=True)
class _Col:
    name: str
    dtype: Any  # a polars data type


@dataclass(frozen=True)
class _Lit:
    value: Any  # None, bool, int, float, str
    pos: int


def _family(dtype: Any) -> str:
    import polars as pl

    if dtype == pl.Boolean:
        return "bool"
    if dtype.is_numeric():
        return "number"
    if dtype in (pl.Utf8, pl.Categorical) or isinstance(dtype, pl.Enum):
        return "text"
    if dtype.is_temporal():
        return "time"
    return "other"


def _lit_family(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "text"


_NAMES = {"bool": "a boolean", "number": "a number", "text": "text", "time": "a time", "other": "a value",
          "null": "NULL"}
_CMP = {"=": "eq", "<>": "ne", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}


class _Parser:
    def __init__(self, text: str, schema: dict[str, Any]) -> None:
        self.toks = _tokens(text)
        self.i = 0
        self.schema = schema
        self.lower: dict[str, list[str]] = {}
        for name in schema:
            self.lower.setdefault(name.lower(), []).append(name)
        self.depth = 0

    # -- tokens ----------------------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        t = self.toks[self.i]
        if t.kind == "bad":
            raise _Error(t.pos, t.text)
        return t

    def take(self) -> _Tok:
        t = self.tok
        self.i += 1
        return t

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "kw" and self.tok.upper in words

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def expect_op(self, op: str) -> _Tok:
        if not self.is_op(op):
            raise _Error(self.tok.pos, f"expected {op!r}, found {self._found()}")
        return self.take()

    def _found(self) -> str:
        return "the end" if self.tok.kind == "end" else repr(self.tok.text)

    def end(self) -> None:
        if self.tok.kind != "end":
            raise _Error(self.tok.pos, f"unexpected {self._found()}")

    def nest(self, pos: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Error(pos, f"nested more than {MAX_DEPTH} levels deep")

    # -- names -----------------------------------------------------------------------
    def column(self) -> _Col:
        t = self.take()
        if t.kind == "qid":
            name = t.text[1:-1].replace('""', '"') if t.text[0] == '"' else t.text[1:-1]
            if name not in self.schema:
                raise self._unknown(t.pos, name)
            return _Col(name, self.schema[name])
        if t.kind != "id":
            raise _Error(t.pos, f"expected a column name, found {repr(t.text) if t.text else 'the end'}")
        if t.text in self.schema:
            return _Col(t.text, self.schema[t.text])
        matches = self.lower.get(t.text.lower(), [])
        if len(matches) == 1:
            return _Col(matches[0], self.schema[matches[0]])
        if len(matches) > 1:
            raise _Error(t.pos, f"column name {t.text!r} is ambiguous ({', '.join(matches)}): quote it")
        raise self._unknown(t.pos, t.text)

    def _unknown(self, pos: int, name: str) -> _Error:
        cols = ", ".join(self.schema) or "none"
        return _Error(pos, f"unknown column {name!r} (columns: {cols[:300]})")

    # -- filter ----------------------------------------------------------------------
    def or_(self) -> Any:
        left = self.and_()
        while self.is_kw("OR"):
            self.take()
            left = left | self.and_()
        return left

    def and_(self) -> Any:
        left = self.not_()
        while self.is_kw("AND"):
            self.take()
            left = left & self.not_()
        return left

    def not_(self) -> Any:
        if self.is_kw("NOT"):
            t = self.take()
            self.nest(t.pos)
            inner = self.not_()
            self.depth -= 1
            return ~inner
        return self.predicate()

    def operand(self) -> _Col | _Lit | Any:
        t = self.tok
        if t.kind == "op" and t.text == "(":
            self.take()
            self.nest(t.pos)
            inner = self.or_()
            self.depth -= 1
            self.expect_op(")")
            return inner
        if t.kind in ("num", "str") or (t.kind == "op" and t.text == "-") or self.is_kw("TRUE", "FALSE", "NULL"):
            return self.literal()
        if t.kind in ("id", "qid"):
            return self.column()
        raise _Error(t.pos, f"expected a column, a value or '(', found {self._found()}")

    def literal(self) -> _Lit:
        t = self.take()
        if t.kind == "op" and t.text == "-":
            n = self.take()
            if n.kind != "num":
                raise _Error(n.pos, "expected a number after '-'")
            return _Lit(-_number(n.text), t.pos)
        if t.kind == "num":
            return _Lit(_number(t.text), t.pos)
        if t.kind == "str":
            return _Lit(t.text[1:-1].replace("''", "'"), t.pos)
        if t.kind == "kw" and t.upper in ("TRUE", "FALSE", "NULL"):
            return _Lit({"TRUE": True, "FALSE": False, "NULL": None}[t.upper], t.pos)
        raise _Error(t.pos, f"expected a value (text in single quotes, a number, TRUE, FALSE or NULL), "
                            f"found {repr(t.text) if t.text else 'the end'}")

    def predicate(self) -> Any:
        start = self.tok.pos
        left = self.operand()
        if self.tok.kind == "op" and self.tok.text in _CMP:
            op = self.take()
            right = self.operand()
            return self.compare(left, op, right)
        negate = False
        if self.is_kw("NOT"):
            nxt = self.toks[self.i + 1]
            if nxt.kind == "bad":
                raise _Error(nxt.pos, nxt.text)
            if nxt.kind == "kw" and nxt.upper in ("LIKE", "IN"):
                self.take()
                negate = True
        if self.is_kw("LIKE"):
            t = self.take()
            col = self.need_column(left, start, "LIKE")
            pat = self.literal()
            if not isinstance(pat.value, str):
                raise _Error(pat.pos, "LIKE needs a pattern in single quotes")
            if _family(col.dtype) != "text":
                raise _Error(t.pos, f"LIKE needs a text column; {col.name!r} is {_NAMES[_family(col.dtype)]}")
            expr = _like(col.name, pat.value)
            return ~expr if negate else expr
        if self.is_kw("IN"):
            self.take()
            col = self.need_column(left, start, "IN")
            self.expect_op("(")
            values: list[_Lit] = [self.literal()]
            while self.is_op(","):
                self.take()
                values.append(self.literal())
                if len(values) > MAX_IN_ITEMS:
                    raise _Error(self.tok.pos, f"an IN list holds at most {MAX_IN_ITEMS} values")
            self.expect_op(")")
            for v in values:
                self.check_types(col, v, v.pos)
            expr = _col_expr(col).is_in([_coerce(col, v) for v in values if v.value is not None])
            return ~expr if negate else expr
        if self.is_kw("IS"):
            self.take()
            neg = self.is_kw("NOT")
            if neg:
                self.take()
            if not self.is_kw("NULL"):
                raise _Error(self.tok.pos, f"expected NULL after IS{' NOT' if neg else ''}, found {self._found()}")
            self.take()
            expr = _operand_expr(left)
            return expr.is_not_null() if neg else expr.is_null()
        if isinstance(left, (_Col, _Lit)):
            if isinstance(left, _Col) and _family(left.dtype) == "bool":
                return _col_expr(left)
            if self.tok.kind == "end" or self.is_op(")") or self.is_kw("AND", "OR"):
                raise _Error(start, "expected a condition (a comparison, LIKE, IN or IS NULL), "
                                    f"not a bare {'column' if isinstance(left, _Col) else 'value'}")
            raise _Error(self.tok.pos, f"expected a comparison (=, <>, <, <=, >, >=), LIKE, IN or IS, "
                                       f"found {self._found()}")
        return left  # a parenthesised condition

    def need_column(self, left: Any, pos: int, what: str) -> _Col:
        if not isinstance(left, _Col):
            raise _Error(pos, f"{what} needs a column on its left")
        return left

    def check_types(self, col: _Col, lit: _Lit, pos: int) -> None:
        have, want = _lit_family(lit.value), _family(col.dtype)
        if have == "null" or want == "other" or have == want or (want == "time" and have == "text"):
            return
        raise _Error(pos, f"column {col.name!r} is {_NAMES[want]}, compared with {_NAMES[have]}")

    def compare(self, left: Any, op: _Tok, right: Any) -> Any:
        for side in (left, right):
            if not isinstance(side, (_Col, _Lit)):
                raise _Error(op.pos, f"{op.text!r} compares columns and values, not conditions")
        if isinstance(left, _Lit) and isinstance(right, _Col):
            left, right, text = right, left, {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op.text, op.text)
        else:
            text = op.text
        if isinstance(left, _Col) and isinstance(right, _Lit):
            self.check_types(left, right, right.pos)
            rhs: Any = _lit_expr(left, right)
        elif isinstance(left, _Col) and isinstance(right, _Col):
            a, b = _family(left.dtype), _family(right.dtype)
            if a != b and "other" not in (a, b):
                raise _Error(op.pos, f"column {left.name!r} is {_NAMES[a]}, compared with column {right.name!r} "
                                     f"({_NAMES[b]})")
            rhs = _col_expr(right)
        else:
            import polars as pl

            return pl.lit(_py_compare(left.value, text, right.value))
        return getattr(_col_expr(left), _CMP[text])(rhs)

    # -- order_by --------------------------------------------------------------------
    def order(self) -> tuple[list[str], list[bool], list[bool]]:
        cols, desc, nulls_last = [], [], []
        while True:
            col = self.column()
            d = False
            if self.is_kw("ASC", "DESC"):
                d = self.take().upper == "DESC"
            last = not d  # PostgreSQL's default: NULLs sort as the largest value
            if self.is_kw("NULLS"):
                self.take()
                if not self.is_kw("FIRST", "LAST"):
                    raise _Error(self.tok.pos, f"expected FIRST or LAST after NULLS, found {self._found()}")
                last = self.take().upper == "LAST"
            cols.append(col.name)
            desc.append(d)
            nulls_last.append(last)
            if not self.is_op(","):
                break
            self.take()
        self.end()
        return cols, desc, nulls_last


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def _py_compare(a: Any, op: str, b: Any) -> bool | None:
    if a is None or b is None:
        return None
    try:
        return {"=": a == b, "<>": a != b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    except TypeError:
        return False


def _col_expr(col: _Col) -> Any:
    import polars as pl

    return pl.col(col.name)


def _operand_expr(x: Any) -> Any:
    import polars as pl

    if isinstance(x, _Col):
        return _col_expr(x)
    if isinstance(x, _Lit):
        return pl.lit(x.value)
    return x


def _coerce(col: _Col, lit: _Lit) -> Any:
    """The literal as the column's type: ISO text for time columns."""
    if _family(col.dtype) == "time" and isinstance(lit.value, str):
        try:
            value: Any = datetime.fromisoformat(lit.value.replace("Z", "+00:00"))
        except ValueError:
            raise _Error(lit.pos, f"column {col.name!r} is a time: {lit.value!r} is not an ISO 8601 time") from None
        import polars as pl

        if col.dtype == pl.Date:
            return value.date() if isinstance(value, datetime) else value
        tz = getattr(col.dtype, "time_zone", None)
        if tz and value.tzinfo is None:
            from zoneinfo import ZoneInfo

            value = value.replace(tzinfo=ZoneInfo(tz))
        elif not tz and value.tzinfo is not None:
            from datetime import UTC

            value = value.astimezone(UTC).replace(tzinfo=None)
        return value
    return lit.value


def _lit_expr(col: _Col, lit: _Lit) -> Any:
    import polars as pl

    value = _coerce(col, lit)
    if value is None:
        return pl.lit(None)
    if isinstance(value, (datetime, date)):
        return pl.lit(value).cast(col.dtype)
    return pl.lit(value)


def _like(name: str, pattern: str) -> Any:
    """LIKE as a string test: prefix, suffix, substring or equality when the pattern allows,
    else an anchored regex (Polars' Rust regex runs in linear time)."""
    import polars as pl

    col = pl.col(name)
    if "_" not in pattern:
        core = pattern.strip("%")
        if "%" not in core:
            starts, ends = pattern.startswith("%"), pattern.endswith("%") and len(pattern) > 1
            if not starts and not ends:
                return col == core
            if starts and ends:
                return col.str.contains(core, literal=True)
            return col.str.ends_with(core) if starts else col.str.starts_with(core)
    parts = []
    for ch in pattern:
        parts.append(".*" if ch == "%" else "." if ch == "_" else re.escape(ch))
    return pl.col(name).str.contains(f"(?s)^{''.join(parts)}$")


def _fail(field: str, text: str, err: _Error) -> HeadwaterError:
    near = text[err.pos:err.pos + 20]
    where = f"at position {err.pos + 1}" + (f" (near {near!r})" if near else " (the end)")
    return HeadwaterError(Reason.INVALID_ARGUMENT, f"{field}: {err.message} {where}",
                          metadata={"field": field, "position": str(err.pos + 1)})


def _schema(table: pa.Table) -> dict[str, Any]:
    import polars as pl

    return dict(pl.from_arrow(table.slice(0, 0)).schema)  # type: ignore[union-attr]


def _check_text(field: str, text: str) -> None:
    if len(text) > MAX_TEXT:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field} is {len(text)} characters; at most {MAX_TEXT}",
                             metadata={"field": field})


def compile_filter(text: str, schema: dict[str, Any]) -> Any:
    """The Polars expression of a ``filter``; INVALID_ARGUMENT naming the position when malformed."""
    _check_text("filter", text)
    try:
        p = _Parser(text, schema)
        expr = p.or_()
        p.end()
    except _Error as err:
        raise _fail("filter", text, err) from None
    return expr


def compile_order(text: str, schema: dict[str, Any]) -> tuple[list[str], list[bool], list[bool]]:
    """Columns, descending flags and nulls-last flags of an ``order_by``."""
    _check_text("order_by", text)
    try:
        return _Parser(text, schema).order()
    except _Error as err:
        raise _fail("order_by", text, err) from None


def apply(table: pa.Table, filter_: str = "", order_by: str = "") -> pa.Table:
    """Rows of ``table`` matching ``filter_``, sorted by ``order_by`` (stable: ties keep write order)."""
    if not filter_.strip() and not order_by.strip():
        return table
    import polars as pl

    schema = _schema(table)
    expr = compile_filter(filter_, schema) if filter_.strip() else None
    order = compile_order(order_by, schema) if order_by.strip() else None
    if not table.num_columns:
        return table
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    try:
        if expr is not None:
            df = df.filter(expr)
        if order is not None:
            cols, desc, last = order
            df = df.sort(cols, descending=desc, nulls_last=last, maintain_order=True)
    except pl.exceptions.PolarsError as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        field = "filter" if expr is not None else "order_by"
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"cannot apply {field}: {text}",
                             metadata={"field": field}) from None
    return df.to_arrow()
