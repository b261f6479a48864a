"""Vectorised operators: batches are Polars frames (Arrow underneath) with the event time
in ``__ts`` (int64 us).

- :class:`VectorSource`: decodes a batch at once (JSON bodies through polars'
  NDJSON reader, only the fields the plan reads), computes event times, applies the
  event-ordering policy over the whole batch (the row implementation's rules, with running
  maxima per input partition) and releases events up to the watermark in time order.
- :class:`VectorStatement`: WHERE, then a window aggregate (partial aggregates per window
  and group key, merged as windows close) or a projection.

Expressions run as Polars expressions where :mod:`..plan.vexpr` has an exact form, else
through the row implementation, one expression over the batch's rows.
"""

from __future__ import annotations

import io
import math
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import orjson
import polars as pl
import pyarrow as pa
import pyarrow.json as pj

from headwater.functions import (
    BIGINT_MAX,
    AggregateKind,
    CastError,
    bigint_overflow,
    from_micros,
    json_text,
    to_datetime,
    to_micros,
)
from headwater.serializers import DecodeError, loads_json
from headwater.services.processing.exec.base import MAX_TS, MIN_TS, Env, QueryRuntimeError
from headwater.services.processing.exec.jsondecode import TypedDecoder
from headwater.services.processing.exec.watermarks import EARLY_US
from headwater.services.processing.exec.window_aggregate import group_key
from headwater.services.processing.plan.vexpr import PLAIN, REC, TS, Columns, NotVectorized, translate
from headwater.services.processing.sql import ast as A
from headwater.windows import WindowConfig, WindowLogic

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

#: Rows a statement outputs: (event time, record) pairs, or one batch with the time in ``TS``.
Rows = list[tuple[int, dict]]

__all__ = ["SharedDecode", "VectorSource", "VectorStatement", "VectorAggregate", "VExpr", "frame_to_rows", "rows_to_frame"]

_TS_FORMAT = "%Y-%m-%dT%H:%M:%S%.fZ"
#: a text value as polars' NDJSON reader writes a number, boolean, record or array it read
_NOT_TEXT = r"(?s)^(?:-?[0-9][0-9.eE+-]*|true|false|[\[{].*)$"
_INTERNAL = (TS, "__a", "__p", "__s", REC)
#: the prefix of analytic functions' result columns inside a statement (``__an:0``, ...)
AN = "__an:"
_ARROW: dict[PolarsDataType, Any] = {pl.Utf8: pa.string(), pl.Int64: pa.int64(), pl.Float64: pa.float64(), pl.Boolean: pa.bool_()}
_VALUE_ERRORS = (CastError, ValueError, TypeError, ArithmeticError, AttributeError, KeyError, IndexError)


#: SUM/AVG partial sums of integers (exact past 64 bits) and the bigint range
_WIDE = pl.Decimal(38, 0)
_BIGINT_MAX = BIGINT_MAX
_GROUPABLE = (pl.Utf8, pl.Int64, pl.Float64, pl.Boolean, pl.Null)


def _series(name: str, values: list) -> pl.Series:
    """Values that group and compare: one plain type, else numbers stay numbers and other
    values become their text (records and arrays as JSON), as the row path's group keys.
    Records and arrays go to text without Polars inferring a nested type first (which is
    never groupable, and took seconds for one event nested a few hundred levels deep)."""
    if not any(isinstance(v, (dict, list)) for v in values):
        try:
            s = pl.Series(name, values, strict=False)
            if s.dtype in _GROUPABLE or isinstance(s.dtype, pl.Datetime):
                return s
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            pass
    return pl.Series(name, [None if v is None else v if isinstance(v, (int, float)) and not isinstance(v, bool)
                            else _text(v) for v in values], dtype=pl.Utf8 if any(
                                not isinstance(v, (int, float)) or isinstance(v, bool) for v in values
                                if v is not None) else None, strict=False)


def _text(v: Any) -> str:
    if isinstance(v, (dict, list)):
        return json_text(v)
    return str(v)


def concat(frames: list[pl.DataFrame], exact: bool = False) -> pl.DataFrame:
    """Batches of one stream as one; a column whose type changed between batches becomes
    text, or with ``exact`` its values as they are (a column of Python values)."""
    if len(frames) == 1:
        return frames[0]
    if exact:
        seen: dict[str, set] = {}
        for f in frames:
            for c, t in f.schema.items():
                seen.setdefault(c, set())
                if t != pl.Null:
                    seen[c].add(t)

        def fit(f: pl.DataFrame) -> pl.DataFrame:
            cols = []
            for c, t in f.schema.items():
                want = seen[c]
                if len(want) > 1 and t != pl.Object:
                    cols.append(pl.Series(c, f[c].to_list(), dtype=pl.Object))
                elif len(want) == 1 and t == pl.Null:
                    (w,) = want
                    cols.append(pl.Series(c, [None] * f.height, dtype=w) if w == pl.Object else f[c].cast(w))
            return f.with_columns(cols) if cols else f
        return pl.concat([fit(f) for f in frames], how="diagonal")
    try:
        return pl.concat(frames, how="diagonal_relaxed")
    except (pl.exceptions.SchemaError, pl.exceptions.ComputeError, pl.exceptions.InvalidOperationError):
        types: dict[str, set] = {}
        for f in frames:
            for c, t in f.schema.items():
                types.setdefault(c, set()).add(t)
        mixed = [c for c, ts in types.items() if len(ts) > 1]
        if any(pl.Object in types[c] for c in mixed):  # Python values (records, mixed types) have no text cast
            return concat(frames, exact=True)
        return pl.concat([f.with_columns([pl.col(c).cast(pl.Utf8) for c in mixed if c in f.columns])
                          for f in frames], how="diagonal_relaxed")


def exact_series(name: str, values: list) -> pl.Series:
    """Values as a typed column when they share one plain type, else as the Python values."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {int} or kinds <= {str} or kinds <= {bool} or kinds <= {float}:
        try:
            return pl.Series(name, values, strict=False)
        except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
            pass
    return pl.Series(name, values, dtype=pl.Object)


def in_time_order(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` sorted by time, arrival order kept among equal times; a batch already in
    order (events arriving in time order) is returned as it is (one pass to tell)."""
    return df if df[TS].is_sorted() else df.sort(TS, maintain_order=True)


def frame_to_rows(df: pl.DataFrame) -> list[tuple[int, dict]]:
    """``(ts, record)`` pairs of a batch (records without the internal columns)."""
    if df is None or df.height == 0:
        return []
    ts = df[TS].to_list()
    if REC in df.columns:
        return list(zip(ts, df[REC].to_list()))
    recs = df.drop([c for c in df.columns if c in _INTERNAL or c.startswith(AN)]).to_dicts()
    return list(zip(ts, recs))


def records_frame(rows: list[dict]) -> pl.DataFrame:
    """Whole records kept as they are (``SELECT *`` where a typed batch would change them)."""
    return pl.DataFrame([pl.Series(REC, rows, dtype=pl.Object)]) if rows else \
        pl.DataFrame({REC: []}, schema={REC: pl.Object})


def as_records(df: pl.DataFrame) -> pl.DataFrame:
    """A typed batch (no NULLs, so no absent fields) as whole records."""
    if REC in df.columns:
        return df
    inner = [c for c in df.columns if c not in _INTERNAL]
    keep = [c for c in df.columns if c in _INTERNAL]
    return pl.DataFrame([df[c] for c in keep] + [pl.Series(REC, df.select(inner).to_dicts(), dtype=pl.Object)])


def rows_to_frame(items: list[tuple[int, dict]]) -> pl.DataFrame:
    names: dict[str, str] = {}
    for _, rec in items:
        for k in rec:
            names.setdefault(k.lower(), k)
    cols = {c: exact_series(c, [_get(rec, c) for _, rec in items]) for c in names.values()}
    df = pl.DataFrame(list(cols.values())) if cols else pl.DataFrame({"__empty": [None] * len(items)}).drop("__empty")
    return df.with_columns(pl.Series(TS, [t for t, _ in items], dtype=pl.Int64))


def _get(rec: dict, key: str) -> Any:
    v = rec.get(key)
    if v is None and key not in rec:
        low = key.lower()
        for k, x in rec.items():
            if k.lower() == low:
                return x
    return v


class Batch:
    """One batch as expressions see it: columns by name (case-insensitively), and its rows
    for expressions that run on the row implementation (decoded once, on first use)."""

    def __init__(self, df: pl.DataFrame, alias: str, functions, analytic: dict | None = None) -> None:
        self.df, self.alias = df, alias
        self.cols = Columns.of(df, {alias}, functions)
        self.cols.analytic = analytic
        self._envs: list[Env] | None = None

    def envs(self) -> list[Env]:
        if self._envs is None:
            alias = self.alias
            self._envs = [Env({alias: rec}, ts) for ts, rec in frame_to_rows(self.df)]
            an = sorted((c for c in self.df.columns if c.startswith(AN)), key=lambda c: int(c[len(AN):]))
            if an:  # the analytic functions' values, as the row implementation's closures read them
                for e, vals in zip(self._envs, zip(*(self.df[c].to_list() for c in an))):
                    e.an = list(vals)
        return self._envs


class VExpr:
    """One expression: vectorised where it can be, else its row closure per event."""

    def __init__(self, node: A.Node, row: Callable[[Env], Any]) -> None:
        self.node, self.row = node, row

    def expr(self, batch: Batch) -> pl.Expr | None:
        batch.cols.checks = []
        try:
            e = translate(self.node, batch.cols)[0]
        except NotVectorized:
            return None
        if batch.cols.checks and batch.df.select(pl.any_horizontal(batch.cols.checks)).item():
            return None  # e.g. a division by zero: the row implementation fails as it should
        return e

    def series(self, batch: Batch, name: str, predicate: bool = False, key: bool = False) -> pl.Series:
        """The expression's values over the batch; ``key`` values must group (no Python objects)."""
        e = self.expr(batch)
        if e is not None:
            try:
                s = batch.df.select(e.alias(name)).to_series()
                if s.len() == 1 and batch.df.height != 1:
                    s = s.extend_constant(s[0], batch.df.height - 1)
                return s.fill_null(False).cast(pl.Boolean) if predicate else s
            except pl.exceptions.PolarsError:
                pass  # a failing CAST or a type Polars refuses: the row implementation says what happens
        row = self.row
        if predicate:
            return pl.Series(name, [row(e) is True for e in batch.envs()], dtype=pl.Boolean)
        values = [row(e) for e in batch.envs()]
        return _series(name, values) if key else exact_series(name, values)


# -- source ----------------------------------------------------------------------------------
class VectorSource:
    """Events of one input as one FROM clause sees them, a batch at a time."""

    vectorized = True
    #: batches of different types are concatenated keeping values (a JOIN compares them)
    exact = False

    def __init__(self, input_name: str, alias: str, ts_field: str | None, ts_row: Callable[[Env], Any] | None,
                 policy, fields: set[str] | None, system: set[str]) -> None:
        self.input = input_name.lower()
        self.alias = alias.lower()
        self.ts_field = ts_field
        self.ts_row = ts_row
        self.ts_fn = ts_row  # the TIMESTAMP BY closure (row), as the row source names it
        self.app = ts_row is not None
        self.policy = policy
        self.fields = fields  # lower-case field names; None = all
        self.system = system
        self.schema: dict[str, pl.DataType] | None = None
        self._typed: TypedDecoder | None = None
        self._typed_schema: dict[str, pl.DataType] | None = None
        self._parse = None
        self.newest: dict[Any, int] = {}
        self.clock = MIN_TS
        self.buffer: list[pl.DataFrame] = []

    # -- decoding ----------------------------------------------------------------------------
    def decode(self, bodies: list[bytes], counters, joined: Any = None) -> tuple[pl.DataFrame, np.ndarray | None]:
        """A frame of the needed fields; ``index`` maps rows to bodies when not one to one.
        ``joined``: the bodies already newline-separated in one buffer (packed reads)."""
        if self.schema is None:
            self._infer(bodies)
        if self.schema is not None:
            if self._typed is None or self._typed_schema is not self.schema:
                low = self.ts_field.lower() if self.ts_field is not None else None
                iso = next((c for c in self.schema if c.lower() == low), None)
                self._typed, self._typed_schema = TypedDecoder(self.schema, self.fields, iso), self.schema
            df = self._typed.decode(bodies)
            if df is None:  # the compiled decode is still loading: the readers of JSON lines
                if joined is None:
                    joined = bodies.newline_joined() if hasattr(bodies, "newline_joined") else b"\n".join(bodies)
                df = self.decode_buffer(joined, len(bodies))
            if isinstance(df, pl.DataFrame) and not (self.exact and self._whole_floats(df)):
                return df, None
        return self._decode_rows(bodies, counters)

    @staticmethod
    def _whole_floats(df: pl.DataFrame) -> bool:
        """A float column with whole numbers: maybe integers in the JSON, which a JOIN must
        keep as integers (the event by event decode does)."""
        floats = [(pl.col(c) == pl.col(c).floor()).any() for c, t in df.schema.items() if t == pl.Float64]
        return bool(floats) and bool(df.select(pl.any_horizontal(floats)).item())

    def _decode_rows(self, bodies, counters) -> tuple[pl.DataFrame, np.ndarray]:
        rows, index = [], []
        for i, b in enumerate(bodies):
            try:
                v = loads_json(b, self.fields)
            except (orjson.JSONDecodeError, DecodeError) as exc:
                counters.error(f"InputDeserializationError: {exc}", index=i, body=True)
                continue
            for item in v if isinstance(v, list) else [v]:
                if isinstance(item, dict):
                    rows.append(item)
                    index.append(i)
                else:
                    counters.error("InputDeserializationError: an event must be a JSON object", index=i, body=True)
        return self.frame(rows), np.asarray(index, dtype=np.int64)

    def decode_buffer(self, buf: bytes | memoryview, n: int) -> pl.DataFrame | None:
        """``n`` newline-separated JSON objects at once (Arrow's JSON reader, only the fields
        the plan reads, in the types of the first batch); None when the batch does not read
        so (other types, arrays of events, bad JSON): then it is decoded event by event."""
        schema = self.schema
        if schema is None:
            return None
        if self.fields is not None:
            df = self._read_ndjson(buf, n, schema)
            if df is not None:
                return df
        if self._parse is None:
            fields = [(c, _ARROW[t]) for c, t in schema.items()]
            self._parse = pj.ParseOptions(explicit_schema=pa.schema(fields), newlines_in_values=False,
                                          unexpected_field_behavior="ignore" if self.fields is not None else "error")
        try:
            table = pj.read_json(pa.BufferReader(pa.py_buffer(buf)), parse_options=self._parse)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None
        if table.num_rows != n:
            return None
        if self.fields is None and any(col.null_count for col in table.columns):
            return None  # whole records: a NULL may be an absent field, which a typed batch would add
        return cast(pl.DataFrame, pl.from_arrow(table))  # a Table converts to a DataFrame

    def _read_ndjson(self, buf: bytes | memoryview, n: int, schema: dict[str, pl.DataType]) -> pl.DataFrame | None:
        """Polars' NDJSON reader (faster than Arrow's here): it refuses what Arrow refuses
        except that it writes numbers, booleans, records and arrays of a text column as their
        text; so when a text value reads like one of those (``"12"`` as well as ``12``), None:
        Arrow's reader decides (and refuses such a batch as the row path expects)."""
        try:
            df = pl.read_ndjson(io.BytesIO(buf), schema=schema)
        except (pl.exceptions.PolarsError, ValueError, TypeError):
            return None
        if df.height != n:
            return None
        text = [pl.col(c).str.contains(_NOT_TEXT).any() for c, t in schema.items() if t == pl.Utf8]
        if text and df.select(pl.any_horizontal(text)).item():
            return None
        return df

    def _infer(self, bodies: list[bytes]) -> None:
        """Field names as spelled in the data and their types, from the first batch."""
        try:
            sample = pl.read_ndjson(io.BytesIO(b"\n".join(bodies[:1000])))
        except Exception:  # noqa: BLE001 - not plain JSON lines: the slow path decodes
            return
        schema = {}
        for c in sample.columns:
            if self.fields is None or c.lower() in self.fields:
                if sample[c].dtype not in (pl.Utf8, pl.Int64, pl.Float64, pl.Boolean):
                    return
                if sample[c].dtype == pl.Float64 and (sample[c].abs() >= 2.0 ** 63).any():
                    return  # maybe integers past bigint, typed float here: the row decode refuses them
                schema[c] = sample[c].dtype
        if self.fields is not None and {c.lower() for c in schema} != self.fields & {c.lower() for c in
                                                                                   sample.columns}:
            return
        if schema:
            self.schema = schema

    def frame(self, rows: list[dict]) -> pl.DataFrame:
        if self.fields is None:
            return records_frame(rows)
        names: dict[str, str] = {}
        for r in rows:
            for k in r:
                low = k.lower()
                if (self.fields is None or low in self.fields) and low not in names:
                    names[low] = k
        series = []
        for c in names.values():
            vals = []
            for r in rows:
                v = r.get(c)
                if v is None and c not in r:
                    v = _get(r, c)
                vals.append(v)
            kinds = {type(v) for v in vals if v is not None}
            if kinds <= {int} or (kinds <= {int, float} and not self.exact) or kinds <= {str} or kinds <= {bool} \
                    or kinds <= {float}:
                series.append(pl.Series(c, vals, strict=False))
            else:  # records, arrays, mixed types: the values themselves (expressions read them by row)
                series.append(pl.Series(c, vals, dtype=pl.Object))
        if not series:
            return pl.DataFrame({"__n": [0] * len(rows)}).drop("__n") if rows else pl.DataFrame()
        return pl.DataFrame(series)

    # -- input ---------------------------------------------------------------------------------
    def push(self, df: pl.DataFrame, height: int, arrivals: np.ndarray | None, partitions: list | None,
             counters, now: int, parsed: pl.Series | None = None) -> None:
        """A decoded batch of ``height`` events (``df`` may have no columns); ``parsed``: the
        TIMESTAMP BY field's times read with a shared decode (:class:`SharedDecode`)."""
        if height == 0:
            return
        # the TIMESTAMP BY field's times, read with the batch (jsondecode.TypedDecoder.iso)
        if self._typed is not None and self._typed.micros is not None:
            if self._typed.micros[0] is df and parsed is None:
                parsed = self._typed.micros[1]
            self._typed.micros = None
        if self.fields is None and self.system and REC not in df.columns:
            df = as_records(df)  # system columns go into the records, where a payload field wins
        if df.width == 0:
            df = pl.DataFrame({"__a": np.zeros(height, dtype=np.int64)})
        if arrivals is not None:
            df = df.with_columns(pl.Series("__a", arrivals, dtype=pl.Int64))
        elif "__a" in df.columns:
            df = df.drop("__a")
        self._one_part = None
        if isinstance(partitions, str):  # one partition for the whole batch (packed reads)
            self._one_part = partitions
            partitions = [partitions] * height if self.system else None
        elif partitions is not None:
            df = df.with_columns(pl.Series("__p", [str(p) for p in partitions], dtype=pl.Utf8))
        ctx = counters.context
        if self.app and counters.verdicts is not None and ctx is not None and ctx[1] is not None:
            seqs = np.asarray(ctx[1], dtype=np.int64)  # each event's sequence number, for its verdict
            if ctx[2] is not None:
                seqs = seqs[np.asarray(ctx[2], dtype=np.int64)] if len(ctx[2]) else seqs[:0]
            if len(seqs) == height:
                df = df.with_columns(pl.Series("__s", seqs, dtype=pl.Int64))
        if self.system:
            df = self._system_columns(df, arrivals, partitions)
        if not self.app:
            a = arrivals if arrivals is not None else np.full(height, now, dtype=np.int64)
            df = df.with_columns(pl.Series(TS, a, dtype=pl.Int64))
            self.clock = max(self.clock, int(a.max()))
        else:
            ts = self._timestamps(df, counters, parsed)
            df = df.with_columns(ts.alias(TS))
            if ts.null_count():
                df = df.filter(pl.col(TS).is_not_null())
            if df.height == 0:
                return
            df = self._on_time(df, counters) if "__a" not in df.columns else self._policy(df, counters)
        df = df.drop([c for c in ("__a", "__p", "__s") if c in df.columns])
        if df.height:
            if self.buffer and (REC in df.columns) != (REC in self.buffer[0].columns):
                df = as_records(df)
                self.buffer = [as_records(b) for b in self.buffer]
            self.buffer.append(df)

    def _system_columns(self, df: pl.DataFrame, arrivals, partitions) -> pl.DataFrame:
        """``PartitionId`` (a number) and ``EventEnqueuedUtcTime``, as Stream Analytics adds
        them to Event Hubs events; a payload field of the same name wins, event by event."""
        if REC in df.columns:
            from datetime import UTC, datetime

            recs = []
            for i, rec in enumerate(df[REC].to_list()):
                rec = dict(rec)
                if "PartitionId" in self.system and partitions is not None:
                    p = partitions[i]
                    rec.setdefault("PartitionId", int(p) if str(p).isdigit() else p)
                if "EventEnqueuedUtcTime" in self.system and arrivals is not None:
                    rec.setdefault("EventEnqueuedUtcTime", datetime.fromtimestamp(int(arrivals[i]) / 1e6, UTC))
                recs.append(rec)
            return df.with_columns(pl.Series(REC, recs, dtype=pl.Object))
        have = {c.lower(): c for c in df.columns}
        add = []
        if "PartitionId" in self.system and partitions is not None:
            vals = [int(p) if str(p).isdigit() else p for p in partitions]
            if "partitionid" in have:
                mine = df[have["partitionid"]].to_list()
                vals = [m if m is not None else v for m, v in zip(mine, vals)]
                add.append(exact_series(have["partitionid"], vals))
            else:
                add.append(exact_series("PartitionId", vals))
        if "EventEnqueuedUtcTime" in self.system and "eventenqueuedutctime" not in have and arrivals is not None:
            add.append(pl.Series("EventEnqueuedUtcTime", arrivals, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")))
        return df.with_columns(add) if add else df

    def _timestamps(self, df: pl.DataFrame, counters, parsed: pl.Series | None = None) -> pl.Series:
        """Each event's time (us); ``parsed``: the times the decode read already (NULL where
        a text is not of the plain ISO form, which Polars' parser reads here as before)."""
        name = None
        if self.ts_field is not None:
            low = self.ts_field.lower()
            name = next((c for c in df.columns if c.lower() == low), None)
        if name is not None and df[name].dtype == pl.Utf8:
            s = df[name]
            if parsed is not None and parsed.len() == s.len():
                ts = parsed
                other = np.flatnonzero((parsed.is_null() & s.is_not_null()).to_numpy())
                if len(other):
                    again = s.gather(other).str.strptime(pl.Datetime("us"), _TS_FORMAT, strict=False).dt.epoch("us")
                    ts = ts.scatter(other, again)
            else:
                ts = s.str.strptime(pl.Datetime("us"), _TS_FORMAT, strict=False).dt.epoch("us")
            raw = s
        else:
            envs = [Env({self.alias: rec}, 0) for _, rec in frame_to_rows(df.with_columns(pl.lit(0).alias(TS)))]
            ts_row = self.ts_row
            assert ts_row is not None  # self.app: only a TIMESTAMP BY source reads times
            vals = []
            for e in envs:
                try:
                    vals.append(ts_row(e))
                except Exception:  # noqa: BLE001 - counted below as an unreadable time
                    vals.append(None)
            raw = pl.Series(vals, dtype=pl.Object) if vals else pl.Series([], dtype=pl.Utf8)
            ts = pl.Series([None] * df.height, dtype=pl.Int64)
        bad = ts.is_null()
        if bad.any():
            vals = ts.to_list()
            raws = raw.to_list()
            for i in np.flatnonzero(bad.to_numpy()):
                try:
                    if raws[i] is None:
                        raise ValueError("the TIMESTAMP BY value is NULL")
                    vals[i] = to_micros(to_datetime(raws[i]))
                except (ValueError, TypeError) as exc:
                    counters.error(f"input {self.input!r}: {exc}", index=int(i))
            ts = pl.Series(vals, dtype=pl.Int64)
        return ts

    def _parts(self, df: pl.DataFrame) -> list[tuple[Any, np.ndarray | None]]:
        if "__p" not in df.columns:
            return [(getattr(self, "_one_part", None), None)]
        p = df["__p"].to_numpy()
        return [(k, p == k) for k in dict.fromkeys(p.tolist())]

    def _on_time(self, df: pl.DataFrame, counters) -> pl.DataFrame:
        """Arrival = event time, in time order: only older batches can make an event late."""
        df = in_time_order(df)
        late_us, ooo = self.policy.late_arrival_tolerance_us, self.policy.out_of_order_tolerance_us
        e = df[TS].to_numpy().astype(np.int64)
        clock_floor = self.clock - late_us if self.clock > MIN_TS else MIN_TS
        floor = np.full(len(e), clock_floor, dtype=np.int64)
        parts = self._parts(df)
        for part, mask in parts:
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
        for part, mask in parts:
            sel = keep if mask is None else keep & mask
            if sel.any():
                self.newest[part] = max(self.newest.get(part, MIN_TS), int(e[sel].max()))
        if keep.any():
            self.clock = max(self.clock, int(e[keep].max()))
        if n_low == 0:  # in order (the usual batch): the frame as it is
            return df
        return df.with_columns(pl.Series(TS, e)).filter(pl.Series(keep))

    def _policy(self, df: pl.DataFrame, counters) -> pl.DataFrame:
        """EventClock.accept (watermarks.py) over a whole batch in arrival order: ``newest``
        is, per partition, the running maximum of ``max(ts, clock - late)``; it exceeds the
        newest accepted time only by clock terms, which the floor holds anyway."""
        late_us, ooo = self.policy.late_arrival_tolerance_us, self.policy.out_of_order_tolerance_us
        drop = self.policy.out_of_order_action == "drop"
        e = df[TS].to_numpy().astype(np.int64)
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
        if counters.verdicts is not None:
            counters.verdicts.add_batch(
                self.input, self._one_part if "__p" not in df.columns else df["__p"].to_list(),
                df["__s"].to_numpy() if "__s" in df.columns else None, a, e, ts, keep, late, early, low, self)
        for part, mask in parts:  # a partition counts for the watermark once an event of it is accepted
            if part in self.newest or (keep if mask is None else keep & mask).any():
                self.newest[part] = last[part]
        self.clock = max(self.clock, int(clock[-1]))
        return df.with_columns(pl.Series(TS, ts)).filter(pl.Series(keep))

    # -- time ------------------------------------------------------------------------------------
    def advance_time(self, now: int) -> None:
        self.clock = max(self.clock, now)

    def watermark(self) -> int:
        if not self.app:
            return self.clock
        w = self.clock - self.policy.late_arrival_tolerance_us if self.clock > MIN_TS else MIN_TS
        if self.newest:
            w = max(w, min(self.newest.values()) - self.policy.out_of_order_tolerance_us)
        return w

    def release(self, watermark: int) -> pl.DataFrame | None:
        """Events with ``ts <= watermark``, in time order (arrival order among equal times)."""
        if not self.buffer:
            return None
        df = concat(self.buffer, self.exact)
        if cast(int, df[TS].max()) <= watermark:  # an Int64 column with rows
            self.buffer = []
            return in_time_order(df)
        mask = df[TS] <= watermark
        ready = df.filter(mask)
        rest = df.filter(~mask)
        self.buffer = [rest] if rest.height else []
        return in_time_order(ready) if ready.height else None

    # -- state --------------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, pl.DataFrame]]:
        meta = {"newest": [[k, v] for k, v in self.newest.items()], "clock": self.clock,
                "schema": {c: str(t) for c, t in (self.schema or {}).items()} if self.schema else None}
        buf = concat(self.buffer, self.exact) if self.buffer else None
        return meta, ({"buffer": buf} if buf is not None else {})

    def load(self, meta: dict, tables: dict[str, pl.DataFrame]) -> None:
        self.newest = {k: v for k, v in meta["newest"]}
        self.clock = meta["clock"]
        if meta.get("schema") and self.schema is None:  # the types the batches were decoded in
            known: dict[str, Any] = {str(t): t for t in _ARROW}
            if all(t in known for t in meta["schema"].values()):
                self.schema = {c: known[t] for c, t in meta["schema"].items()}
        self.buffer = [tables["buffer"]] if "buffer" in tables else []



class SharedDecode:
    """The sources of one input that decode it alike (a self-join's two sides: the same
    TIMESTAMP BY field, the same exactness, named fields) decode each batch once, with a
    typed decoder over the union of the fields they read; each takes its own columns.

    The shared decode counts only when it gives a frame: every body then decodes typed for
    the union of the fields, so for each source's fewer fields too, into the same columns,
    with no error (the decode declines a batch, it never drops a body). Otherwise (a body
    one side cannot decode, the kernels still loading, a float column an exact source must
    read event by event) that source decodes the batch itself as it does alone, with its
    own errors and dead letters."""

    def __init__(self, sources: list[VectorSource]) -> None:
        groups: dict[tuple[Any, ...], list[int]] = {}
        for k, s in enumerate(sources):
            if s.fields is not None and (s.ts_field is not None or not s.app):
                key = (s.app, s.ts_field.lower() if s.ts_field is not None else None, s.exact)
                groups.setdefault(key, []).append(k)
        self.sources = sources
        self.groups = [g for g in groups.values() if len(g) > 1]
        self._decoders: dict[int, tuple[tuple[int, ...], TypedDecoder | None]] = {}

    def _decoder(self, gi: int, members: list[VectorSource]) -> TypedDecoder | None:
        schemas = tuple(id(m.schema) for m in members)
        hit = self._decoders.get(gi)
        if hit is not None and hit[0] == schemas:
            return hit[1]
        union: dict[str, pl.DataType] = {}
        for m in members:
            for c, t in (m.schema or {}).items():
                union.setdefault(c, t)
        dec = None
        alike = all(m.schema is not None and all(union[c] == t for c, t in m.schema.items()) for m in members)
        if alike and len({c.lower() for c in union}) == len(union):  # one type and one spelling per field
            ts = members[0].ts_field
            iso = next((c for c in union if ts is not None and c.lower() == ts.lower()), None)
            fields: set[str] = set().union(*(m.fields or set() for m in members))
            dec = TypedDecoder(union, fields, iso)
        self._decoders[gi] = (schemas, dec)
        return dec

    def decode(self, bodies: Any) -> list[tuple[pl.DataFrame, pl.Series | None] | None]:
        """Per source: its frame and its TIMESTAMP BY field's times (see
        :attr:`.jsondecode.TypedDecoder.micros`), or None where it decodes the batch itself."""
        out: list[tuple[pl.DataFrame, pl.Series | None] | None] = [None] * len(self.sources)
        for gi, group in enumerate(self.groups):
            members = [self.sources[k] for k in group]
            for m in members:
                if m.schema is None:  # the first batch: as the source's own decode starts
                    m._infer(bodies)
            dec = self._decoder(gi, members)
            if dec is None:
                continue
            df = dec.decode(bodies)
            if not isinstance(df, pl.DataFrame):
                continue
            micros = dec.micros[1] if dec.micros is not None else None
            dec.micros = None
            for k, m in zip(group, members):
                own = df.select(list(m.schema or ()))
                if not (m.exact and m._whole_floats(own)):
                    out[k] = (own, micros)
        return out


# -- statements ----------------------------------------------------------------------------------
class VectorStatement:
    """WHERE, then a window aggregate or a projection, over released batches."""

    def __init__(self, target: str, alias: str, functions, where: VExpr | None, having: VExpr | None,
                 items: list[tuple[str, VExpr | None]] | None, aggregate: VectorAggregate | None,
                 analytic: VectorAnalytic | None = None) -> None:
        self.target, self.alias, self.functions = target, alias.lower(), functions
        self.where, self.having, self.aggregate = where, having, aggregate
        #: the SELECT list, ``(name, None)`` for ``*``; none with an aggregate
        self.items = items if items is not None else []
        self.analytic = analytic
        self.amap = analytic.cols if analytic is not None else None

    def run(self, frames: list[pl.DataFrame], watermark: int) -> list[tuple[int, dict]] | pl.DataFrame:
        """One step of the time loop; an expression failing on a value stops the query."""
        try:
            return self._run(frames, watermark)
        except QueryRuntimeError:
            raise
        except _VALUE_ERRORS as exc:
            raise QueryRuntimeError(f"{type(exc).__name__}: {exc}") from None

    def _run(self, frames: list[pl.DataFrame], watermark: int) -> list[tuple[int, dict]] | pl.DataFrame:
        out: list[tuple[int, dict]] | pl.DataFrame = []
        frames = [f for f in frames if f is not None and f.height]
        if frames:
            df = frames[0] if len(frames) == 1 else in_time_order(concat(frames))
            amap = self.amap
            if self.analytic is not None:  # on the statement's input, before WHERE
                df = self.analytic.apply(Batch(df, self.alias, self.functions))
            for pred in (self.where,) + ((self.having,) if self.aggregate is None else ()):
                if pred is not None and df.height:
                    df = df.filter(pred.series(Batch(df, self.alias, self.functions, amap), "__keep",
                                               predicate=True))
            if df.height:
                if self.aggregate is not None:
                    self.aggregate.process(Batch(df, self.alias, self.functions))
                else:
                    out = self._project(Batch(df, self.alias, self.functions, amap))
        if self.analytic is not None:
            self.analytic.advance(watermark)
        if self.aggregate is not None:
            out = self.aggregate.advance(watermark)
        return out

    def _project(self, batch: Batch) -> pl.DataFrame | list[tuple[int, dict]]:
        """SELECT over the batch; ``*`` adds the record's fields not named before it."""
        df = batch.df
        if REC in df.columns:
            return self._project_records(batch)
        cols, seen = [], set()
        fields = [c for c in df.columns if c not in _INTERNAL and not c.startswith(AN)]
        for name, vx in self.items:
            if vx is None:
                for c in fields:
                    if c.lower() not in seen:
                        seen.add(c.lower())
                        cols.append(df[c])
            elif name.lower() not in seen:
                seen.add(name.lower())
                cols.append(vx.series(batch, name))
        return pl.DataFrame([df[TS]] + cols)

    def _project_records(self, batch: Batch) -> list[tuple[int, dict]]:
        """SELECT * over whole records (Python values), row by row as the row operator does."""
        values = {name: vx.series(batch, name).to_list() for name, vx in self.items if vx is not None}
        out = []
        for r, (ts, rec) in enumerate(frame_to_rows(batch.df)):
            row: dict[str, Any] = {}
            seen: set[str] = set()
            for name, vx in self.items:
                if vx is None:
                    for k, v in rec.items():
                        if k.lower() not in seen:
                            seen.add(k.lower())
                            row[k] = v
                elif name.lower() not in seen:
                    seen.add(name.lower())
                    row[name] = values[name][r]
            out.append((ts, row))
        return out

    def state(self) -> tuple[dict, dict[str, pl.DataFrame]]:
        meta, tables = self.aggregate.state() if self.aggregate is not None else ({}, {})
        if self.analytic is not None:
            small, big = self.analytic.state()
            meta = dict(meta, analytic=small)
            tables = {**tables, **big}
        return meta, tables

    def load(self, meta: dict, tables: dict[str, pl.DataFrame]) -> None:
        if self.aggregate is not None:
            self.aggregate.load(meta, tables)
        if self.analytic is not None:
            self.analytic.load(meta["analytic"], tables)


class VectorAnalytic:
    """LAG and LAST per PARTITION BY key, LIMIT DURATION, over a batch in time order.

    State per function: a table of each key's last ``offset`` entries (``__k0..``, ``__t``,
    ``__v``: all LAG reads). LAG(v, k) of an event is the value of the k-th previous event
    of its key when that event is within the duration (``ts_prev >= ts - duration``: the
    row implementation drops older entries first, so also older entries may be dropped
    here), else the default; LAST(v) without WHEN is the event's own value. A batch this
    cannot compute exactly (keys that are not text, integers or bits; values that are not
    plain; a default or earlier values of another type) runs through the row
    implementation (:class:`..analytic.Analytic`), whose per-key history then holds the
    state until it converts back to a table.
    """

    _PY: dict[Any, type] = {pl.Int64: int, pl.Float64: float, pl.Utf8: str, pl.Boolean: bool}

    def __init__(self, row, exprs: list[tuple[list[VExpr], VExpr]]) -> None:
        self.row = row
        self.specs = row.specs
        self.exprs = exprs
        self.cols = {id(sp.node): f"{AN}{i}" for i, sp in enumerate(self.specs)}
        #: per function: its state as a table, or None while the row history holds it
        self.tables: list[pl.DataFrame | None] = [None] * len(self.specs)

    def apply(self, batch: Batch) -> pl.DataFrame:
        results, commits = [], []
        for i, (sp, (parts, value)) in enumerate(zip(self.specs, self.exprs)):
            got = self._vector(i, sp, parts, value, batch)
            if got is None:
                return self._rows(batch)
            results.append(got[0])
            commits.append(got[1])
        for c in commits:
            c()
        return batch.df.with_columns(results)

    def _rows(self, batch: Batch) -> pl.DataFrame:
        for i, t in enumerate(self.tables):
            if t is not None:
                self.row.history[i] = self._to_history(t)
                self.tables[i] = None
        envs = self.row.process(batch.envs())
        out = batch.df.with_columns([exact_series(f"{AN}{i}", [e.an[i] for e in envs])
                                     for i in range(len(self.specs))])
        return out

    def _state(self, i: int, nk: int) -> pl.DataFrame | None | Literal[False]:
        """Function i's state as a table (converted from the row history if needed); None
        when there is none; False when the history's keys or values have no table form."""
        t = self.tables[i]
        if t is not None:
            return t
        h = self.row.history[i]
        if not h:
            return None
        t = self._to_table(h, nk)
        if t is None:
            return False
        self.tables[i] = t
        self.row.history[i] = {}
        return t

    @staticmethod
    def _to_history(t: pl.DataFrame) -> dict:
        nk = t.width - 2
        h: dict = {}
        for row in t.rows():
            q = h.get(group_key(list(row[:nk])))
            if q is None:
                q = h[group_key(list(row[:nk]))] = deque()
            q.append((row[nk], row[nk + 1]))
        return h

    @staticmethod
    def _to_table(h: dict, nk: int) -> pl.DataFrame | None:
        rows = [(k, t, v) for k, q in h.items() for t, v in q]
        if any(len(r[0]) != nk for r in rows):
            return None
        keys = [[(x[1] if type(x) is tuple and len(x) == 2 and x[0] == "bit" else x) for x in r[0]] for r in rows]
        if any(type(x) not in (str, int, bool, type(None)) for k in keys for x in k):
            return None
        cols = [exact_series(f"__k{j}", [k[j] for k in keys]) for j in range(nk)]
        cols += [pl.Series("__t", [r[1] for r in rows], dtype=pl.Int64), exact_series("__v", [r[2] for r in rows])]
        if not all(c.dtype in PLAIN for c in cols):
            return None
        return pl.DataFrame(cols)

    def _vector(self, i: int, sp, parts: list[VExpr], value: VExpr, batch: Batch):
        df = batch.df
        keys = [p.series(batch, f"__k{j}", key=True) for j, p in enumerate(parts)]
        if any(k.dtype not in (pl.Utf8, pl.Int64, pl.Boolean, pl.Null) for k in keys):
            return None
        v = value.series(batch, "__v")
        if v.dtype not in self._PY and v.dtype != pl.Null:
            return None
        kn = [k.name for k in keys]
        name = f"{AN}{i}"
        state = self._state(i, len(kn))
        if state is False:
            return None
        frame = pl.DataFrame(keys + [df[TS].alias("__t"), v])
        if state is not None and state.schema != frame.schema:
            state, frame = self._unify(state, frame)
            if state is None:
                return None  # earlier keys or values of another type: the row implementation
            v = frame["__v"]
        if sp.kind == "last":
            k, result = 1, v.alias(name)
            full = frame
        else:
            node = sp.node
            dflt = node.args[2].value if len(node.args) == 3 else None
            py = self._PY.get(v.dtype)
            if dflt is not None and (py is None or type(dflt) is not py):
                return None
            k = sp.offset
            full = frame
            if state is not None and state.height:
                prior = state.join(frame.select(kn).unique(), on=kn, how="semi", nulls_equal=True) if kn else state
                full = pl.concat([prior, frame], how="vertical") if prior.height else frame
            n_prior = full.height - frame.height

            def over(e: pl.Expr) -> pl.Expr:
                return e.over(kn) if kn else e

            pv, pt = over(pl.col("__v").shift(k)), over(pl.col("__t").shift(k))
            ok = pt.is_not_null() & (pt >= pl.col("__t") - sp.duration)
            result = full.select(pl.when(ok).then(pv).otherwise(pl.lit(dflt, dtype=v.dtype if py else None))
                                 .alias(name)).to_series().slice(n_prior)

        def commit() -> None:
            tail = full.group_by(kn, maintain_order=True).tail(k) if kn else full.tail(k)
            if state is not None and state.height and kn:
                tail = pl.concat([state.join(frame.select(kn).unique(), on=kn, how="anti", nulls_equal=True),
                                  tail], how="vertical")
            self.tables[i] = tail
        return result, commit

    @staticmethod
    def _unify(state: pl.DataFrame, frame: pl.DataFrame) -> tuple[pl.DataFrame | None, pl.DataFrame]:
        """The two with the same column types where one side's column is all NULL (typed
        Null); (None, frame) when a column has two different value types."""
        a, b = [], []
        for c, t in frame.schema.items():
            u = state.schema[c]
            if u == t:
                continue
            if u == pl.Null:
                a.append(pl.col(c).cast(t))
            elif t == pl.Null:
                b.append(pl.col(c).cast(u))
            else:
                return None, frame
        return (state.with_columns(a) if a else state), (frame.with_columns(b) if b else frame)

    def advance(self, watermark: int) -> None:
        """Entries older than the watermark minus the duration: no later event reads them."""
        self.row.advance(watermark)
        for i, (sp, t) in enumerate(zip(self.specs, self.tables)):
            if t is not None and t.height and watermark > MIN_TS:
                self.tables[i] = t.filter(pl.col("__t") >= watermark - sp.duration)

    def state(self) -> tuple[list, dict[str, pl.DataFrame]]:
        """Per function: its table, or (row history) its entries as tagged values."""
        small: list = []
        tables: dict[str, pl.DataFrame] = {}
        for i, (t, h) in enumerate(zip(self.tables, self.row.history)):
            if t is not None:
                tables[f"analytic{i}"] = t
                small.append({"table": f"analytic{i}"})
            else:
                small.append({"entries": [[k, [list(x) for x in q]] for k, q in h.items()]})
        return small, tables

    def load(self, state: list, tables: dict[str, pl.DataFrame]) -> None:
        hist: list[dict] = []
        self.tables = [None] * len(self.specs)
        for i, st in enumerate(state):
            h: dict = {}
            if "table" in st:
                self.tables[i] = tables[st["table"]]
            else:
                for k, q in st["entries"]:
                    h[tuple(k) if isinstance(k, list) else k] = deque(tuple(x) for x in q)
            hist.append(h)
        self.row.history = hist


class VectorAggregate:
    """GROUP BY keys + one window: partial aggregates per (window, key), merged and emitted
    when the watermark passes a window's end; HAVING and SELECT then run per output row."""

    #: sliding windows: (key code, time) packed in one int64 below this product, else times ranked first
    PACK_LIMIT = 2 ** 62

    def __init__(self, kind: str, config: WindowConfig, keys: list[VExpr], aggs: list, project: Callable[[Env], dict],
                 having: Callable[[Env], Any] | None, alias: str, rep_fields: set[str] | None = None) -> None:
        self.kind, self.config = kind, config
        self.spec: Any = config.columnar()  # the WindowShape of kinds other than "logic"
        self.keys, self.aggs, self.project, self.having, self.alias = keys, aggs, project, having, alias
        self.kinds = [a.fn.columnar for a in aggs]
        self.args = [VExpr(a.node.args[0], a.arg) if (a.node is not None and a.node.args and not a.star) else None
                     for a in aggs]
        self.kcols = [f"k{i}" for i in range(len(keys))]
        self.partials: list[pl.DataFrame] = []
        self.distinct: dict[int, list[pl.DataFrame]] = {}
        self.instants: list[pl.DataFrame] = []  # sliding windows: (keys, __end) to output
        self.sessions: dict[tuple, list | None] = {}
        self.session_ends: dict[tuple, int] = {}
        self.logic: WindowLogic | None = config.build(None) if kind == "logic" else None
        self.codes: dict[Any, int] = {}
        self.ids: dict[int, Any] = {}
        self.rep_cols: list[str] = []
        self.rep_fields = rep_fields  # lower case; None = every field
        #: SELECT as result columns [(name, field | ts | agg, what)], when it is only that
        self.columns: list[tuple] | None = None
        #: group keys that are plain fields: field (lower) -> (key index, spelling); their
        #: values come from the key column, not from the group's first event
        self.key_fields: dict[str, tuple[int, str]] = {}

    # -- input -----------------------------------------------------------------------------------
    def process(self, batch: Batch) -> None:
        if self.kind == "sliding":
            self._slide_in(batch)
            return
        df = batch.df
        cols = {TS: df[TS]}
        for i, k in enumerate(self.keys):
            cols[f"k{i}"] = k.series(batch, f"k{i}", key=True)
        for j, a in enumerate(self.args):
            if a is not None:
                s = a.series(batch, f"v{j}", key=True)
                if self.kinds[j] in (AggregateKind.SUM, AggregateKind.AVG):
                    s = self._numeric(s, j)
                cols[f"v{j}"] = s
        reps = [c for c in df.columns if c not in _INTERNAL and df[c].dtype != pl.Object and
                (self.rep_fields is None or c.lower() in self.rep_fields)]
        for c in reps:
            if c not in self.rep_cols:
                self.rep_cols.append(c)
        vals = pl.DataFrame(list(cols.values())).with_columns([df[c].alias(f"r:{c}") for c in reps])
        vals = self._assign(vals)
        if vals.height == 0:
            return
        group = ["__wid"] + self.kcols
        aggs = [pl.len().alias("n")] + [pl.col(f"r:{c}").first() for c in reps]
        for j, kind in enumerate(self.kinds):
            v = pl.col(f"v{j}")
            if self.args[j] is None:
                continue
            if kind == AggregateKind.COUNT:
                aggs.append(v.count().alias(f"c{j}"))
            elif kind in (AggregateKind.SUM, AggregateKind.AVG):
                aggs += [v.sum().alias(f"s{j}"), v.count().alias(f"c{j}")]
            elif kind in (AggregateKind.MIN, AggregateKind.MAX):
                aggs.append(self._extreme(v, kind, vals[f"v{j}"].dtype).alias(f"m{j}"))
            elif kind == AggregateKind.COUNT_DISTINCT:
                self.distinct.setdefault(j, []).append(self._windows(
                    vals.select(group + [v.alias("d")]).drop_nulls("d").unique()))
        part = vals.group_by(group, maintain_order=True).agg(aggs)
        self.partials.append(part if not self._paned() else self._merge(self._windows(part)))
        if len(self.partials) > 32:
            self.partials = [self._merge(concat(self.partials))]

    @staticmethod
    def _numeric(s: pl.Series, j: int) -> pl.Series:
        """SUM/AVG operands: integers as 38-digit decimals (exact sums past 64 bits, so a bigint
        SUM out of range fails as the row path's does; Int128 has no Arrow form for snapshots)."""
        if s.dtype == pl.Boolean:
            s = s.cast(pl.Int64)
        if s.dtype.is_integer():
            return s.cast(_WIDE)
        if s.dtype == pl.Utf8:
            out = s.cast(pl.Float64, strict=False)
            bad = out.is_null() & s.is_not_null()
            if bad.any():
                v = s.filter(bad)[0]
                raise QueryRuntimeError(f"CAST failed: Cannot cast value {v!r} to type 'float'")
            return out
        return s

    @staticmethod
    def _extreme(v: pl.Expr, kind: str, dtype) -> pl.Expr:
        """MIN/MAX; text compares case-insensitively (the first of equal values wins)."""
        if dtype == pl.Utf8:
            d = v.drop_nulls()
            return d.sort_by(d.str.to_lowercase(), descending=kind == AggregateKind.MAX, maintain_order=True).first()
        return v.min() if kind == AggregateKind.MIN else v.max()

    def _paned(self) -> bool:
        """Hopping windows: events aggregate per pane (gcd(size, hop) wide), panes into windows."""
        return self.kind == "aligned" and self.spec.size > self.spec.hop

    def _windows(self, df: pl.DataFrame) -> pl.DataFrame:
        """Rows per pane (``__wid`` = the pane's end P) as rows per window: every W on the hop
        grid with P <= W <= P + size - pane; each row's windows stay together, in order."""
        if not self._paned():
            return df
        size, hop, off = self.spec.size, self.spec.hop, self.spec.offset
        first = ((pl.col("__wid") - off - 1) // hop + 1) * hop + off
        last = pl.col("__wid") + (size - math.gcd(size, hop))
        return df.with_columns(pl.int_ranges(first, last + 1, hop, dtype=pl.Int64).alias("__wid")).explode("__wid")

    def _assign(self, df: pl.DataFrame) -> pl.DataFrame:
        if self._paned():
            g, off = math.gcd(self.spec.size, self.spec.hop), self.spec.offset
            return df.with_columns((((pl.col(TS) - off - 1) // g + 1) * g + off).alias("__wid"))
        if self.kind == "aligned":
            size, hop, off = self.spec.size, self.spec.hop, self.spec.offset
            end0 = ((pl.col(TS) - off - 1) // hop + 1) * hop + off
            frames = []
            for k in range(-(-size // hop)):
                f = df.with_columns((end0 + k * hop).alias("__wid"))
                if (k + 1) * hop > size:
                    f = f.filter(pl.col("__wid") - size < pl.col(TS))
                frames.append(f)
            return pl.concat(frames) if len(frames) > 1 else frames[0]
        if self.kind == "snapshot":
            return df.with_columns(pl.col(TS).alias("__wid"))
        if self.kind == "logic":
            idx, wids = self._assign_logic(df[TS].to_numpy())
            return df[idx].with_columns(pl.Series("__wid", wids, dtype=pl.Int64))
        return self._sessions(df)

    def _assign_logic(self, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A window plugin's ``assign_batch`` (or its row hook per event), ids as codes."""
        idx, ids = self._logic().assign_batch(ts)
        codes = []
        for w in list(ids):
            c = self.codes.get(w)
            if c is None:
                c = self.codes[w] = len(self.codes) + 1
                self.ids[c] = w
            codes.append(c)
        return np.asarray(idx, dtype=np.int64), np.asarray(codes, dtype=np.int64)

    def _logic(self) -> WindowLogic:
        """The window plugin's logic of a window of kind "logic"."""
        if self.logic is None:
            raise RuntimeError(f"a {self.kind} window has no window logic")
        return self.logic

    def _session_end(self, cur: list) -> int:
        maxd = self.spec.max_duration
        return min(cur[1] + self.spec.timeout, ((cur[0] + maxd) // maxd + 1) * maxd)

    def _sessions(self, df: pl.DataFrame) -> pl.DataFrame:
        timeout, maxd = self.spec.timeout, self.spec.max_duration
        df = df.with_row_index("__i")
        parts = df.partition_by(self.kcols, maintain_order=True, as_dict=True) if self.kcols else {(): df}
        wid = np.empty(df.height, dtype=np.int64)
        for key, part in parts.items():
            key = key if isinstance(key, tuple) else (key,)
            ts = part[TS].to_numpy()
            idx = part["__i"].to_numpy()
            gaps = np.flatnonzero(np.diff(ts) > timeout) + 1
            cur = self.sessions.get(key)
            i, n = 0, len(ts)
            while i < n:
                if cur is not None:
                    end = self._session_end(cur)
                    if ts[i] > end:
                        self.session_ends[(key, cur[0])] = end
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
        return df.with_columns(pl.Series("__wid", wid)).drop("__i")

    def _merge(self, df: pl.DataFrame) -> pl.DataFrame:
        group = ["__wid"] + self.kcols
        aggs = [pl.col("n").sum()] + [pl.col(c).first() for c in df.columns if c.startswith("r:")]
        for j, kind in enumerate(self.kinds):
            if self.args[j] is None:
                continue
            if kind == AggregateKind.COUNT:
                aggs.append(pl.col(f"c{j}").sum())
            elif kind in (AggregateKind.SUM, AggregateKind.AVG):
                aggs += [pl.col(f"s{j}").sum(), pl.col(f"c{j}").sum()]
            elif kind in (AggregateKind.MIN, AggregateKind.MAX):
                aggs.append(self._extreme(pl.col(f"m{j}"), kind, df[f"m{j}"].dtype))
        return df.group_by(group, maintain_order=True).agg(aggs)

    # -- closing ----------------------------------------------------------------------------------
    def _closed(self, watermark: int) -> pl.DataFrame | dict[tuple[tuple, int], int] | None:
        """(__wid, keys..., __end) of the windows the watermark closes (sessions: (keys,
        session id) -> end), or None for aligned and snapshot windows (closed where
        ``__wid < watermark``)."""
        if self.kind in ("aligned", "snapshot"):
            return None
        if self.kind == "logic":
            wids, wends = [], []
            for w, e in self._logic().close_for(watermark):
                c = self.codes.pop(w, None)
                if c is not None:
                    self.ids.pop(c, None)
                    wids.append(c)
                    wends.append(e)
            return pl.DataFrame({"__wid": wids, "__end": wends}, schema={"__wid": pl.Int64, "__end": pl.Int64})
        for key, cur in list(self.sessions.items()):
            if cur is not None and self._session_end(cur) < watermark:
                self.session_ends[(key, cur[0])] = self._session_end(cur)
                del self.sessions[key]
        ends = {k: e for k, e in self.session_ends.items() if e < watermark}
        for k in ends:
            del self.session_ends[k]
        return ends

    # -- sliding windows: (T - size, T] at every instant an event enters (T = ts) or leaves (T = ts + size)
    def _slide_in(self, batch: Batch) -> None:
        df = batch.df
        cols = {TS: df[TS]}
        for i, k in enumerate(self.keys):
            cols[f"k{i}"] = k.series(batch, f"k{i}", key=True)
        for j, a in enumerate(self.args):
            if a is not None:
                s = a.series(batch, f"v{j}", key=True)
                cols[f"v{j}"] = self._numeric(s, j) if self.kinds[j] in (AggregateKind.SUM, AggregateKind.AVG) else s
        reps = [c for c in df.columns if c not in _INTERNAL and df[c].dtype != pl.Object and
                (self.rep_fields is None or c.lower() in self.rep_fields)]
        events = pl.DataFrame(list(cols.values())).with_columns([df[c].alias(f"r:{c}") for c in reps])
        size = self.spec.size
        keys = events.select(self.kcols + [TS])
        instants = pl.concat([keys, keys.with_columns(pl.col(TS) + size)]).rename({TS: "__end"})
        self.partials.append(events)
        self.instants.append(instants)

    def _slide_out(self, watermark: int) -> list[tuple[int, dict]] | pl.DataFrame:
        """The windows (T - size, T] of the instants T before the watermark, by a sweep over
        each key's events sorted by time: a window's aggregates are differences of per-key
        prefix sums at the last event <= T and the last event <= T - size (binary searches
        over one sorted array of (key code, time), no joins)."""
        frames = self.instants
        if not frames:
            return []
        instants = concat(frames)
        early = instants["__end"] < watermark
        due = instants.filter(early)
        rest = instants.filter(~early)
        self.instants = [rest] if rest.height else []
        size = self.spec.size
        events = concat(self.partials) if self.partials else None
        if events is None:
            return []
        out: list[tuple[int, dict]] | pl.DataFrame = []
        if due.height and events.height:
            out = self._slide_sweep(events, due, watermark)
        keep = events.filter(pl.col(TS) > watermark - size)
        self.partials = [keep] if keep.height else []
        return out

    def _key_codes(self, a: pl.DataFrame, b: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Integer codes of the group keys of two frames, equal where the keys are equal
        (NULL equal to NULL, as the grouping has it)."""
        if not self.kcols:
            return np.zeros(a.height, dtype=np.int64), np.zeros(b.height, dtype=np.int64)
        keys = concat([a.select(self.kcols), b.select(self.kcols)])
        if len(self.kcols) == 1 and keys.schema[self.kcols[0]] == pl.Utf8:
            codes = keys[self.kcols[0]].cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
        else:
            uniq = keys.unique().with_row_index("__code")
            codes = keys.join(uniq, on=self.kcols, how="left", nulls_equal=True,
                              maintain_order="left")["__code"].cast(pl.Int64).to_numpy()
        return codes[:a.height], codes[a.height:]

    def _slide_sweep(self, events: pl.DataFrame, due: pl.DataFrame, watermark: int) -> Rows | pl.DataFrame:
        size = self.spec.size
        ecode, dcode = self._key_codes(events, due)
        ets = events[TS].to_numpy()
        dts = due["__end"].to_numpy()
        # events by (key, time, arrival): the order of the prefix sums
        order = np.lexsort((ets, ecode))
        sc, st = ecode[order], ets[order]
        lo_t = min(int(st.min()), int(dts.min()) - size)
        span = max(int(st.max()), int(dts.max())) - lo_t + 1
        cmin = min(int(sc.min()), int(dcode.min()))
        ncodes = max(int(sc.max()), int(dcode.max())) - cmin + 1
        if ncodes * span < self.PACK_LIMIT:  # one int64 per (key, time)
            ev_comp = (sc - cmin) * span + (st - lo_t)
            hi_q = (dcode - cmin) * span + (dts - lo_t)
            lo_q = hi_q - size
        else:  # times as dense ranks first
            allt, inv = np.unique(np.concatenate([st, dts, dts - size]), return_inverse=True)
            r = inv.reshape(-1)
            span, n_ev, n_d = len(allt), len(st), len(dts)
            ev_comp = (sc - cmin) * span + r[:n_ev]
            hi_q = (dcode - cmin) * span + r[n_ev:n_ev + n_d]
            lo_q = (dcode - cmin) * span + r[n_ev + n_d:]
        # each (key, instant) once, in the order of the instants
        hi_q, first = np.unique(hi_q, return_index=True)
        dcode, dts, lo_q = dcode[first], dts[first], lo_q[first]
        hi = np.searchsorted(ev_comp, hi_q, side="right")
        lo = np.searchsorted(ev_comp, lo_q, side="right")
        n = hi - lo
        live = n > 0
        hi, lo, n, dts = hi[live], lo[live], n[live], dts[live]
        by_time = np.argsort(dts, kind="stable")
        hi, lo, n, dts = hi[by_time], lo[by_time], n[by_time], dts[by_time]
        last = order[hi - 1]  # the latest event of each window: its fields are the row's
        cols: list[pl.Series] = [pl.Series("__end", dts, dtype=pl.Int64), pl.Series("__wid", dts, dtype=pl.Int64),
                                 pl.Series("n", n, dtype=pl.Int64)]
        fields = self.kcols + [c for c in events.columns if c.startswith("r:")]
        picked = events.select(fields)[pl.Series(last)] if fields else None
        seg = pl.Series(sc)
        for j, kind in enumerate(self.kinds):
            if self.args[j] is None:
                continue
            v = events[f"v{j}"][pl.Series(order)]
            nn = np.concatenate([[0], np.cumsum(v.is_not_null().to_numpy(), dtype=np.int64)])
            cols.append(pl.Series(f"c{j}", nn[hi] - nn[lo], dtype=pl.Int64))
            if kind in (AggregateKind.SUM, AggregateKind.AVG):
                cum = pl.DataFrame({"g": seg, "v": v.fill_null(0)}).select(pl.col("v").cum_sum().over("g"))["v"]
                # the prefix before position p of its key: 0 at the key's first event
                same_lo = (lo > 0) & (sc[np.maximum(lo - 1, 0)] == sc[hi - 1])
                top = cum[pl.Series(hi - 1)]
                bottom = cum[pl.Series(np.maximum(lo - 1, 0))]
                bottom = bottom.zip_with(pl.Series(same_lo), pl.repeat(0, len(bottom), eager=True).cast(cum.dtype))
                cols.append((top - bottom).alias(f"s{j}"))
        done = pl.DataFrame(cols)
        if picked is not None:
            done = done.hstack(picked)
        return self._emit(done, watermark) if done.height else []

    def advance(self, watermark: int) -> Rows | pl.DataFrame:
        if self.kind == "sliding":
            return self._slide_out(watermark)
        if not self.partials:
            if self.kind == "session":
                self._closed(watermark)
            elif self.kind == "logic":
                self._logic().close_for(watermark)
            return []
        closed = self._closed(watermark)
        if closed is not None and len(closed) == 0:
            return []
        if closed is None:  # windows ending before the watermark: only their partials are merged
            due: list[pl.DataFrame] = []
            kept: list[pl.DataFrame] = []
            for f in self.partials:
                wid = f["__wid"]
                if f.height == 0:
                    continue
                if cast(int, wid.min()) >= watermark:  # the usual case: all still open, or all closed
                    kept.append(f)
                elif cast(int, wid.max()) < watermark:
                    due.append(f)
                else:
                    early = wid < watermark
                    due.append(f.filter(early))
                    kept.append(f.filter(~early))
            self.partials = kept
            if not due:
                return []
            done = self._merge(concat(due)) if len(due) > 1 else due[0]
            return self._emit(done.with_columns(pl.col("__wid").alias("__end")), watermark)
        state = self._merge(concat(self.partials)) if len(self.partials) > 1 \
            else self.partials[0]
        if isinstance(closed, dict):
            closed = pl.DataFrame({"__wid": [sid for (_, sid) in closed], "__end": list(closed.values()),
                                   **{c: [k[i] for (k, _) in closed] for i, c in enumerate(self.kcols)}},
                                  schema_overrides={c: state[c].dtype for c in self.kcols})
        state = state.join(closed, on=["__wid"] + self.kcols if "k0" in closed.columns else ["__wid"],
                           how="left", nulls_equal=True, maintain_order="left")
        mask = state["__end"].is_not_null()
        done = state.filter(mask)
        rest = state.filter(~mask).drop("__end")
        self.partials = [rest] if rest.height else []
        return self._emit(done, watermark) if done.height else []

    def _emit(self, done: pl.DataFrame, watermark: int) -> Rows | pl.DataFrame:
        group = ["__wid"] + self.kcols
        for j, frames in list(self.distinct.items()):
            if not frames:
                done = done.with_columns(pl.lit(0).alias(f"u{j}"))
                continue
            alld = concat(frames) if len(frames) > 1 else frames[0]
            if self.kind in ("aligned", "snapshot"):  # closed: every window ending before the watermark
                early = alld["__wid"] < watermark
                closed, rest = alld.filter(early), alld.filter(~early)
            else:
                keys = done.select(group)
                closed = alld.join(keys, on=group, how="semi", nulls_equal=True)
                rest = alld.join(keys, on=group, how="anti", nulls_equal=True)
            self.distinct[j] = [rest] if rest.height else []
            counts = closed.group_by(group).agg(pl.col("d").n_unique().alias(f"u{j}"))
            done = done.join(counts, on=group, how="left", nulls_equal=True, maintain_order="left")
        done = done.sort("__end", maintain_order=True)
        if self.columns is not None:
            return self._emit_columns(done, self.columns)
        cols = {c: done[c].to_list() for c in done.columns}
        reps = [c for c in done.columns if c.startswith("r:")]
        out = []
        alias = self.alias
        for r in range(done.height):
            end = cols["__end"][r]
            rec = {c[2:]: cols[c][r] for c in reps}
            for i, name in self.key_fields.values():
                rec.setdefault(name, cols[f"k{i}"][r])
            res = [self._result(j, cols, r) for j in range(len(self.aggs))]
            e = Env({alias: rec}, end, None, res, None, None)
            if self.having is not None and self.having(e) is not True:
                continue
            out.append((end, self.project(e)))
        return out

    def _emit_columns(self, done: pl.DataFrame, columns: list[tuple]) -> pl.DataFrame:
        """The output rows as one batch (SELECT of keys, System.Timestamp() and aggregates)."""
        reps = {c[2:].lower(): c for c in done.columns if c.startswith("r:")}
        cols = [done["__end"].alias(TS)]
        for name, kind, what in columns:
            if kind == "ts":
                cols.append(done["__end"].cast(pl.Datetime("us", "UTC")).alias(name))
            elif kind == "field" and what in self.key_fields:
                cols.append(done[f"k{self.key_fields[what][0]}"].alias(name))
            elif kind == "field":
                col = reps.get(what)
                cols.append(done[col].alias(name) if col is not None else
                            pl.Series(name, [None] * done.height, dtype=pl.Null))
            else:
                cols.append(self._result_column(what, done).alias(name))
        return pl.DataFrame(cols)

    def _result_column(self, j: int, done: pl.DataFrame) -> pl.Series:
        kind = self.kinds[j]
        if self.args[j] is None:
            return done["n"]
        if kind == AggregateKind.COUNT:
            return done[f"c{j}"]
        if kind == AggregateKind.COUNT_DISTINCT:
            return done[f"u{j}"].fill_null(0) if f"u{j}" in done.columns else pl.Series([0] * done.height)
        if kind == AggregateKind.SUM:
            out = done.select(pl.when(pl.col(f"c{j}") > 0).then(pl.col(f"s{j}"))).to_series()
            if out.dtype == _WIDE:
                bad = out.filter((out > _BIGINT_MAX) | (out < -_BIGINT_MAX - 1))
                if bad.len():
                    raise QueryRuntimeError(bigint_overflow("SUM", int(bad[0])))
                out = out.cast(pl.Int64)
            return out
        if kind == AggregateKind.AVG:
            return done.select(pl.when(pl.col(f"c{j}") > 0).then(
                pl.col(f"s{j}").cast(pl.Float64) / pl.col(f"c{j}"))).to_series()
        return done[f"m{j}"]

    def _result(self, j: int, cols: dict, r: int) -> Any:
        kind = self.kinds[j]
        if self.args[j] is None:  # COUNT(*)
            return cols["n"][r]
        if kind == AggregateKind.COUNT:
            return cols[f"c{j}"][r]
        if kind == AggregateKind.COUNT_DISTINCT:
            v = cols.get(f"u{j}", [0] * (r + 1))[r]
            return 0 if v is None else v
        if kind == AggregateKind.SUM:
            v = cols[f"s{j}"][r] if cols[f"c{j}"][r] else None
            if isinstance(v, Decimal):
                v = int(v)
                if not -_BIGINT_MAX - 1 <= v <= _BIGINT_MAX:
                    raise QueryRuntimeError(bigint_overflow("SUM", v))
            return v
        if kind == AggregateKind.AVG:
            c = cols[f"c{j}"][r]
            return float(cols[f"s{j}"][r]) / c if c else None
        return cols[f"m{j}"][r]

    # -- state -----------------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, pl.DataFrame]]:
        tables: dict[str, pl.DataFrame] = {}
        # Each batch's partials as a table of its own: restored as they were (one table is
        # taken as merged by advance()), and a checkpoint after a batch that touched a few keys
        # writes that batch's table, not all the keys' (the others are the same objects).
        for i, part in enumerate(self.partials):
            tables[f"partials.{i}"] = part
        for j, frames in self.distinct.items():
            if frames:
                tables[f"distinct{j}"] = concat(frames)
        if self.instants:
            tables["instants"] = concat(self.instants)
        meta = {"sessions": [[list(k), v] for k, v in self.sessions.items()],
                "session_ends": [[list(k), sid, e] for (k, sid), e in self.session_ends.items()],
                "logic": self.logic.snapshot() if self.logic is not None else None,
                "codes": [[c, w] for w, c in self.codes.items()], "rep_cols": self.rep_cols}
        return meta, tables

    def load(self, meta: dict, tables: dict[str, pl.DataFrame]) -> None:
        chunks = sorted((int(k[9:]), v) for k, v in tables.items() if k.startswith("partials."))
        self.partials = [v for _, v in chunks]
        if "partials" in tables:  # schema version <= 4: the batches' partials in one table, maybe unmerged
            old = tables["partials"]
            self.partials = [old if self.kind == "sliding" else self._merge(old)]
        self.distinct = {int(k[8:]): [v] for k, v in tables.items() if k.startswith("distinct")}
        self.instants = [tables["instants"]] if "instants" in tables else []
        self.sessions = {tuple(k): v for k, v in meta["sessions"]}
        self.session_ends = {(tuple(k), sid): e for k, sid, e in meta["session_ends"]}
        if self.kind == "logic":
            self.logic = self.config.build(meta["logic"])
            self.codes = {w if not isinstance(w, list) else tuple(w): c for c, w in meta["codes"]}
            self.ids = {c: w for w, c in self.codes.items()}
        self.rep_cols = list(meta.get("rep_cols", []))


__all__ += ["Batch", "from_micros", "MAX_TS"]
