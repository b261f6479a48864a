"""GROUP BY keys + window: per-window partial aggregates, emitted when the watermark
passes the window's end (start exclusive, end inclusive), then HAVING and SELECT.

Window logic comes from the window kind's plugin (:mod:`headwater.windows`); this
operator only keeps accumulators per (partition, window, group key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

from headwater.services.processing.exec.base import Env, KeyedColumns, QueryRuntimeError
from headwater.services.processing.exec.project import Stage

__all__ = ["AggSpec", "WindowAggregate", "WindowRun", "group_key"]


@dataclass
class AggSpec:
    """One aggregate call: ``fn`` (an AggregateFunction), its argument, flags."""

    fn: Any
    arg: Callable[[Env], Any] | None  # None for COUNT(*) and whole-event aggregates
    star: bool = False
    distinct: bool = False
    order: list[tuple[Callable[[Env], Any], bool]] | None = None
    node: Any = None  # the call in the query (the columnar path reads it)

    def value(self, e: Env) -> Any:
        if self.star:
            return 1
        v = self.arg(e) if self.arg is not None else _whole(e)
        if getattr(self.fn, "timestamped", False):  # (System.Timestamp, value): JavaScript UDAs
            v = (e.ts, v)
        if self.order is not None:
            return (tuple((f(e), desc) for f, desc in self.order), v)
        return v


def _whole(e: Env) -> Any:
    if len(e.recs) == 1:
        return next(iter(e.recs.values()))
    return dict(e.recs)


def group_key(vals: list) -> tuple:
    """A hashable key; bit values stay apart from the numbers 1 and 0 they equal in Python."""
    out: list[object] = []
    for v in vals:
        if v is True or v is False:
            out.append(("bit", v))
            continue
        try:
            hash(v)
            out.append(v)
        except TypeError:
            out.append(repr(v))
    return tuple(out)


class _Distinct:
    """DISTINCT wrapper for an aggregate other than COUNT (which has its own)."""

    def __init__(self, fn) -> None:
        self.fn = fn

    def create(self):
        return (set(), self.fn.create())

    def add(self, acc, value):
        seen, inner = acc
        k = group_key([value])
        if k in seen:
            return acc
        seen.add(k)
        return (seen, self.fn.add(inner, value))

    def result(self, acc):
        return self.fn.result(acc[1])


@dataclass
class WindowRun:
    """One window definition of the GROUP BY (``Windows(...)`` gives several)."""

    kind: Any
    config: Any
    label: Any
    partition: list[Callable[[Env], Any]]


class WindowAggregate(Stage):
    def __init__(self, runs: list[WindowRun], keys: list[Callable[[Env], Any]], aggs: list[AggSpec],
                 having: Callable[[Env], Any] | None, project: Callable[[Env], dict]) -> None:
        self.runs = runs
        self.keys = keys
        self.aggs = aggs
        self.fns = [(_Distinct(a.fn) if a.distinct and a.fn.name.upper() != "COUNT DISTINCT" else a.fn) for a in aggs]
        self.having = having
        self.project = project
        n = len(runs)
        self.logics: list[dict] = [dict() for _ in range(n)]
        #: per run: (partition key, window id) -> group key -> [accumulators, first event]
        self.groups: list[dict[Any, dict[Any, list]]] = [dict() for _ in range(n)]
        self.buffers: list[dict] = [dict() for _ in range(n)]

    def _pkey(self, run: WindowRun, gkey: tuple, e: Env) -> tuple:
        if run.kind.per_group:
            return gkey
        if run.partition:
            return group_key([p(e) for p in run.partition])
        return ()

    def process(self, envs: list[Env]) -> list[Env]:
        fns, aggs = self.fns, self.aggs
        for e in envs:
            gkey = group_key([k(e) for k in self.keys])
            vals = [a.value(e) for a in aggs]
            for r, run in enumerate(self.runs):
                pkey = self._pkey(run, gkey, e)
                logic = self.logics[r].get(pkey)
                if logic is None:
                    logic = self.logics[r][pkey] = run.config.build(None)
                wids = logic.assign(e.ts)
                if run.kind.buffered:
                    self.buffers[r].setdefault(pkey, []).append((e.ts, gkey, vals, e))
                    continue
                groups = self.groups[r]
                for wid in wids:
                    g = groups.get((pkey, wid))
                    if g is None:
                        g = groups[(pkey, wid)] = {}
                    st = g.get(gkey)
                    if st is None:
                        st = g[gkey] = [[f.create() for f in fns], e]
                    self._add(st[0], vals)
        return []

    def advance(self, watermark: int) -> list[Env]:
        out: list[tuple[int, int, Env]] = []
        for r, run in enumerate(self.runs):
            for pkey, logic in list(self.logics[r].items()):
                for wid, end in logic.close_for(watermark):
                    if run.kind.buffered:
                        self._emit_buffered(r, run, pkey, logic, wid, end, out)
                    else:
                        g = self.groups[r].pop((pkey, wid), None) or {}
                        for st in g.values():
                            self._emit(run, st[0], st[1], end, out)
                if run.kind.buffered:
                    buf = self.buffers[r].get(pkey)
                    if buf:
                        keep_after = watermark - logic.retention()
                        i = 0
                        while i < len(buf) and buf[i][0] <= keep_after:
                            i += 1
                        if i:
                            del buf[:i]
                    if not buf and not logic.snapshot():
                        self.buffers[r].pop(pkey, None)
                        del self.logics[r][pkey]
                elif pkey != () and logic.idle():
                    del self.logics[r][pkey]
        out.sort(key=lambda t: (t[0], t[1]))
        return [t[2] for t in out]

    def _emit_buffered(self, r, run, pkey, logic, wid, end, out) -> None:
        start, stop = logic.bounds(wid)
        groups: dict[tuple, list] = {}
        for ts, gkey, vals, e in self.buffers[r].get(pkey, ()):
            if start < ts <= stop:
                st = groups.get(gkey)
                if st is None:
                    st = groups[gkey] = [[f.create() for f in self.fns], e]
                st[1] = e
                self._add(st[0], vals)
        for st in groups.values():
            self._emit(run, st[0], st[1], end, out)

    def _add(self, accs: list, vals: list) -> None:
        i = 0
        try:
            for i, f in enumerate(self.fns):
                accs[i] = f.add(accs[i], vals[i])
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise QueryRuntimeError(f"{self.aggs[i].fn.name}: {exc}") from None

    def _emit(self, run: WindowRun, accs: list, rep: Env, end: int, out: list) -> None:
        try:
            res = [f.result(a) for f, a in zip(self.fns, accs)]
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise QueryRuntimeError(f"aggregate: {exc}") from None
        e = Env(rep.recs, end, rep.times, res, rep.an, run.label)
        if self.having is not None and self.having(e) is not True:
            return
        out.append((end, len(out), Env({"": self.project(e)}, end)))

    def snapshot(self, columns: bool = True) -> Any:
        return {
            "logics": [{k: logic.snapshot() for k, logic in d.items()} for d in self.logics],
            "groups": [_group_columns(g) for g in self.groups] if columns else self.groups,
            "buffers": self.buffers,
        }

    def restore(self, state: Any) -> None:
        self.logics = [{k: run.config.build(s) for k, s in d.items()} for run, d in zip(self.runs, state["logics"])]
        self.groups = [_groups_of(g) if type(g) is list else g for g in state["groups"]]
        self.buffers = state["buffers"]


def _group_columns(groups: dict) -> list[KeyedColumns]:
    """``{(pkey, wid): {gkey: [accumulators, representative event]}}`` as two column sets:
    the windows with their group counts, and every group's key, accumulators and event."""
    sts = list(chain.from_iterable(g.values() for g in groups.values()))
    return [KeyedColumns([list(groups), [len(g) for g in groups.values()]]),
            KeyedColumns([list(chain.from_iterable(groups.values())), [st[0] for st in sts],
                          [st[1] for st in sts]])]


def _groups_of(cols: list[KeyedColumns]) -> dict:
    (wins, counts), (gkeys, accs, reps) = cols[0].columns, cols[1].columns
    groups, i = {}, 0
    for win, n in zip(wins, counts):
        groups[win] = dict(zip(gkeys[i:i + n], map(list, zip(accs[i:i + n], reps[i:i + n]))))
        i += n
    return groups
