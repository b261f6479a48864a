"""Temporal stream-stream JOIN (bounded by DATEDIFF ... BETWEEN) and reference-data JOIN.

Matched rows carry the later of the two timestamps; an unmatched LEFT row is emitted
when no match can come any more, timestamped at the latest time a match could have
occurred (left time + the upper DATEDIFF bound), right-side fields NULL.
"""

from __future__ import annotations

from typing import Any, Callable

from headwater.services.processing.operators.base import Env

__all__ = ["StreamJoin", "ReferenceJoin"]


class StreamJoin:
    """``lo <= ts(right) - ts(anchor) <= hi`` (us), ``anchor`` an alias of the left side."""

    def __init__(self, right_alias: str, anchor: str, lo: int, hi: int, on: Callable[[Env], Any],
                 left_outer: bool) -> None:
        self.ralias, self.anchor = right_alias.lower(), anchor.lower()
        self.lo, self.hi, self.on, self.left_outer = lo, hi, on, left_outer
        self.left: list[list] = []  # [anchor_ts, env, matched]
        self.right: list[tuple[int, dict]] = []

    def _combine(self, le: Env, rts: int, rec: dict) -> Env:
        recs = dict(le.recs)
        recs[self.ralias] = rec
        times = dict(le.times or {})
        times[self.ralias] = rts
        return Env(recs, max(le.ts, rts), times, an=le.an)

    def run(self, lefts: list[Env], rights: list[tuple[int, dict]], watermark: int) -> list[Env]:
        events = [(e.ts, 0, i, e) for i, e in enumerate(lefts)] + [(ts, 1, i, r) for i, (ts, r) in enumerate(rights)]
        events.sort(key=lambda t: (t[0], t[1], t[2]))
        out: list[Env] = []
        for ts, side, _, item in events:
            if side == 0:
                ats = item.times[self.anchor]
                entry = [ats, item, False]
                self.left.append(entry)
                for rts, rec in self.right:
                    if self.lo <= rts - ats <= self.hi:
                        self._try(entry, rts, rec, out)
            else:
                self.right.append((ts, item))
                for entry in self.left:
                    if self.lo <= ts - entry[0] <= self.hi:
                        self._try(entry, ts, item, out)
        # lefts whose match window is over
        keep = []
        for entry in self.left:
            final = max(entry[1].ts, entry[0] + self.hi)
            if final < watermark:
                if self.left_outer and not entry[2]:
                    e = self._combine(entry[1], final, {})
                    e.ts = final
                    out.append(e)
            else:
                keep.append(entry)
        self.left = keep
        self.right = [(ts, r) for ts, r in self.right if ts - self.lo >= watermark]
        out.sort(key=lambda e: e.ts)
        return out

    def _try(self, entry: list, rts: int, rec: dict, out: list) -> None:
        e = self._combine(entry[1], rts, rec)
        if self.on(e) is True:
            entry[2] = True
            out.append(e)

    def snapshot(self) -> Any:
        return {"left": self.left, "right": self.right}

    def restore(self, state: Any) -> None:
        self.left, self.right = state["left"], state["right"]


class ReferenceJoin:
    """Join each event with the rows of a static reference input (no time bound)."""

    def __init__(self, alias: str, rows_fn: Callable[[], list[dict]], on: Callable[[Env], Any],
                 left_outer: bool) -> None:
        self.alias, self.rows_fn, self.on, self.left_outer = alias.lower(), rows_fn, on, left_outer

    def run(self, lefts: list[Env]) -> list[Env]:
        out = []
        rows = self.rows_fn()
        for le in lefts:
            matched = False
            for rec in rows:
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
