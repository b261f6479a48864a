"""Recursive-descent parser: query text -> :mod:`ast`. Every error is a QueryCompileError."""

from __future__ import annotations

import math
from typing import Any

from headwater.functions import BIGINT_MAX
from headwater.services.processing.sql import ast as A
from headwater.services.processing.sql.diagnostics import error
from headwater.services.processing.sql.lexer import KEYWORDS, Token, tokenize

__all__ = ["parse"]

_CMP = {"=", "<>", "!=", "<", ">", "<=", ">=", "!<", "!>"}
_TYPES = {"bigint", "float", "nvarchar", "datetime", "bit", "record", "array", "int", "real", "varchar"}
# words that end a FROM source (never taken as an alias)
_CLAUSE_WORDS = KEYWORDS | {"left", "inner", "cross", "outer", "match_recognize", "timestamp", "partition"}


#: Limits that keep a query's compile time and memory bounded (issue 9): longer query
#: text or a longer IN list is a compile error.
MAX_QUERY_CHARS = 512_000
MAX_IN_LIST = 10_000


def parse(text: str) -> A.Query:
    """Parse a whole query (``WITH`` steps then one or more statements)."""
    if len(text) > MAX_QUERY_CHARS:
        raise error(f"the query is {len(text):,} characters long; at most {MAX_QUERY_CHARS:,} are allowed", (1, 1))
    return _Parser(tokenize(text)).query()



def _finite(t) -> float:
    """A number token's float value; one past float's range is a compile error."""
    v = float(t.value)
    if math.isinf(v):
        raise error(f"the number {t.value} is outside the float range", t.pos)
    return v

class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.toks = tokens
        self.i = 0

    # -- token helpers ------------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.toks[self.i]

    def peek(self, k: int = 1) -> Token:
        return self.toks[min(self.i + k, len(self.toks) - 1)]

    def advance(self) -> Token:
        t = self.toks[self.i]
        if t.kind != "eof":
            self.i += 1
        return t

    def at_kw(self, *words: str) -> bool:
        return self.tok.is_kw(*words)

    def at_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def accept_kw(self, *words: str) -> Token | None:
        return self.advance() if self.at_kw(*words) else None

    def accept_op(self, *ops: str) -> Token | None:
        return self.advance() if self.at_op(*ops) else None

    def expect_kw(self, word: str) -> Token:
        if not self.at_kw(word):
            raise self.unexpected(f"expected {word.upper()}")
        return self.advance()

    def expect_op(self, op: str) -> Token:
        if not self.at_op(op):
            raise self.unexpected(f"expected '{op}'")
        return self.advance()

    def unexpected(self, what: str):
        t = self.tok
        found = "end of query" if t.kind == "eof" else repr(t.value)
        return error(f"{what}, found {found}", t.pos)

    def ident(self, what: str = "a name") -> Token:
        t = self.tok
        if t.kind == "qident" or (t.kind == "ident" and t.value.lower() not in KEYWORDS):
            return self.advance()
        raise self.unexpected(f"expected {what}")

    def any_name(self, what: str = "a name") -> Token:
        """An identifier, bracketed identifier or keyword used as a name (after a dot)."""
        if self.tok.kind in ("ident", "qident"):
            return self.advance()
        raise self.unexpected(f"expected {what}")

    # -- statements -----------------------------------------------------------
    def query(self) -> A.Query:
        start = self.tok.pos
        steps: list[tuple[str, A.Statement, tuple[int, int]]] = []
        statements: list[A.Statement] = []
        tables: dict[str, list[tuple[str, str]]] = {}
        while self.accept_op(";") or self.at_kw("create"):
            if self.at_kw("create"):
                name, cols = self.create_table()
                if name.value.lower() in tables:
                    raise error(f"table {name.value!r} is declared twice", name.pos)
                tables[name.value.lower()] = cols
        if self.accept_kw("with"):
            while True:
                name = self.ident("a step name")
                self.expect_kw("as")
                self.expect_op("(")
                stmt = self.statement()
                self.expect_op(")")
                steps.append((name.value, stmt, name.pos))
                if not self.accept_op(","):
                    break
        while self.tok.kind != "eof":
            if self.accept_op(";"):
                continue
            if not self.at_kw("select"):
                raise self.unexpected("expected SELECT")
            statements.append(self.statement())
        if not statements:
            raise error("the query has no SELECT statement", self.tok.pos if steps else start)
        return A.Query(start, steps, statements, tables)

    def create_table(self) -> tuple[Token, list[tuple[str, str]]]:
        """``CREATE TABLE input (col type, ...)``: the schema events of an input must have."""
        self.advance()
        self.expect_kw("table")
        name = self.ident("a table (input) name")
        self.expect_op("(")
        cols: list[tuple[str, str]] = []
        while True:
            col = self.any_name("a column name")
            t = self.any_name("a type")
            tname = t.value.lower()
            if tname not in _TYPES:
                raise error(f"unknown type {t.value!r}; use bigint, float, nvarchar(max), datetime, bit, "
                            "record or array", t.pos)
            if self.accept_op("("):
                self.advance()
                self.expect_op(")")
            tname = {"int": "bigint", "real": "float", "varchar": "nvarchar", "nvarchar": "nvarchar(max)"}.get(
                tname, tname)
            cols.append((col.value, "nvarchar(max)" if tname == "nvarchar" else tname))
            if not self.accept_op(","):
                break
        self.expect_op(")")
        return name, cols

    def statement(self) -> A.Statement:
        pos = self.tok.pos
        selects = [self.select()]
        while self.accept_kw("union"):
            self.accept_kw("all")
            selects.append(self.select())
        return A.Statement(pos, selects)

    def select(self) -> A.Select:
        pos = self.expect_kw("select").pos
        distinct = bool(self.accept_kw("distinct"))
        self.accept_kw("all")
        items = [self.select_item()]
        while self.accept_op(","):
            items.append(self.select_item())
        into = into_pos = None
        if self.at_kw("into"):
            self.advance()
            t = self.ident("an output name")
            into, into_pos = t.value, t.pos
        self.expect_kw("from")
        source = self.source()
        sel = A.Select(pos, items, into, source, distinct=distinct, into_pos=into_pos)
        while True:
            if self.at_kw("join", "inner", "left"):
                sel.joins.append(self.join())
            elif self.at_kw("cross", "outer"):
                sel.applies.append(self.apply())
            elif self.at_kw("match_recognize"):
                sel.match = self.match_recognize()
            else:
                break
        if self.accept_kw("where"):
            sel.where = self.expr()
        if self.at_kw("group"):
            self.advance()
            self.expect_kw("by")
            sel.group_by.append(self.expr())
            while self.accept_op(","):
                sel.group_by.append(self.expr())
        if self.accept_kw("having"):
            sel.having = self.expr()
        return sel

    def select_item(self) -> A.SelectItem:
        pos = self.tok.pos
        if self.accept_op("*"):
            return A.SelectItem(pos, A.Star(pos))
        # alias = expr (T-SQL style)
        if self.tok.kind in ("ident", "qident") and self.peek().kind == "op" and self.peek().value == "=" \
                and not (self.tok.kind == "ident" and self.tok.value.lower() in KEYWORDS):
            name = self.advance().value
            self.advance()
            return A.SelectItem(pos, self.expr(), name)
        # path.*
        j = self.i
        parts = []
        while self.toks[j].kind in ("ident", "qident") and self.toks[j + 1].kind == "op" and self.toks[j + 1].value == ".":
            parts.append(self.toks[j].value)
            j += 2
            if self.toks[j].kind == "op" and self.toks[j].value == "*":
                self.i = j + 1
                return A.SelectItem(pos, A.Star(pos, parts))
        expr = self.expr()
        alias: str | None = None
        if self.accept_kw("as"):
            t = self.tok
            if t.kind == "string":
                alias = self.advance().value
            else:
                alias = self.any_name("an alias").value
        elif self.tok.kind == "qident" or (self.tok.kind == "ident" and self.tok.value.lower() not in KEYWORDS):
            alias = self.advance().value
        return A.SelectItem(pos, expr, alias)

    def source(self) -> A.Source:
        name = self.ident("an input or step name")
        src = A.Source(name.pos, name.value)
        if self.accept_kw("as"):
            src.alias = self.ident("an alias").value
        elif self.tok.kind == "qident" or (self.tok.kind == "ident" and self.tok.value.lower() not in _CLAUSE_WORDS):
            src.alias = self.advance().value
        while True:
            if self.at_kw("timestamp"):
                self.advance()
                self.expect_kw("by")
                src.timestamp_by = self.expr()
                if self.accept_kw("over"):
                    src.timestamp_over.append(self.expr())
                    while self.accept_op(","):
                        src.timestamp_over.append(self.expr())
            elif self.at_kw("partition"):
                self.advance()
                self.expect_kw("by")
                src.partition_by = self.ident("a partition column").value
            else:
                return src

    def join(self) -> A.Join:
        pos = self.tok.pos
        kind = "inner"
        if self.accept_kw("left"):
            kind = "left"
            self.accept_kw("outer")
        else:
            self.accept_kw("inner")
        self.expect_kw("join")
        src = self.source()
        self.expect_kw("on")
        return A.Join(pos, kind, src, self.expr())

    def apply(self) -> A.Apply:
        pos = self.tok.pos
        outer = bool(self.accept_kw("outer"))
        if not outer:
            self.expect_kw("cross")
        self.expect_kw("apply")
        fn = self.primary()
        if not isinstance(fn, A.Call):
            raise error("APPLY needs a function such as GetArrayElements(...)", fn.pos)
        self.accept_kw("as")
        alias = self.ident("an alias for the APPLY result").value
        return A.Apply(pos, outer, fn, alias)

    def duration(self) -> tuple[str, float]:
        self.expect_kw("duration")
        self.expect_op("(")
        unit = self.any_name("a time unit").value
        self.expect_op(",")
        n = self.number()
        self.expect_op(")")
        return (unit, n)

    def number(self) -> float:
        neg = bool(self.accept_op("-"))
        if self.tok.kind != "number":
            raise self.unexpected("expected a number")
        t = self.advance()
        v = _finite(t)
        return -v if neg else v

    def match_recognize(self) -> A.MatchRecognize:
        pos = self.advance().pos
        self.expect_op("(")
        self.expect_kw("limit")
        dur = self.duration()
        part: list[A.Node] = []
        if self.accept_kw("partition"):
            self.expect_kw("by")
            part.append(self.expr())
            while self.accept_op(","):
                part.append(self.expr())
        self.expect_kw("measures")
        measures = [self.select_item()]
        while self.accept_op(","):
            measures.append(self.select_item())
        skip_next = True
        if self.accept_kw("after"):
            self.expect_kw("match")
            self.expect_kw("skip")
            if self.accept_kw("to"):
                self.expect_kw("next")
                self.expect_kw("row")
            else:
                self.expect_kw("past")
                self.expect_kw("last")
                self.expect_kw("row")
                skip_next = False
        self.expect_kw("pattern")
        self.expect_op("(")
        pattern = self._pattern_alt()
        self.expect_op(")")
        self.expect_kw("define")
        define: dict[str, A.Node] = {}
        while True:
            sym = self.ident("a pattern variable")
            self.expect_kw("as")
            define[sym.value.lower()] = self.expr()
            if not self.accept_op(","):
                break
        self.expect_op(")")
        alias = None
        if self.accept_kw("as"):
            alias = self.ident("an alias").value
        return A.MatchRecognize(pos, dur, part, measures, skip_next, pattern, define, alias)

    # pattern: ('alt', [seq...]) / ('seq', [item...]) / ('sym', name) with ('rep', item, lo, hi)
    def _pattern_alt(self):
        seqs = [self._pattern_seq()]
        while self.accept_op("|"):
            seqs.append(self._pattern_seq())
        return ("alt", seqs)

    def _pattern_seq(self) -> tuple[str, list[tuple[str, Any, int, int | None]]]:
        items: list[tuple[str, Any, int, int | None]] = []
        while self.tok.kind in ("ident", "qident") or self.at_op("("):
            if self.accept_op("("):
                atom = self._pattern_alt()
                self.expect_op(")")
            else:
                atom = ("sym", self.advance().value.lower())
            lo: int = 1
            hi: int | None = 1
            if self.accept_op("+"):
                lo, hi = 1, None
            elif self.accept_op("*"):
                lo, hi = 0, None
            elif self.accept_op("{"):
                lo = int(self.number()) if self.tok.kind == "number" else 0
                hi = lo
                if self.accept_op(","):
                    hi = int(self.number()) if self.tok.kind == "number" else None
                self.expect_op("}")
            elif self.tok.kind == "op" and self.tok.value == "?":
                self.advance()
                lo, hi = 0, 1
            items.append(("rep", atom, lo, hi))
        if not items:
            raise self.unexpected("expected a pattern")
        return ("seq", items)

    # -- expressions ----------------------------------------------------------
    def expr(self) -> A.Node:
        return self.or_()

    def or_(self) -> A.Node:
        left = self.and_()
        while self.at_kw("or"):
            pos = self.advance().pos
            left = A.Binary(pos, "OR", left, self.and_())
        return left

    def and_(self) -> A.Node:
        left = self.not_()
        while self.at_kw("and"):
            pos = self.advance().pos
            left = A.Binary(pos, "AND", left, self.not_())
        return left

    def not_(self) -> A.Node:
        if self.at_kw("not"):
            pos = self.advance().pos
            return A.Unary(pos, "NOT", self.not_())
        return self.comparison()

    def comparison(self) -> A.Node:
        left = self.additive()
        while True:
            t = self.tok
            if t.kind == "op" and t.value in _CMP:
                self.advance()
                op = {"!=": "<>", "!<": ">=", "!>": "<="}.get(t.value, t.value)
                left = A.Binary(t.pos, op, left, self.additive())
                continue
            negated = False
            if t.is_kw("not") and self.peek().is_kw("like", "between", "in"):
                self.advance()
                negated = True
            if self.at_kw("is"):
                self.advance()
                neg = bool(self.accept_kw("not"))
                self.expect_kw("null")
                left = A.IsNull(t.pos, left, neg)
            elif self.at_kw("like"):
                self.advance()
                left = A.Like(t.pos, left, self.additive(), negated)
            elif self.at_kw("between"):
                self.advance()
                low = self.additive()
                self.expect_kw("and")
                left = A.Between(t.pos, left, low, self.additive(), negated)
            elif self.at_kw("in"):
                self.advance()
                self.expect_op("(")
                items = [self.expr()]
                while self.accept_op(","):
                    if len(items) >= MAX_IN_LIST:
                        raise error(f"an IN list may have at most {MAX_IN_LIST} items", t.pos)
                    items.append(self.expr())
                self.expect_op(")")
                left = A.InList(t.pos, left, items, negated)
            else:
                return left

    def additive(self) -> A.Node:
        left = self.multiplicative()
        while self.at_op("+", "-", "||", "&", "|", "^"):
            t = self.advance()
            left = A.Binary(t.pos, t.value, left, self.multiplicative())
        return left

    def multiplicative(self) -> A.Node:
        left = self.unary()
        while self.at_op("*", "/", "%"):
            t = self.advance()
            left = A.Binary(t.pos, t.value, left, self.unary())
        return left

    def unary(self) -> A.Node:
        if self.at_op("-", "+", "~"):
            t = self.advance()
            operand = self.unary()
            if t.value == "-" and isinstance(operand, A.Literal) and isinstance(operand.value, (int, float)) \
                    and not isinstance(operand.value, bool):
                return A.Literal(t.pos, -operand.value)
            return A.Unary(t.pos, t.value, operand)
        return self.postfix(self.primary())

    def postfix(self, node: A.Node) -> A.Node:
        while self.at_op(".") and not isinstance(node, A.Column):
            self.advance()
            if self.at_op("*"):
                raise self.unexpected("'.*' is only allowed in a SELECT list")
            name = self.any_name("a field name")
            node = A.Subscript(node.pos, node, [name.value])
        return node

    def primary(self) -> A.Node:
        t = self.tok
        if t.kind == "number":
            self.advance()
            txt = t.value
            if any(c in txt for c in ".eE"):
                return A.Literal(t.pos, _finite(t))
            v = int(txt)
            after_minus = self.i >= 2 and self.toks[self.i - 2].kind == "op" and self.toks[self.i - 2].value == "-"
            if v > BIGINT_MAX + after_minus:  # -9223372036854775808: the minus is an operator
                raise error(f"the number {txt} is outside the bigint range; write it as a float ({txt}.0)", t.pos)
            return A.Literal(t.pos, v)
        if t.kind == "string":
            self.advance()
            return A.Literal(t.pos, t.value)
        if t.kind == "op" and t.value == "(":
            self.advance()
            if self.at_kw("select"):
                raise error("subqueries are not supported; use a WITH step", self.tok.pos)
            e = self.expr()
            self.expect_op(")")
            return e
        if t.kind == "qident":
            return self.path_or_call()
        if t.kind != "ident":
            raise self.unexpected("expected an expression")
        w = t.value.lower()
        if w == "null":
            self.advance()
            return A.Literal(t.pos, None)
        if w in ("true", "false"):
            self.advance()
            return A.Literal(t.pos, w == "true")
        if w == "case":
            return self.case()
        if w in ("cast", "try_cast") and self.peek().kind == "op" and self.peek().value == "(":
            self.advance()
            self.advance()
            e = self.expr()
            self.expect_kw("as")
            type_tok = self.any_name("a type name")
            tname = type_tok.value.lower()
            if tname not in _TYPES:
                raise error(f"unknown type {type_tok.value!r}; use bigint, float, nvarchar(max), "
                            "datetime, bit, record or array", type_tok.pos)
            if self.accept_op("("):
                arg = self.advance()
                if tname != "nvarchar" or arg.value.lower() != "max":
                    if not (tname in ("varchar", "nvarchar") and arg.kind == "number"):
                        raise error("only nvarchar(max) is supported", arg.pos)
                self.expect_op(")")
            tname = {"int": "bigint", "real": "float", "varchar": "nvarchar"}.get(tname, tname)
            self.expect_op(")")
            return A.Cast(t.pos, e, "nvarchar(max)" if tname == "nvarchar" else tname, w == "try_cast")
        if w in KEYWORDS and w not in ("left", "timestamp") and not (
                w == "right" and self.peek().kind == "op" and self.peek().value == "("):  # RIGHT(s, n)
            raise self.unexpected("expected an expression")
        return self.path_or_call()

    def path_or_call(self) -> A.Node:
        first = self.advance()
        parts = [first.value]
        while self.at_op(".") and self.peek().kind in ("ident", "qident"):
            self.advance()
            parts.append(self.advance().value)
        low = [p.lower() for p in parts]
        if low[0] == "system" and len(parts) >= 2:
            if low[1] == "timestamp":
                if self.accept_op("("):
                    self.expect_op(")")
                return self._rest(A.SystemTimestamp(first.pos), parts[2:])
            if low[1] == "window":
                if self.accept_op("("):
                    self.expect_op(")")
                rest = parts[2:]
                while self.at_op(".") and self.peek().kind in ("ident", "qident"):
                    self.advance()
                    rest.append(self.advance().value)
                if len(rest) == 1 and rest[0].lower() == "id":
                    return A.SystemWindowId(first.pos)
                raise error("System.Window() is used as System.Window().Id", first.pos)
        if self.at_op("(") and first.kind == "ident":
            if len(parts) > 2:
                raise error(f"unknown function {'.'.join(parts)!r}", first.pos)
            ns = parts[0] if len(parts) == 2 else ""
            return self.call(first.pos, parts[-1], ns)
        return A.Column(first.pos, parts)

    def _rest(self, node: A.Node, rest: list[str]) -> A.Node:
        return A.Subscript(node.pos, node, rest) if rest else node

    def call(self, pos, name: str, namespace: str) -> A.Call:
        self.expect_op("(")
        call = A.Call(pos, name, [], namespace)
        if self.accept_op(")"):
            pass
        elif self.at_op("*") and self.peek().kind == "op" and self.peek().value == ")":
            self.advance()
            self.advance()
            call.star = True
        else:
            if self.accept_kw("distinct"):
                call.distinct = True
            else:
                self.accept_kw("all")
            call.args.append(self.expr())
            while self.accept_op(","):
                call.args.append(self.expr())
            self.expect_op(")")
        if self.at_kw("over"):
            call.over = self.over()
        elif self.at_kw("within") and self.peek().is_kw("group"):
            call.over = self.within_group(call)
        return call

    def within_group(self, call: A.Call) -> A.OverClause:
        """T-SQL's ``PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x [ASC|DESC])``: Stream
        Analytics documents only ``OVER (ORDER BY x)``; this spelling means the same."""
        pos = self.advance().pos
        if call.name.lower() not in ("percentile_cont", "percentile_disc"):
            raise error(f"WITHIN GROUP is only for PERCENTILE_CONT and PERCENTILE_DISC, not {call.name}", pos)
        if not (self.peek().kind == "op" and self.peek().value == "(" and self.peek(2).is_kw("order")):
            self.advance()
            if not self.accept_op("("):
                raise self.unexpected("expected '('")
            raise self.unexpected("expected ORDER BY")
        over = self.over()  # GROUP ( ORDER BY ... ), read as OVER ( ORDER BY ... )
        if over.partition_by or over.limit_duration or over.when or not over.order_by:
            raise error("WITHIN GROUP takes (ORDER BY expression [ASC|DESC]) only", pos)
        over.pos = pos
        return over

    def over(self) -> A.OverClause:
        pos = self.advance().pos
        self.expect_op("(")
        over = A.OverClause(pos)
        while not self.at_op(")"):
            if self.accept_kw("partition"):
                self.expect_kw("by")
                over.partition_by.append(self.expr())
                while self.accept_op(","):
                    over.partition_by.append(self.expr())
            elif self.accept_kw("limit"):
                over.limit_duration = self.duration()
            elif self.accept_kw("when"):
                over.when = self.expr()
            elif self.accept_kw("order"):
                self.expect_kw("by")
                while True:
                    p = self.tok.pos
                    e = self.expr()
                    desc = False
                    if self.accept_kw("desc"):
                        desc = True
                    else:
                        self.accept_kw("asc")
                    over.order_by.append(A.OrderItem(p, e, desc))
                    if not self.accept_op(","):
                        break
            else:
                raise self.unexpected("expected PARTITION BY, LIMIT DURATION, WHEN, ORDER BY or ')'")
        self.expect_op(")")
        return over

    def case(self) -> A.Case:
        pos = self.advance().pos
        operand = None if self.at_kw("when") else self.expr()
        whens = []
        while self.accept_kw("when"):
            cond = self.expr()
            self.expect_kw("then")
            whens.append((cond, self.expr()))
        if not whens:
            raise self.unexpected("expected WHEN")
        default = self.expr() if self.accept_kw("else") else None
        self.expect_kw("end")
        return A.Case(pos, operand, whens, default)
