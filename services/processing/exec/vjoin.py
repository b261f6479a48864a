"""Vectorised JOIN: a stream with a stream (bounded by DATEDIFF ... BETWEEN) or with
reference data, over Polars batches, with the row implementation's meaning
(:mod:`.join`).

Each side's events are a frame whose fields are prefixed by the side's alias
(``a\\x1ffield``), with the event time, the order the row path would process the event in
(``__ls``/``__rs``: by time, left before right, then arrival), and the equality values of
ON's ``left = right`` conjuncts as index keys (``__k0``...). A key is the text of a value
under the equality's meaning (numbers as floats, text lower case); a value that may equal
values of other kinds (text that reads as a number or a datetime, records, mixed types) is
*wild* and is tried against every event of the other side in the time bound, a NULL never
matches: the row path's index (:func:`.join.join_key`), as one join per batch. Every
candidate pair is then checked with each conjunct of ON in turn (Polars expressions, or
the row closures over the pairs where an expression has no vectorised form), so a key
only narrows what is tried, never decides a match.

Stream joins keep both sides' events while a match can still come (left: until the
watermark passes its time + the upper bound, when an unmatched LEFT OUTER row is emitted,
timestamped there; right: while its time - the lower bound is not behind the watermark).
Their state is those two frames (Arrow tables in a checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl

from headwater.services.processing.exec.base import MIN_TS, Env, QueryRuntimeError
from headwater.services.processing.exec.vector import (
    _VALUE_ERRORS,
    Batch,
    VectorStatement,
    VExpr,
    _get,
    concat,
    exact_series,
)
from headwater.services.processing.plan.vexpr import TS, Columns

__all__ = ["VectorJoinStatement", "StreamSide", "ReferenceSide", "SEP"]

SEP = "\x1f"
_SPACE = r"[\s\x1c-\x1f]"  # what Python's str.strip() and float() take as white space
#: wild text, in one pass: text that Python's float() may read (a superset: a wild key only
#: adds candidates), or that may be a datetime (stripped, 10 characters or more with ``-``
#: fifth) (:func:`.join._component`)
_WILD_TEXT = (rf"(?is)^{_SPACE}*(?:[+-]?(?:[\d_.]+(?:e[+-]?[\d_]*)?|inf(?:inity)?|nan){_SPACE}*$"
              rf"|[^\s\x1c-\x1f].{{3}}-.{{4,}}[^\s\x1c-\x1f])")
_NUM = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64, pl.Float32,
        pl.Float64, pl.Boolean)


def _key_parts(s: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series]:
    """(key text, wild, null) of one equality value per event (:func:`.join._component`)."""
    n = s.len()
    if s.dtype == pl.Utf8:
        # text keys bare: a plain (not wild) text never reads as a number, and a text that
        # equals a number's key ("n:1.0") is only one more candidate, which ON then refuses
        x = pl.lit(s)
        kw = pl.select(x.str.to_lowercase().alias("k"), x.str.contains(_WILD_TEXT).fill_null(False))
        return kw.to_series(0), kw.to_series(1), s.is_null()
    if s.dtype in _NUM:
        f = s.cast(pl.Float64) + 0.0  # -0.0 is 0.0
        return ("n:" + f.cast(pl.Utf8)).alias("k"), pl.Series([False] * n), s.is_null()
    if s.dtype == pl.Null:
        return pl.Series("k", [None] * n, dtype=pl.Utf8), pl.Series([False] * n), pl.Series([True] * n)
    null = pl.Series([v is None for v in s.to_list()], dtype=pl.Boolean)
    return pl.Series("k", [None] * n, dtype=pl.Utf8), ~null, null


class JoinBatch(Batch):
    """Joined pairs as expressions see them: ``alias.field`` columns per alias, each alias's
    event time for DATEDIFF, and for row closures one Env per pair (an unmatched side's
    record is ``{}``, as the row path has it)."""

    def __init__(self, df: pl.DataFrame, aliases: list[str], times: dict[str, str], functions,
                 unmatched: dict[str, str] | None = None) -> None:
        self.df, self.alias = df, aliases[0]
        self.aliases, self.times, self.unmatched = aliases, times, unmatched or {}
        qualified: dict[str, dict[str, str]] = {a: {} for a in aliases}
        for c in df.columns:
            a, sep, f = c.partition(SEP)
            if sep and a in qualified:
                qualified[a].setdefault(f.lower(), c)
        self.qualified = qualified
        self.cols = Columns(set(aliases), {}, dict(df.schema), functions, qualified=qualified,
                            times={a: t for a, t in times.items()})
        self._envs: list[Env] | None = None

    def envs(self) -> list[Env]:
        if self._envs is None:
            df = self.df
            recs = {}
            for a in self.aliases:
                cols = list(self.qualified[a].values())
                part = df.select(cols).rename({c: c.partition(SEP)[2] for c in cols}).to_dicts() if cols \
                    else [{} for _ in range(df.height)]
                flag = self.unmatched.get(a)
                if flag is not None:
                    part = [{} if m else r for r, m in zip(part, df[flag].to_list())]
                recs[a] = part
            times = {a: df[t].to_list() for a, t in self.times.items()}
            ts = df[TS].to_list()
            out = []
            for i in range(df.height):
                tm = {a: times[a][i] for a in self.aliases if times[a][i] is not None}
                out.append(Env({a: recs[a][i] for a in self.aliases}, ts[i], tm))
            self._envs = out
        return self._envs


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return concat(frames, exact=True)


def _where(df: pl.DataFrame, flag: str) -> pl.DataFrame:
    """The rows whose Boolean column ``flag`` is true (no copy when all or none are)."""
    s = df[flag]
    if s.all():
        return df
    return df.filter(s) if s.any() else df.clear()


def _prefixed(df: pl.DataFrame, alias: str) -> pl.DataFrame:
    return df.rename({c: f"{alias}{SEP}{c}" for c in df.columns if c != TS})


class _Keys:
    """The index keys of one side: ``__k0``... (NULL where not a plain key) and ``__w{side}``."""

    def __init__(self, exprs: list[VExpr], alias: str, functions, last: dict[int, tuple] | None = None) -> None:
        self.exprs, self.alias, self.functions = exprs, alias, functions
        #: the last values keyed per equality and their key parts, shared by the two sides:
        #: a self-join's sides release the same events, whose keys are then computed once
        self.last: dict[int, tuple] = {} if last is None else last

    def parts(self, i: int, s: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series]:
        hit = self.last.get(i)
        if hit is not None and s.dtype != pl.Object and hit[0].dtype == s.dtype and hit[0].len() == s.len() \
                and hit[0].equals(s, check_names=False):
            return hit[1]
        parts = _key_parts(s)
        self.last[i] = (s, parts)
        return parts

    def add(self, df: pl.DataFrame, raw: pl.DataFrame, wild_col: str) -> pl.DataFrame:
        n = df.height
        if not self.exprs:
            return df.with_columns(pl.Series(wild_col, [False] * n, dtype=pl.Boolean),
                                   pl.Series("__k", [True] * n, dtype=pl.Boolean))
        batch = Batch(raw, self.alias, self.functions)
        keys, wild, null = [], np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        for i, vx in enumerate(self.exprs):
            k, w, nl = self.parts(i, vx.series(batch, f"__k{i}"))
            keys.append(k.alias(f"__k{i}"))
            wild |= w.to_numpy().astype(bool)
            null |= nl.to_numpy().astype(bool)
        keyed = ~(wild | null)
        return df.with_columns(keys + [pl.Series(wild_col, wild & ~null, dtype=pl.Boolean),
                                pl.Series("__k", keyed, dtype=pl.Boolean)])


class StreamSide:
    """``lo <= ts(right) - ts(left) <= hi`` (us) between the statement's two streams."""

    def __init__(self, lo: int, hi: int, left_outer: bool) -> None:
        self.lo, self.hi, self.left_outer = lo, hi, left_outer


class ReferenceSide:
    """Reference data (a static list of rows, or snapshots by time with ``at``)."""

    def __init__(self, rows_fn: Callable[[], Any], left_outer: bool) -> None:
        self.rows_fn, self.left_outer = rows_fn, left_outer
        self._frames: dict[int, tuple[Any, pl.DataFrame]] = {}


class VectorJoinStatement(VectorStatement):
    """One JOIN, then WHERE and a projection, over the batches of its input slots
    (``frames[0]`` the FROM source, ``frames[1]`` a stream JOIN's other side)."""

    multi = True

    def __init__(self, target: str, left: str, right: str, functions, side: StreamSide | ReferenceSide,
                 on: list[VExpr], lkeys: list[VExpr], rkeys: list[VExpr], where: VExpr | None,
                 items: list[tuple[str, VExpr | None]]) -> None:
        super().__init__(target, left, functions, where, None, items, None)
        self.left, self.right = left.lower(), right.lower()
        self.side, self.on = side, on
        self.lkeys = _Keys(lkeys, self.left, functions)
        self.rkeys = _Keys(rkeys, self.right, functions, self.lkeys.last)
        self.nkeys = len(lkeys)
        self.lbuf: pl.DataFrame | None = None  # stream joins: left events that may still match
        self.rbuf: pl.DataFrame | None = None  # right events that may still match
        self.seq = 0

    # -- the time loop --------------------------------------------------------------------
    def run_slots(self, slots: list[list[pl.DataFrame]], watermark: int) -> pl.DataFrame | list:
        try:
            return self._run_join(slots, watermark)
        except QueryRuntimeError:
            raise
        except _VALUE_ERRORS as exc:
            raise QueryRuntimeError(f"{type(exc).__name__}: {exc}") from None

    def _run_join(self, slots: list[list[pl.DataFrame]], watermark: int) -> pl.DataFrame | list:
        def one(frames: list[pl.DataFrame]) -> pl.DataFrame | None:
            frames = [f for f in frames if f is not None and f.height]
            if not frames:
                return None
            return frames[0] if len(frames) == 1 else _concat(frames).sort(TS, maintain_order=True)

        lnew = one(slots[0])
        if isinstance(self.side, StreamSide):
            joined = self._stream(self.side, lnew, one(slots[1]) if len(slots) > 1 else None, watermark)
        else:
            joined = self._reference(self.side, lnew) if lnew is not None else None
        if joined is None or joined.height == 0:
            return []
        batch = self._batch(joined)
        if self.where is not None:
            joined = joined.filter(self.where.series(batch, "__keep", predicate=True))
            if joined.height == 0:
                return []
            batch = self._batch(joined)
        return self._project(batch)

    def _batch(self, df: pl.DataFrame) -> JoinBatch:
        return JoinBatch(df, [self.left, self.right], {self.left: "__lt", self.right: "__rt"}, self.functions,
                         {self.right: "__um"})

    def _side(self, df: pl.DataFrame, alias: str, tcol: str, scol: str, seq: np.ndarray, keys: _Keys,
              wild: str) -> pl.DataFrame:
        out = _prefixed(df, alias).rename({TS: tcol}).with_columns(pl.Series(scol, seq, dtype=pl.Int64))
        return keys.add(out, df, wild)

    def _match(self, left: pl.DataFrame, right: pl.DataFrame, bound: Callable[[], pl.Expr] | None) -> pl.DataFrame:
        """Candidate pairs: equal keys, or a wild key on either side; in the time bound."""
        keys = [f"__k{i}" for i in range(self.nkeys)]
        lk, rk = _where(left, "__k"), _where(right, "__k")
        parts = []
        if lk.height and rk.height:
            if keys:
                rkeys = [f"__rk{i}" for i in range(len(keys))]
                p = lk.drop("__k").join(rk.drop("__k").rename(dict(zip(keys, rkeys))), left_on=keys,
                                        right_on=rkeys, how="inner")
                parts.append(p if bound is None else p.filter(bound()))
            else:
                parts.append(self._cross(lk, rk, bound, keys))
        lw, rw = _where(left, "__lw"), _where(right, "__rw")
        if lw.height:  # wild left keys: every right event with a key
            rany = right.filter(pl.col("__k") | pl.col("__rw"))
            if rany.height:
                parts.append(self._cross(lw, rany, bound, keys))
        if rw.height and lk.height:  # wild right keys: every left event with a plain key
            parts.append(self._cross(lk, rw, bound, keys))
        if not parts:
            return pl.DataFrame()
        drop = set(keys) | {f"__rk{i}" for i in range(len(keys))} | {"__k"}
        cols = [c for c in parts[0].columns if c not in drop]
        parts = [p.select([c for c in cols if c in p.columns]) for p in parts if p.height]
        if len(parts) == 1:
            return parts[0]
        return _concat(parts) if parts else pl.DataFrame()

    def _cross(self, left: pl.DataFrame, right: pl.DataFrame, bound: Callable[[], pl.Expr] | None,
               keys: list[str]) -> pl.DataFrame:
        left = left.drop(["__k"] + keys)
        right = right.drop(["__k"] + keys)
        side = self.side
        if bound is None or not isinstance(side, StreamSide):
            return left.join(right, how="cross")
        return left.join_where(right, pl.col("__rt") >= pl.col("__lt") + side.lo,
                               pl.col("__rt") <= pl.col("__lt") + side.hi)

    def _check(self, pairs: pl.DataFrame) -> pl.DataFrame:
        """Pairs for which every conjunct of ON is true (in turn: a false one ends a pair)."""
        for vx in self.on:
            if pairs.height == 0:
                break
            pairs = pairs.filter(vx.series(self._batch(pairs), "__on", predicate=True))
        return pairs

    # -- stream JOIN -------------------------------------------------------------------------
    def _stream(self, side: StreamSide, lnew: pl.DataFrame | None, rnew: pl.DataFrame | None,
                watermark: int) -> pl.DataFrame | None:
        nl = 0 if lnew is None else lnew.height
        nr = 0 if rnew is None else rnew.height
        out: list[pl.DataFrame] = []
        if nl or nr:
            # the order the row path processes events in: by time, left first, then arrival
            ts = np.concatenate([lnew[TS].to_numpy() if lnew is not None else np.zeros(0, np.int64),
                                 rnew[TS].to_numpy() if rnew is not None else np.zeros(0, np.int64)])
            sides = np.concatenate([np.zeros(nl, np.int8), np.ones(nr, np.int8)])
            order = np.lexsort((np.arange(nl + nr), sides, ts))
            seq = np.empty(nl + nr, dtype=np.int64)
            seq[order] = np.arange(self.seq, self.seq + nl + nr)
            self.seq += nl + nr
            L = self._side(lnew, self.left, "__lt", "__ls", seq[:nl], self.lkeys, "__lw") if lnew is not None else None
            R = self._side(rnew, self.right, "__rt", "__rs", seq[nl:], self.rkeys, "__rw") if rnew is not None else None
            if L is not None:
                L = L.with_columns(pl.lit(False).alias("__lm"))
            lo, hi = side.lo, side.hi

            def bound() -> pl.Expr:
                d = pl.col("__rt") - pl.col("__lt")
                return (d >= lo) & (d <= hi)
            lall = L if self.lbuf is None else (self.lbuf if L is None else _concat([self.lbuf, L]))
            rall = R if self.rbuf is None else (self.rbuf if R is None else _concat([self.rbuf, R]))
            found = []
            if L is not None and rall is not None and rall.height:
                found.append(self._match(L, rall, bound))
            if R is not None and self.lbuf is not None and self.lbuf.height:
                found.append(self._match(self.lbuf, R, bound))
            found = [p for p in found if p.height]
            if found and lall is not None:
                pairs = _concat(found) if len(found) > 1 else found[0]
                matched = self._check(pairs.with_columns(pl.max_horizontal("__lt", "__rt").alias(TS),
                                                         pl.lit(False).alias("__um")))
                if matched.height:
                    matched = matched.with_columns(
                        pl.max_horizontal("__ls", "__rs").alias("__o1"), pl.min_horizontal("__ls", "__rs").alias("__o2"))
                    out.append(matched)
                    if side.left_outer:  # which left events matched: only a LEFT JOIN asks
                        hit = matched["__ls"].unique()
                        lall = lall.with_columns(pl.col("__lm") | pl.col("__ls").is_in(hit.implode()))
            self.lbuf, self.rbuf = lall, rall
        if self.lbuf is not None and self.lbuf.height:
            final = pl.max_horizontal(pl.col("__lt"), pl.col("__lt") + side.hi)
            done = final < watermark
            if side.left_outer:
                gone = self.lbuf.filter(done & ~pl.col("__lm"))
                if gone.height:
                    fin = gone.select(final.alias("f"))["f"]
                    out.append(gone.with_columns(fin.alias(TS), fin.alias("__rt"), pl.lit(True).alias("__um"),
                                                 pl.col("__ls").alias("__o1"), pl.col("__ls").alias("__o2")))
            self.lbuf = self.lbuf.filter(~done)
        if self.rbuf is not None and self.rbuf.height and watermark > MIN_TS:
            self.rbuf = self.rbuf.filter(pl.col("__rt") - side.lo >= watermark)
        if not out:
            return None
        res = _concat(out) if len(out) > 1 else out[0]
        return res.sort([TS, "__um", "__o1", "__o2"], maintain_order=True)

    # -- reference JOIN ------------------------------------------------------------------------
    def _ref_frame(self, side: ReferenceSide, rows: list[dict]) -> pl.DataFrame:
        hit = side._frames.get(id(rows))
        if hit is not None and hit[0] is rows:
            return hit[1]
        names: dict[str, str] = {}
        for rec in rows:
            for k in rec:
                names.setdefault(k.lower(), k)
        cols = [exact_series(c, [_get(rec, c) for rec in rows]) for c in names.values()]
        raw = pl.DataFrame(cols) if cols else pl.DataFrame({"__n": [0] * len(rows)}).drop("__n")
        raw = raw.with_columns(pl.Series(TS, [0] * len(rows), dtype=pl.Int64))
        df = self._side(raw, self.right, "__rt", "__rs", np.arange(len(rows), dtype=np.int64), self.rkeys, "__rw")
        if len(side._frames) >= 8:
            side._frames.clear()
        side._frames[id(rows)] = (rows, df)
        return df

    def _reference(self, side: ReferenceSide, lnew: pl.DataFrame) -> pl.DataFrame | None:
        n = lnew.height
        L = self._side(lnew, self.left, "__lt", "__ls", np.arange(n, dtype=np.int64), self.lkeys, "__lw")
        src = side.rows_fn()
        if hasattr(src, "at"):  # a refreshed input: each event joins the snapshot valid at its time
            starts = np.asarray(src.starts, dtype=np.int64)
            idx = np.maximum(np.searchsorted(starts, lnew[TS].to_numpy(), side="right") - 1, 0) if len(starts) \
                else np.zeros(n, dtype=np.int64)
            groups = [(src.rows[int(v)] if src.rows else [], L.filter(pl.Series(idx == v)))
                      for v in np.unique(idx)]
        else:
            groups = [(src, L)]
        out = []
        for rows, part in groups:
            R = self._ref_frame(side, rows)
            if R.height == 0:
                continue
            pairs = self._match(part, R, None)
            if pairs.height:
                pairs = pairs.with_columns(pl.col("__lt").alias("__rt"), pl.col("__lt").alias(TS),
                                           pl.lit(False).alias("__um"))
                pairs = self._check(pairs)
                if pairs.height:
                    out.append(pairs)
        matched = _concat(out) if out else None
        if side.left_outer:
            gone = L.filter(~pl.col("__ls").is_in(matched["__ls"].unique().implode())) if matched is not None else L
            if gone.height:
                gone = gone.with_columns(pl.lit(None, dtype=pl.Int64).alias("__rt"), pl.lit(True).alias("__um"),
                                         pl.lit(-1, dtype=pl.Int64).alias("__rs"), pl.col("__lt").alias(TS))
                matched = gone if matched is None else _concat([matched, gone])
        if matched is None or matched.height == 0:
            return None
        return matched.with_columns(pl.col("__lt").alias(TS)).sort(["__ls", "__rs"], maintain_order=True)

    # -- state -------------------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, pl.DataFrame]]:
        tables = {}
        if self.lbuf is not None:
            tables["left"] = self.lbuf
        if self.rbuf is not None:
            tables["right"] = self.rbuf
        return {"seq": self.seq}, tables

    def load(self, meta: dict, tables: dict[str, pl.DataFrame]) -> None:
        self.seq = int(meta.get("seq", 0))
        self.lbuf = tables.get("left")
        self.rbuf = tables.get("right")

