"""Columnar fast path for the common windowed aggregate.

Used when a query is one SELECT ... INTO ... FROM one input TIMESTAMP BY a field,
GROUP BY field keys and one tumbling, hopping (size a multiple of hop) or session
window (partitioned by the group keys, or not partitioned with no keys), no JOIN, APPLY
or CREATE TABLE, a HAVING over such aggregates and the keys, a WHERE of field-versus-constant comparisons, IS [NOT] NULL,
AND, OR and NOT if any, selecting keys, System.Timestamp() and COUNT(*),
COUNT(x), COUNT(DISTINCT x), SUM/AVG(x or CAST(x AS float|bigint)) and
MIN/MAX(CAST(x AS float|bigint)). Anything else runs on the row path.

A batch of JSON bodies is decoded at once (polars reads the newline-joined bodies),
window ids and group keys are computed on columns, and only partial aggregates per
(window, key) are kept: state grows with open windows and keys, not with events
(COUNT(DISTINCT) keeps the distinct values of open windows). The event-ordering policy
(late, early, out of order, Adjust/Drop, per input partition) and the watermark are the
row path's, computed over the batch with running maxima instead of event by event.
Results and counters equal the row path's (tests/unit/processing/test_columnar*.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import polars as pl

from headwater.functions import from_micros, to_datetime, to_micros
from headwater.services.processing.exec.base import MAX_TS, MIN_TS, Env, QueryRuntimeError
from headwater.services.processing.sql import ast as A
from headwater.services.processing.exec.compile import output_name
from headwater.services.processing.exec.watermarks import EARLY_US

__all__ = ["try_columnar", "ColumnarAggregate"]

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"


@dataclass
class _Agg:
    kind: str  # count_star | count | count_distinct | sum | avg | min | max
    column: str | None
    cast: str | None  # float | bigint | None
    name: str


def _plain_column(node: A.Node) -> str | None:
    if isinstance(node, A.Column) and len(node.parts) == 1:
        return node.parts[0]
    return None


def try_columnar(compiled, policy) -> ColumnarAggregate | None:
    plan = compiled.plan
    if len(plan.statements) != 1 or plan.steps or plan.query.tables:
        return None
    ls = plan.statements[0]
    sel = ls.select
    where = None
    if sel.where is not None:
        where = _predicate(sel.where)
        if where is None:
            return None
    if not ls.aggregate or sel.joins or sel.applies or sel.match or sel.distinct or len(ls.windows) != 1:
        return None
    src = sel.source
    ts_col = _plain_column(src.timestamp_by) if src.timestamp_by is not None else None
    if ts_col is None or src.timestamp_over:
        return None
    keys = [_plain_column(k) for k in ls.group_keys]
    if any(k is None for k in keys):
        return None
    win = ls.windows[0]
    if win.label is not None:
        return None
    spec = win.config.columnar()
    if spec is None:
        return None
    if spec["kind"] == "hopping" and spec["size"] % spec["hop"]:
        return None
    if spec["kind"] == "session":
        part = [_plain_column(p) for p in win.partition_by]
        if any(p is None for p in part) or [p.lower() for p in part] != [k.lower() for k in keys]:
            return None
    elif win.partition_by:
        return None
    items: list[tuple[str, str, Any]] = []
    fns = compiled.pm.functions
    for i, item in enumerate(sel.items):
        e, name = item.expr, output_name(item, i)
        col = _plain_column(e)
        if col is not None:
            match = [k for k in keys if k.lower() == col.lower()]
            if not match:
                return None
            items.append(("key", name, match[0]))
        elif isinstance(e, A.SystemTimestamp):
            items.append(("ts", name, None))
        elif isinstance(e, A.Call):
            a = _agg_from_call(e, name, fns)
            if a is None:
                return None
            items.append(("agg", name, a))
        else:
            return None
    having = None
    if sel.having is not None:
        having = _having(compiled, ls, keys, items)
        if having is None:
            return None
    agg = ColumnarAggregate(ts_col, keys, spec, items, policy)
    if having is not None:
        agg.having, hidden, agg.having_alias = having
        agg.aggs.extend(hidden)
        for h in hidden:
            if h.column:
                agg._add_columns([h.column])
    if where is not None:
        agg.where, agg.where_columns = where
        agg._add_columns(agg.where_columns)
    return agg


def _agg_from_call(e: A.Call, name: str, fns) -> _Agg | None:
    """The columnar form of an aggregate call, or None."""
    if e.namespace or e.over is not None:
        return None
    fn = fns.get(f"{e.name} DISTINCT") if e.distinct else fns.get(e.name)
    kind = getattr(fn, "columnar", None)
    if kind not in ("count", "count_distinct", "sum", "avg", "min", "max"):
        return None
    if e.star:
        return _Agg("count_star", None, None, name)
    if len(e.args) != 1:
        return None
    a, cast = e.args[0], None
    if isinstance(a, A.Cast) and not a.try_ and a.type_name in ("float", "bigint"):
        cast, a = a.type_name, a.expr
    col = _plain_column(a)
    if col is None:
        return None
    if e.distinct and kind != "count_distinct":
        return None
    if kind in ("min", "max") and cast is None:
        return None  # text compares case-insensitively on the row path: keep one implementation
    return _Agg(kind, col, cast, name)


def _having(compiled, ls, keys: list[str], items: list):
    """HAVING compiled by the row path's compiler over a record of the group's keys and the
    aggregate results: (predicate over (record, results), hidden aggregates) or None."""
    from headwater.services.processing.exec.compile import ExprCompiler, Scope

    sel = ls.select
    alias = sel.source.ref.lower()
    select_items = {i.alias.lower(): i.expr for i in sel.items if i.alias}
    scope = Scope({alias}, alias, "agg", analytics=[], select_items=select_items, in_having=True)
    try:
        pred = ExprCompiler(compiled.pm).compile(sel.having, scope)
    except Exception:  # noqa: BLE001 - anything unusual: the row path reports it
        return None
    if scope.analytics:
        return None
    key_names = {k.lower() for k in keys}
    hidden = []
    for j, spec in enumerate(scope.aggs):
        a = _agg_from_call(spec.node, f"__having{j}", compiled.pm.functions) if spec.node is not None else None
        if a is None:
            return None
        hidden.append(a)
    # fields read outside aggregates must be group keys (the row path reads the group's first event)
    aggs = {id(spec.node) for spec in scope.aggs}
    stack = [sel.having]
    while stack:
        n = stack.pop()
        if id(n) in aggs:
            continue
        if isinstance(n, A.Column):
            target = select_items.get(n.parts[0].lower()) if len(n.parts) == 1 else None
            if target is not None:
                stack.append(target)
                continue
            if len(n.parts) != 1 or n.parts[0].lower() not in key_names:
                return None
        elif isinstance(n, A.Node):
            for v in vars(n).values():
                if isinstance(v, A.Node):
                    stack.append(v)
                elif isinstance(v, (list, tuple)):
                    stack.extend(x for x in v if isinstance(x, A.Node))
    return pred, hidden, alias


_CMP = {"=": "eq", "<>": "ne", "<": "lt", ">": "gt", "<=": "le", ">=": "ge"}


def _predicate(node: A.Node):
    """WHERE as a function of the batch's dtypes -> polars expression, or None when the
    predicate is outside the subset with the row path's exact meaning: comparisons of a
    field with a number or a string constant (strings compare case-insensitively), IS [NOT]
    NULL, AND, OR, NOT (three-valued, as polars' Kleene logic)."""
    cols: set[str] = set()

    def build(n):
        if isinstance(n, A.Binary) and n.op in ("AND", "OR"):
            left, right = build(n.left), build(n.right)
            if left is None or right is None:
                return None
            if n.op == "AND":
                return lambda d: left(d) & right(d)
            return lambda d: left(d) | right(d)
        if isinstance(n, A.Unary) and n.op == "NOT":
            inner = build(n.operand)
            return None if inner is None else (lambda d: ~inner(d))
        if isinstance(n, A.IsNull):
            c = _plain_column(n.expr)
            if c is None:
                return None
            cols.add(c)
            return (lambda d: pl.col(c).is_not_null()) if n.negated else (lambda d: pl.col(c).is_null())
        if isinstance(n, A.Binary) and n.op in _CMP:
            c, lit, op = _plain_column(n.left), n.right, n.op
            if c is None:
                c, lit = _plain_column(n.right), n.left
                op = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
            if c is None or not isinstance(lit, A.Literal) or lit.value is None or isinstance(lit.value, bool):
                return None
            cols.add(c)
            method = _CMP[op]
            value = lit.value

            def cmp(d, c=c, value=value, method=method):
                dtype = d.get(c)
                if isinstance(value, str):
                    if dtype == pl.Utf8:
                        return getattr(pl.col(c).str.to_lowercase(), method)(value.lower())
                    try:
                        num = float(value)
                    except ValueError:
                        return pl.lit(None, dtype=pl.Boolean)
                    return getattr(pl.col(c).cast(pl.Float64, strict=False), method)(num)
                if dtype in (pl.Utf8, pl.Boolean) or dtype is None:
                    return getattr(pl.col(c).cast(pl.Float64, strict=False), method)(float(value))
                return getattr(pl.col(c), method)(value)
            return cmp
        return None

    f = build(node)
    return None if f is None else (f, sorted(cols))


class ColumnarAggregate:
    def __init__(self, ts_col: str, keys: list[str], spec: dict, items: list, policy) -> None:
        self.ts_col, self.keys, self.spec, self.items, self.policy = ts_col, keys, spec, items, policy
        self.aggs: list[_Agg] = [it[2] for it in items if it[0] == "agg"]
        cols = {ts_col.lower(): ts_col}
        for k in keys:
            cols.setdefault(k.lower(), k)
        for a in self.aggs:
            if a.column:
                cols.setdefault(a.column.lower(), a.column)
        self.columns = list(cols.values())
        self.where = None
        self.where_columns: list[str] = []
        self.having = None  # predicate over Env(recs={alias: keys}, aggs=hidden results)
        self.having_alias = ""
        self.kcols = [f"k{i}" for i in range(len(keys))]
        self.schema: dict[str, Any] | None = None
        self.newest: dict[Any, int] = {}  # per input partition
        self.clock = MIN_TS
        self.partials: list[pl.DataFrame] = []
        self.distinct: dict[int, list[pl.DataFrame]] = {}  # per COUNT(DISTINCT) aggregate
        self.open_min = MAX_TS
        self.sessions: dict[tuple, list] = {}  # key -> [start, last]
        self.session_ends: dict[tuple, int] = {}  # (key, sid) -> end, for closed sessions
        self.ready: list[tuple[int, dict]] = []
        self._pending: list[pl.DataFrame] = []  # session input above the watermark

    # -- decoding --------------------------------------------------------------------------
    def _decode(self, bodies: list[bytes], counters) -> tuple[pl.DataFrame, np.ndarray | None]:
        if self.schema is None:
            self._infer(bodies)
        if self.schema is not None:
            try:
                df = pl.read_ndjson(io.BytesIO(b"\n".join(bodies)), schema=self.schema)
                if df.height == len(bodies):
                    return df, None
            except Exception:  # noqa: BLE001 - odd bodies: decode them one by one below
                pass
        rows = []
        index = []
        for i, b in enumerate(bodies):
            try:
                v = orjson.loads(b)
            except orjson.JSONDecodeError as exc:
                counters.error(f"InputDeserializationError: {exc}")
                continue
            for item in v if isinstance(v, list) else [v]:
                if isinstance(item, dict):
                    rows.append(item)
                    index.append(i)
                else:
                    counters.error("InputDeserializationError: an event must be a JSON object")
        return self._frame(rows), np.asarray(index, dtype=np.int64)

    def _add_columns(self, names: list[str]) -> None:
        have = {c.lower() for c in self.columns}
        for n in names:
            if n.lower() not in have:
                self.columns.append(n)
                have.add(n.lower())

    def _filter(self, df: pl.DataFrame) -> pl.DataFrame:
        """WHERE, with the same three-valued meaning as the row path (only True passes)."""
        actual = {c.lower(): c for c in df.columns}
        spelled = [pl.col(actual[c.lower()]).alias(c) if c.lower() in actual else pl.lit(None).alias(c)
                   for c in self.where_columns if c not in df.columns]
        view = df.with_columns(spelled) if spelled else df
        dtypes = {c: view[c].dtype for c in self.where_columns}
        return df.filter(view.select(self.where(dtypes).alias("__keep"))["__keep"])

    def _infer(self, bodies: list[bytes]) -> None:
        """Column types from a sample of the first batch (polars' own inference)."""
        try:
            sample = pl.read_ndjson(io.BytesIO(b"\n".join(bodies[:1000])))
        except Exception:  # noqa: BLE001 - not plain JSON lines: the slow path infers
            return
        schema = {}
        for c in self.columns:
            if c not in sample.columns or sample[c].dtype not in (pl.Utf8, pl.Int64, pl.Float64, pl.Boolean):
                return
            schema[c] = sample[c].dtype
        self.schema = schema

    def _frame(self, rows: list[dict]) -> pl.DataFrame:
        data: dict[str, list] = {c: [] for c in self.columns}
        lower = {c.lower(): c for c in self.columns}
        exact = True  # JSON keys spelled as in the query: polars may read later batches by name
        for r in rows:
            got = dict.fromkeys(self.columns)
            for k, v in r.items():
                c = lower.get(k.lower())
                if c is not None and got[c] is None:
                    got[c] = v
                    exact = exact and k == c
            for c in self.columns:
                data[c].append(got[c])
        series = []
        for c in self.columns:
            vals = data[c]
            kinds = {type(v) for v in vals if v is not None}
            if kinds <= {int} or kinds <= {int, float} or kinds <= {str} or kinds <= {bool}:
                series.append(pl.Series(c, vals, strict=False))
            else:  # mixed types: keep Python objects' text for keys, numbers stay numbers
                series.append(pl.Series(c, [None if v is None else (v if isinstance(v, (int, float)) and
                                                                    not isinstance(v, bool) else str(v))
                                            for v in vals], dtype=pl.Utf8 if kinds - {int, float} else None,
                                        strict=False))
        df = pl.DataFrame(series) if series else pl.DataFrame()
        if self.schema is None and df.height and exact:
            self.schema = {c: df[c].dtype for c in self.columns}
            if any(t == pl.Null for t in self.schema.values()):
                self.schema = None
        return df

    def _timestamps(self, s: pl.Series, counters) -> pl.Series:
        if s.dtype == pl.Utf8:
            ts = s.str.strptime(pl.Datetime("us"), _TS_FORMAT, strict=False).dt.epoch("us")
        else:
            ts = pl.Series([None] * len(s), dtype=pl.Int64)
        bad = ts.is_null()
        if bad.any():
            vals = ts.to_list()
            raw = s.to_list()
            for i in np.flatnonzero(bad.to_numpy()):
                try:
                    if raw[i] is None:
                        raise ValueError("the TIMESTAMP BY value is NULL")
                    vals[i] = to_micros(to_datetime(raw[i]))
                except (ValueError, TypeError):
                    counters.error(f"TIMESTAMP BY {self.ts_col}: cannot read {raw[i]!r}")
            ts = pl.Series(vals, dtype=pl.Int64)
        return ts

    # -- input --------------------------------------------------------------------------------
    def feed_bodies(self, bodies: list[bytes], arrivals: list[int] | None, counters,
                    partitions: list | None = None) -> None:
        df, index = self._decode(bodies, counters)
        arr = None if arrivals is None else np.asarray(arrivals, dtype=np.int64)
        if index is not None:
            if arr is not None:
                arr = arr[index] if len(index) else arr[:0]
            if partitions is not None:
                partitions = [partitions[i] for i in index]
        self._feed(df, arr, counters, partitions)

    def feed_rows(self, rows: list[dict], arrivals: list[int] | None, counters, partitions: list | None = None) -> None:
        self._feed(self._frame(rows), None if arrivals is None else np.asarray(arrivals, dtype=np.int64), counters,
                   partitions)

    def _feed(self, df: pl.DataFrame, arrivals: np.ndarray | None, counters, partitions: list | None) -> None:
        counters.events_in += df.height
        if df.height == 0:
            return
        ts = self._timestamps(df[self.ts_col], counters)
        df = df.with_columns(ts.alias("__ts"))
        if arrivals is not None:
            df = df.with_columns(pl.Series("__a", arrivals))
        if partitions is not None:
            df = df.with_columns(pl.Series("__p", [str(p) for p in partitions], dtype=pl.Utf8))
        if ts.null_count():
            df = df.filter(pl.col("__ts").is_not_null())
        if df.height == 0:
            return
        if arrivals is None:
            df = self._on_time(df, counters)
        else:
            df = self._policy(df, counters)
        if "__p" in df.columns:
            df = df.drop("__p")
        if df.height:
            if self.spec["kind"] == "session":
                self._pending.append(df)
            else:
                self._aggregate(df)
        self._close(self._watermark())

    def _parts(self, df: pl.DataFrame) -> list[tuple[Any, np.ndarray | None]]:
        """(partition, row mask or None for all rows) of a batch."""
        if "__p" not in df.columns:
            return [(None, None)]
        p = df["__p"].to_numpy()
        return [(k, p == k) for k in dict.fromkeys(p.tolist())]

    def _on_time(self, df: pl.DataFrame, counters) -> pl.DataFrame:
        """Arrival = event time, in time order: only older batches can make an event late."""
        late_us, ooo = self.policy.late_arrival_tolerance_us, self.policy.out_of_order_tolerance_us
        e = df["__ts"].to_numpy().astype(np.int64)
        clock_floor = self.clock - late_us if self.clock > MIN_TS else MIN_TS
        floor = np.full(len(e), clock_floor, dtype=np.int64)
        for part, mask in self._parts(df):
            prev = self.newest.get(part, MIN_TS)
            if prev > MIN_TS:
                if mask is None:
                    floor = np.maximum(floor, prev - ooo)
                else:
                    floor[mask] = np.maximum(floor[mask], prev - ooo)
        low = e < floor
        n_low = int(low.sum())
        keep = np.ones(len(e), dtype=bool)
        if n_low:
            counters.out_of_order += n_low
            if self.policy.out_of_order_action == "drop":
                counters.dropped += n_low
                keep = ~low
            else:
                e = np.where(low, floor, e)
        for part, mask in self._parts(df):
            sel = keep if mask is None else keep & mask
            if sel.any():
                self.newest[part] = max(self.newest.get(part, MIN_TS), int(e[sel].max()))
        if keep.any():
            self.clock = max(self.clock, int(e[keep].max()))
        return df.with_columns(pl.Series("__ts", e)).filter(pl.Series(keep))

    def _policy(self, df: pl.DataFrame, counters) -> pl.DataFrame:
        """The row path's EventClock.accept over a whole batch in arrival order (watermarks.py).

        ``newest`` here is, per partition, the running maximum of ``max(ts, clock - late)``:
        it can exceed the newest accepted time only by clock terms, which the floor holds
        anyway, so floors, adjustments and the watermark are the same as event by event.
        """
        late_us, ooo = self.policy.late_arrival_tolerance_us, self.policy.out_of_order_tolerance_us
        drop = self.policy.out_of_order_action == "drop"
        e = df["__ts"].to_numpy().astype(np.int64)
        a = df["__a"].to_numpy().astype(np.int64)
        clock = np.maximum.accumulate(np.maximum(a, self.clock))
        early = (e - a) > EARLY_US
        late = ~early & (a - e > 0) & (a - e >= late_us)
        ts = np.where(late, a - late_us, e)
        x = np.where(early, MIN_TS, np.maximum(ts, clock - late_us))
        prev = np.empty(len(e), dtype=np.int64)
        parts = self._parts(df)
        last: dict[Any, int] = {}
        for part, mask in parts:
            start = self.newest.get(part, MIN_TS)
            xs = x if mask is None else x[mask]
            run = np.maximum.accumulate(np.maximum(xs, start))
            before = np.concatenate(([start], run[:-1]))
            if mask is None:
                prev = before
            else:
                prev[mask] = before
            last[part] = int(run[-1])
        seen = prev > MIN_TS
        floor = np.maximum(clock - late_us, np.where(seen, prev - ooo, MIN_TS))
        eo = ~late & seen & (ts < prev) & (a - ts > ooo)
        floor = np.where(eo, np.maximum(floor, np.minimum(a - ooo, prev)), floor)
        keep = ~early & ~(late & drop)
        low = keep & (ts < floor)
        counters.early += int(early.sum())
        counters.late += int(late.sum())
        counters.out_of_order += int(low.sum())
        counters.dropped += int(early.sum()) + (int(late.sum()) + int(low.sum()) if drop else 0)
        if drop:
            keep &= ~low
        else:
            ts = np.where(low, floor, ts)
        for part, mask in parts:  # a partition counts for the watermark once an event of it is accepted
            if part in self.newest or (keep if mask is None else keep & mask).any():
                self.newest[part] = last[part]
        self.clock = max(self.clock, int(clock[-1]))
        return df.with_columns(pl.Series("__ts", ts)).filter(pl.Series(keep)).drop("__a")

    def advance_time(self, now: int) -> None:
        self.clock = max(self.clock, now)
        self._close(self._watermark())

    @property
    def watermark(self) -> int:
        """No event from now on gets a timestamp below this (us)."""
        return self._watermark()

    def _watermark(self) -> int:
        w = self.clock - self.policy.late_arrival_tolerance_us if self.clock > MIN_TS else MIN_TS
        if self.newest:
            w = max(w, min(self.newest.values()) - self.policy.out_of_order_tolerance_us)
        return w

    # -- aggregation ------------------------------------------------------------------------------
    def _values(self, df: pl.DataFrame) -> pl.DataFrame:
        exprs = [pl.col("__wid")] + [pl.col(k).alias(f"k{i}") for i, k in enumerate(self.keys)]
        for j, a in enumerate(self.aggs):
            if a.column is None:
                continue
            c = pl.col(a.column)
            dtype = df[a.column].dtype
            if a.cast == "float" or (a.cast is None and a.kind in ("sum", "avg") and dtype == pl.Utf8):
                c = c.cast(pl.Float64, strict=False)
            elif a.cast == "bigint":
                c = c.cast(pl.Int64, strict=False)
            exprs.append(c.alias(f"v{j}"))
        out = df.select(exprs)
        for j, a in enumerate(self.aggs):
            if a.column is not None and (a.cast or out[f"v{j}"].dtype != df[a.column].dtype):
                bad = out[f"v{j}"].is_null() & df[a.column].is_not_null()
                if bad.any():
                    i = int(np.flatnonzero(bad.to_numpy())[0])
                    raise QueryRuntimeError(f"CAST failed: Cannot cast value {df[a.column][i]!r} to type "
                                            f"'{a.cast or 'float'}'")
        return out

    def _assign(self, df: pl.DataFrame) -> pl.DataFrame:
        spec = self.spec
        if spec["kind"] == "hopping":
            size, hop, off = spec["size"], spec["hop"], spec["offset"]
            end0 = ((pl.col("__ts") - off - 1) // hop + 1) * hop + off
            frames = [df.with_columns((end0 + k * hop).alias("__wid")) for k in range(size // hop)]
            return pl.concat(frames) if len(frames) > 1 else frames[0]
        return self._sessions(df)

    def _sessions(self, df: pl.DataFrame) -> pl.DataFrame:
        timeout, maxd = self.spec["timeout"], self.spec["max_duration"]
        keyed = self.keys
        df = df.with_row_index("__i")
        parts = df.partition_by(keyed, maintain_order=True, as_dict=True) if keyed else {(): df}
        wid = np.empty(df.height, dtype=np.int64)
        for key, part in parts.items():
            key = key if isinstance(key, tuple) else (key,)
            ts = part["__ts"].to_numpy()
            idx = part["__i"].to_numpy()
            gaps = np.flatnonzero(np.diff(ts) > timeout) + 1
            cur = self.sessions.get(key)
            i, n = 0, len(ts)
            while i < n:
                if cur is not None:
                    end = min(cur[1] + timeout, ((cur[0] + maxd) // maxd + 1) * maxd)
                    if ts[i] > end:
                        self.session_ends[(key, cur[0])] = end
                        self.open_min = min(self.open_min, end)
                        cur = None
                if cur is None:
                    cur = [int(ts[i]), int(ts[i])]
                cap = ((cur[0] + maxd) // maxd + 1) * maxd
                j = min(int(np.searchsorted(ts, cap, side="right")),
                        int(gaps[np.searchsorted(gaps, i, side="right")]) if len(gaps) and gaps[-1] > i else n)
                j = max(j, i + 1)
                wid[idx[i:j]] = cur[0]
                cur[1] = int(ts[j - 1])
                i = j
            self.sessions[key] = cur
        self._session_open_min()
        return df.with_columns(pl.Series("__wid", wid)).drop("__i")

    def _session_end(self, cur: list) -> int:
        maxd = self.spec["max_duration"]
        return min(cur[1] + self.spec["timeout"], ((cur[0] + maxd) // maxd + 1) * maxd)

    def _session_open_min(self) -> None:
        ends = list(self.session_ends.values()) + [self._session_end(c) for c in self.sessions.values() if c]
        self.open_min = min(ends) if ends else MAX_TS

    def _aggregate(self, df: pl.DataFrame) -> None:
        if self.where is not None:
            df = self._filter(df)
            if df.height == 0:
                return
        df = self._assign(df)
        vals = self._values(df)
        group = ["__wid"] + self.kcols
        aggs = [pl.len().alias("n")]
        for j, a in enumerate(self.aggs):
            v = pl.col(f"v{j}")
            if a.kind == "count":
                aggs.append(v.count().alias(f"c{j}"))
            elif a.kind in ("sum", "avg"):
                aggs += [v.sum().alias(f"s{j}"), v.count().alias(f"c{j}")]
            elif a.kind == "min":
                aggs.append(v.min().alias(f"m{j}"))
            elif a.kind == "max":
                aggs.append(v.max().alias(f"m{j}"))
            elif a.kind == "count_distinct":
                self.distinct.setdefault(j, []).append(vals.select(group + [v.alias("d")]).drop_nulls("d").unique())
        self.partials.append(vals.group_by(group).agg(aggs))
        if self.spec["kind"] == "hopping":
            self.open_min = min(self.open_min, int(vals["__wid"].min()))
        if len(self.partials) > 64:
            self.partials = [self._merge(pl.concat(self.partials))]

    def _merge(self, df: pl.DataFrame) -> pl.DataFrame:
        group = ["__wid"] + self.kcols
        aggs = [pl.col("n").sum()]
        for j, a in enumerate(self.aggs):
            if a.kind == "count":
                aggs.append(pl.col(f"c{j}").sum())
            elif a.kind in ("sum", "avg"):
                aggs += [pl.col(f"s{j}").sum(), pl.col(f"c{j}").sum()]
            elif a.kind == "min":
                aggs.append(pl.col(f"m{j}").min())
            elif a.kind == "max":
                aggs.append(pl.col(f"m{j}").max())
        return df.group_by(group, maintain_order=True).agg(aggs)

    def _release(self, watermark: int) -> None:
        """Sessions see events in time order up to the watermark, as the row path does."""
        if not self._pending:
            return
        df = pl.concat(self._pending, how="vertical_relaxed") if len(self._pending) > 1 else self._pending[0]
        ready = df.filter(pl.col("__ts") <= watermark).sort("__ts", maintain_order=True)
        rest = df.filter(pl.col("__ts") > watermark)
        self._pending = [rest] if rest.height else []
        if ready.height:
            self._aggregate(ready)

    def _close(self, watermark: int) -> None:
        self._release(watermark)
        if self.open_min >= watermark or not self.partials:
            return
        state = self._merge(pl.concat(self.partials, how="vertical_relaxed"))
        if self.spec["kind"] == "hopping":
            ends = state["__wid"]
            done_mask = ends < watermark
        else:
            # open sessions that timed out by the watermark
            for key, cur in list(self.sessions.items()):
                if cur is None:
                    continue
                end = self._session_end(cur)
                if end < watermark:
                    self.session_ends[(key, cur[0])] = end
                    del self.sessions[key]  # state grows with live keys only
            ends_map = {(k, sid): end for (k, sid), end in self.session_ends.items() if end < watermark}
            keys_df = pl.DataFrame({"__wid": [sid for (_, sid) in ends_map],
                                    "__end": [e for e in ends_map.values()],
                                    **{c: [k[i] for (k, _) in ends_map] for i, c in enumerate(self.kcols)}},
                                   schema_overrides={c: state[c].dtype for c in self.kcols})
            state = state.join(keys_df, on=["__wid"] + self.kcols, how="left", nulls_equal=True)
            done_mask = state["__end"].is_not_null()
            for k in ends_map:
                self.session_ends.pop(k, None)
        done = state.filter(done_mask)
        rest = state.filter(~done_mask)
        if "__end" in rest.columns:
            rest = rest.drop("__end")
        self.partials = [rest] if rest.height else []
        if self.spec["kind"] == "hopping":
            self.open_min = int(rest["__wid"].min()) if rest.height else MAX_TS
        else:
            self._session_open_min()
        if done.height:
            self._emit(done, watermark)

    def _emit(self, done: pl.DataFrame, watermark: int) -> None:
        group = ["__wid"] + self.kcols
        keys = None
        for j, frames in list(self.distinct.items()):
            if not frames:
                continue
            alld = pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0]
            if self.spec["kind"] == "hopping":  # window id = end: a numeric filter
                is_closed = pl.col("__wid") < watermark
                closed = alld.filter(is_closed)
                rest = alld.filter(~is_closed)
            else:
                keys = done.select(group) if keys is None else keys
                closed = alld.join(keys, on=group, how="semi", nulls_equal=True)
                rest = alld.join(keys, on=group, how="anti", nulls_equal=True)
            self.distinct[j] = [rest] if rest.height else []
            counts = closed.group_by(group).agg(pl.col("d").n_unique().alias(f"u{j}"))
            done = done.join(counts, on=group, how="left", nulls_equal=True)
        if "__end" not in done.columns:
            done = done.with_columns(pl.col("__wid").alias("__end"))
        done = done.sort("__end", maintain_order=True)
        cols = {c: done[c].to_list() for c in done.columns}
        hidden = [a for a in self.aggs if a.name.startswith("__having")]
        for r in range(done.height):
            end = cols["__end"][r]
            if self.having is not None:
                rec = {k: cols[f"k{i}"][r] for i, k in enumerate(self.keys)}
                res = [self._result(a, self.aggs.index(a), cols, r) for a in hidden]
                if self.having(Env({self.having_alias: rec}, end, aggs=res)) is not True:
                    continue
            row: dict[str, Any] = {}
            for kind, name, what in self.items:
                if name.lower() in {k.lower() for k in row}:
                    continue
                if kind == "key":
                    row[name] = cols[f"k{self.keys.index(what)}"][r]
                elif kind == "ts":
                    row[name] = from_micros(end)
                else:
                    j = self.aggs.index(what)
                    row[name] = self._result(what, j, cols, r)
            self.ready.append((end, row))

    def _result(self, a: _Agg, j: int, cols: dict, r: int) -> Any:
        if a.kind == "count_star":
            return cols["n"][r]
        if a.kind == "count":
            return cols[f"c{j}"][r]
        if a.kind == "count_distinct":
            v = cols.get(f"u{j}", [0] * (r + 1))[r]
            return 0 if v is None else v
        if a.kind == "sum":
            return cols[f"s{j}"][r] if cols[f"c{j}"][r] else None
        if a.kind == "avg":
            c = cols[f"c{j}"][r]
            return cols[f"s{j}"][r] / c if c else None
        return cols[f"m{j}"][r]

    # -- output / checkpoints ----------------------------------------------------------------------
    def drain(self, outputs: dict[str, list]) -> None:
        if self.ready:
            target = next(iter(outputs))
            outputs[target].extend(self.ready)
            self.ready = []

    def flush(self, outputs: dict[str, list]) -> None:
        self._close(MAX_TS)
        self.drain(outputs)

    def snapshot(self) -> Any:
        return {
            "newest": dict(self.newest), "clock": self.clock, "schema": self.schema,
            "partials": [p.to_arrow() for p in self.partials],
            "distinct": {j: [d.to_arrow() for d in v] for j, v in self.distinct.items()},
            "open_min": self.open_min, "sessions": dict(self.sessions), "session_ends": dict(self.session_ends),
            "ready": list(self.ready), "pending": [p.to_arrow() for p in self._pending],
        }

    def restore(self, state: Any) -> None:
        self.newest, self.clock, self.schema = dict(state["newest"]), state["clock"], state["schema"]
        self.partials = [pl.from_arrow(t) for t in state["partials"]]
        self.distinct = {j: [pl.from_arrow(t) for t in v] for j, v in state["distinct"].items()}
        self.open_min = state["open_min"]
        self.sessions = dict(state["sessions"])
        self.session_ends = dict(state["session_ends"])
        self.ready = list(state["ready"])
        self._pending = [pl.from_arrow(t) for t in state["pending"]]
