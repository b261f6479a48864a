"""Analytic functions (LAG, LAST, ISFIRST, aggregates OVER LIMIT DURATION), evaluated on
a statement's input before WHERE, as Stream Analytics documents them."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headwater.services.processing.exec.base import Env, KeyedColumns
from headwater.services.processing.exec.project import Stage
from headwater.services.processing.exec.window_aggregate import group_key

__all__ = ["AnalyticSpec", "Analytic"]


@dataclass
class AnalyticSpec:
    kind: str  # lag | last | isfirst | agg
    value: Callable[[Env], Any] | None
    partition: list[Callable[[Env], Any]]
    duration: int | None  # LIMIT DURATION in us
    when: Callable[[Env], Any] | None
    offset: int = 1
    default: Callable[[Env], Any] | None = None
    interval: int = 0  # ISFIRST
    agg: Any = None  # AggregateFunction for kind 'agg'
    node: Any = None  # the call in the query (the vectorised implementation reads it)


class Analytic(Stage):
    def __init__(self, specs: list[AnalyticSpec]) -> None:
        self.specs = specs
        self.history: list[dict] = [dict() for _ in specs]

    def process(self, envs: list[Env]) -> list[Env]:
        for e in envs:
            e.an = [self._eval(i, s, e) for i, s in enumerate(self.specs)]
        return envs

    def _eval(self, i: int, s: AnalyticSpec, e: Env) -> Any:
        key = group_key([p(e) for p in s.partition])
        hist = self.history[i]
        passes = s.when is None or s.when(e) is True
        if s.kind == "isfirst":
            if not passes:
                return 0
            iid = (e.ts - 1) // s.interval
            if hist.get(key) == iid:
                return 0
            hist[key] = iid
            return 1
        q = hist.get(key)
        if q is None:
            q = hist[key] = deque()
        if s.duration is not None:
            limit = e.ts - s.duration
            while q and q[0][0] < limit:
                q.popleft()
        if s.value is not None:
            value = s.value(e)
        else:  # LAG(*): the whole event
            value = next(iter(e.recs.values())) if len(e.recs) == 1 else dict(e.recs)
        if s.kind == "lag":
            if len(q) >= s.offset:
                result = q[-s.offset][1]
            else:
                result = s.default(e) if s.default else None
            if passes:
                q.append((e.ts, value))
            return result
        if passes:
            q.append((e.ts, value))
        if s.kind == "last":
            if q:
                return q[-1][1]
            return s.default(e) if s.default else None
        acc = s.agg.create()
        for _, v in q:
            acc = s.agg.add(acc, v)
        return s.agg.result(acc)

    def advance(self, watermark: int) -> list[Env]:
        """Forget partitions whose history can no longer matter (state grows with live keys)."""
        self._sweeps = getattr(self, "_sweeps", 0) + 1
        if self._sweeps % 16:
            return []
        for s, hist in zip(self.specs, self.history):
            if s.kind == "isfirst":
                now = (watermark - 1) // s.interval
                dead = [k for k, iid in hist.items() if iid < now]
            elif s.duration is not None:
                limit = watermark - s.duration
                dead = [k for k, q in hist.items() if not q or q[-1][0] < limit]
            else:
                continue
            for k in dead:
                del hist[k]
        return []

    def snapshot(self, columns: bool = True) -> Any:
        if columns:  # partition keys, and their histories (deques of (ts, value)) or ISFIRST interval ids
            return [KeyedColumns([list(h), list(h.values())]) for h in self.history]
        return [{k: list(v) if isinstance(v, deque) else v for k, v in h.items()} for h in self.history]

    def restore(self, state: Any) -> None:
        self.history = [dict(zip(*h.columns)) if type(h) is KeyedColumns else
                        {k: deque(v) if isinstance(v, list) else v for k, v in h.items()} for h in state]
