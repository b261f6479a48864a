"""Temporal stream-stream JOIN (bounded by DATEDIFF ... BETWEEN) and reference-data JOIN.

Matched rows carry the later of the two timestamps; an unmatched LEFT row is emitted
when no match can come any more, timestamped at the latest time a match could have
occurred (left time + the upper DATEDIFF bound), right-side fields NULL.

Equality conjuncts of ON (``a.x = b.y``) index both sides by a key, so an event is only
tried against events that can match; every candidate is still checked with the whole ON
condition. Values whose equality is not a plain key match (numbers written as text, which
equal numbers; datetimes and datetime-looking text, which equal each other; records,
arrays) are tried against everything, so the index never hides a match.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from typing import Any

import orjson

from headwater.services.processing.exec.base import Env

__all__ = ["StreamJoin", "ReferenceJoin", "join_key", "WILD"]

WILD = object()  # a key that must be tried against every entry


def _component(v: Any) -> Any:
    if v is None:
        return None
    t = type(v)
    if t is bool or t is int or t is float:
        return ("n", float(v))
    if t is str:
        try:
            float(v)  # text that reads as a number equals that number
            return WILD
        except ValueError:
            pass
        w = v.strip()
        if len(w) >= 10 and w[4:5] == "-":  # may be a datetime, which equals a datetime value
            return WILD
        return ("s", v.lower())
    return WILD


def join_key(values: list[Any]) -> Any:
    """The index key of equality values; None (never matches), WILD, or a hashable tuple."""
    out = []
    for v in values:
        c = _component(v)
        if c is None:
            return None
        if c is WILD:
            return WILD
        out.append(c)
    return tuple(out)


class _Side:
    """Entries of one side by key, each bucket in arrival (time) order."""

    def __init__(self) -> None:
        self.buckets: dict[Any, list] = {}
        self.wild: list = []

    def add(self, key: Any, entry: Any) -> None:
        if key is WILD:
            self.wild.append(entry)
        elif key is not None:
            self.buckets.setdefault(key, []).append(entry)

    def candidates(self, key: Any):
        if key is None:
            return
        if key is WILD:
            for b in self.buckets.values():
                yield from b
        else:
            yield from self.buckets.get(key, ())
        yield from self.wild

    def all(self):
        for b in self.buckets.values():
            yield from b
        yield from self.wild

    def keep(self, pred: Callable[[Any], bool]) -> None:
        for k in list(self.buckets):
            b = [e for e in self.buckets[k] if pred(e)]
            if b:
                self.buckets[k] = b
            else:
                del self.buckets[k]
        self.wild = [e for e in self.wild if pred(e)]


class StreamJoin:
    """``lo <= ts(right) - ts(anchor) <= hi`` (us), ``anchor`` an alias of the left side.

    ``left_key``/``right_key`` compute the equality values of each side (empty: no index).
    """

    def __init__(self, right_alias: str, anchor: str, lo: int, hi: int, on: Callable[[Env], Any],
                 left_outer: bool, left_key: Callable[[Env], list] | None = None,
                 right_key: Callable[[Env], list] | None = None) -> None:
        self.ralias, self.anchor = right_alias.lower(), anchor.lower()
        self.lo, self.hi, self.on, self.left_outer = lo, hi, on, left_outer
        self.left_key, self.right_key = left_key, right_key
        self.left = _Side()  # entries: [anchor_ts, env, matched, key]
        self.right = _Side()  # entries: (ts, record)
        self.pending_left: list[list] = []  # every left entry, for unmatched emission

    def _combine(self, le: Env, rts: int, rec: dict) -> Env:
        recs = dict(le.recs)
        recs[self.ralias] = rec
        times = dict(le.times or {})
        times[self.ralias] = rts
        return Env(recs, max(le.ts, rts), times, an=le.an)

    def _lkey(self, env: Env) -> Any:
        return () if self.left_key is None else join_key(self.left_key(env))

    def _rkey(self, ts: int, rec: dict) -> Any:
        return () if self.right_key is None else join_key(self.right_key(Env({self.ralias: rec}, ts)))

    def run(self, lefts: list[Env], rights: list[tuple[int, dict]], watermark: int) -> list[Env]:
        # both sides in time order, lefts first at one time, each side in arrival order
        events = sorted([(e.ts, 0, i) for i, e in enumerate(lefts)] + [(ts, 1, i) for i, (ts, _) in enumerate(rights)])
        out: list[Env] = []
        lo, hi = self.lo, self.hi
        for ts, side, i in events:
            if side == 0:
                le = lefts[i]
                assert le.times is not None  # a JOIN's records carry each alias's time
                ats = le.times[self.anchor]
                key = self._lkey(le)
                entry = [ats, le, False, key]
                self.pending_left.append(entry)
                self.left.add(key, entry)
                for rts, rec in self.right.candidates(key):
                    if lo <= rts - ats <= hi:
                        self._try(entry, rts, rec, out)
            else:
                rec = rights[i][1]
                key = self._rkey(ts, rec)
                self.right.add(key, (ts, rec))
                for entry in self.left.candidates(key):
                    if lo <= ts - entry[0] <= hi:
                        self._try(entry, ts, rec, out)
        # lefts whose match window is over
        keep = []
        for entry in self.pending_left:
            final = max(entry[1].ts, entry[0] + hi)
            if final < watermark:
                if self.left_outer and not entry[2]:
                    e = self._combine(entry[1], final, {})
                    e.ts = final
                    out.append(e)
            else:
                keep.append(entry)
        if len(keep) != len(self.pending_left):
            alive = {id(e) for e in keep}
            self.left.keep(lambda e: id(e) in alive)
        self.pending_left = keep
        self.right.keep(lambda r: r[0] - lo >= watermark)
        out.sort(key=lambda e: e.ts)
        return out

    def _try(self, entry: list, rts: int, rec: dict, out: list) -> None:
        e = self._combine(entry[1], rts, rec)
        if self.on(e) is True:
            entry[2] = True
            out.append(e)

    def snapshot(self) -> Any:
        return {"left": self.pending_left, "right": list(self.right.all())}

    def restore(self, state: Any) -> None:
        self.left, self.right = _Side(), _Side()
        self.pending_left = list(state["left"])
        for entry in self.pending_left:
            self.left.add(entry[3], entry)
        for ts, rec in state["right"]:
            self.right.add(self._rkey(ts, rec), (ts, rec))


class ReferenceJoin:
    """Join each event with the rows of a static reference input (no time bound)."""

    def __init__(self, alias: str, rows_fn: Callable[[], list[dict] | ReferenceVersions], on: Callable[[Env], Any],
                 left_outer: bool, left_key: Callable[[Env], list] | None = None,
                 right_key: Callable[[Env], list] | None = None) -> None:
        self.alias, self.rows_fn, self.on, self.left_outer = alias.lower(), rows_fn, on, left_outer
        self.left_key, self.right_key = left_key, right_key
        #: id(rows) -> (rows, index): one per snapshot of a refreshed input in use.
        self._index: dict[int, tuple[list[dict], _Side]] = {}

    def _side(self, rows: list[dict]) -> _Side:
        hit = self._index.get(id(rows))
        if hit is None or hit[0] is not rows:
            side = _Side()
            for rec in rows:
                key = () if self.right_key is None else join_key(self.right_key(Env({self.alias: rec}, 0)))
                side.add(key, rec)
            if len(self._index) >= 8:
                self._index.clear()
            hit = self._index[id(rows)] = (rows, side)
        return hit[1]

    def run(self, lefts: list[Env]) -> list[Env]:
        out = []
        src = self.rows_fn()
        # A refreshed input: each event joins the snapshot valid at its timestamp.
        sides = [self._side(src.at(le.ts)) for le in lefts] if isinstance(src, ReferenceVersions) \
            else [self._side(src)] * len(lefts)
        for le, side in zip(lefts, sides):
            matched = False
            key = () if self.left_key is None else join_key(self.left_key(le))
            for rec in side.candidates(key):
                recs = dict(le.recs)
                recs[self.alias] = rec
                times = dict(le.times or {})
                times[self.alias] = le.ts
                e = Env(recs, le.ts, times, an=le.an)
                if self.on(e) is True:
                    matched = True
                    out.append(e)
            if not matched and self.left_outer:
                recs = dict(le.recs)
                recs[self.alias] = {}
                out.append(Env(recs, le.ts, le.times, an=le.an))
        return out

    def snapshot(self) -> Any:
        return None

    def restore(self, state: Any) -> None:
        pass


#: Valid from the beginning: the first snapshot serves every earlier event.
BEGINNING = -(2**62)
#: Snapshots kept behind the watermark (older ones are dropped).
KEEP_BEHIND = 2


class ReferenceVersions:
    """The snapshots of one reference input by the time each is valid from."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.rows: list[list[dict]] = []

    def add(self, valid_from_us: int, rows: list[dict]) -> None:
        i = bisect.bisect_right(self.starts, valid_from_us)
        if i and self.starts[i - 1] == valid_from_us:
            self.rows[i - 1] = rows
            return
        self.starts.insert(i, valid_from_us)
        self.rows.insert(i, rows)

    def at(self, ts_us: int) -> list[dict]:
        """The rows valid at ``ts_us`` (the first snapshot for anything earlier)."""
        i = bisect.bisect_right(self.starts, ts_us) - 1
        return self.rows[max(i, 0)] if self.rows else []

    def latest(self) -> list[dict]:
        return self.rows[-1] if self.rows else []

    def prune(self, watermark_us: int) -> None:
        """Drop snapshots that no event at or after the watermark can join any more
        (keeping ``KEEP_BEHIND`` for late events adjusted to the watermark)."""
        cut = bisect.bisect_right(self.starts, watermark_us) - KEEP_BEHIND
        if cut > 0:
            del self.starts[:cut], self.rows[:cut]

    def to_json(self) -> bytes:
        return orjson.dumps([[s, r] for s, r in zip(self.starts, self.rows)])

    @classmethod
    def from_json(cls, data: bytes) -> ReferenceVersions:
        v = cls()
        for s, r in orjson.loads(data):
            v.add(int(s), r)
        return v
