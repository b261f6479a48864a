"""MATCH_RECOGNIZE as far as the documented examples go.

Per partition, events are kept for LIMIT DURATION. When an event arrives, the pattern
is tried on the events ending at that event, from the oldest allowed start: the first
start that matches gives one output row (MEASURES over that match), then the next
start is the row after the match's first row (AFTER MATCH SKIP TO NEXT ROW) or after
its last (SKIP PAST LAST ROW). At most one match is reported per arriving event, so a
match is reported as soon as it is complete.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.services.processing.exec.base import Env
from headwater.services.processing.exec.project import Stage
from headwater.services.processing.exec.window_aggregate import group_key

__all__ = ["MatchRecognize"]


class MatchRecognize(Stage):
    def __init__(self, partition: list[Callable[[Env], Any]], duration: int, pattern: Any,
                 define: dict[str, Callable[[Env], Any]], symbols: list[str],
                 measures: Callable[[list[Env], list[str]], dict], skip_next: bool, alias: str) -> None:
        self.partition, self.duration, self.pattern = partition, duration, pattern
        self.define, self.symbols, self.measures = define, symbols, measures
        self.skip_next, self.alias = skip_next, alias
        self.parts: dict[tuple, list] = {}  # key -> [events, next_start_seq, seq_counter]

    def process(self, envs: list[Env]) -> list[Env]:
        out = []
        for e in envs:
            key = group_key([p(e) for p in self.partition])
            st = self.parts.setdefault(key, [[], 0, 0])
            events, _, seq = st
            events.append((seq, e))
            st[2] = seq + 1
            limit = e.ts - self.duration
            while events and events[0][1].ts < limit:
                events.pop(0)
            for idx, (s, _) in enumerate(events):
                if s < st[1]:
                    continue
                rows = [x for _, x in events[idx:]]
                labels = self._match(rows)
                if labels is not None:
                    rec = self.measures(rows, labels)
                    out.append(Env({self.alias: rec}, e.ts))
                    st[1] = (s + 1) if self.skip_next else st[2]
                    break
        return out

    def _classes(self, e: Env) -> set[str]:
        out = set()
        for sym in self.symbols:
            cond = self.define.get(sym)
            if cond is None or cond(e) is True:
                out.add(sym)
        return out

    def _match(self, rows: list[Env]) -> list[str] | None:
        classes = [self._classes(r) for r in rows]
        n = len(rows)

        def m(node, i, k):
            """Yield end positions (with labels) matching ``node`` from ``i``, then continue with k."""
            kind = node[0]
            if kind == "sym":
                if i < n and node[1] in classes[i]:
                    yield from k(i + 1, [node[1]])
                return
            if kind == "seq":
                def chain(items, j, acc):
                    if not items:
                        yield from k(j, acc)
                        return
                    yield from m(items[0], j, lambda j2, lab: chain(items[1:], j2, acc + lab))
                yield from chain(node[1], i, [])
                return
            if kind == "alt":
                for sub in node[1]:
                    yield from m(sub, i, k)
                return
            _, atom, lo, hi = node

            def rep(j, count, acc):
                if hi is None or count < hi:
                    yield from m(atom, j, lambda j2, lab: rep(j2, count + 1, acc + lab) if j2 > j else iter(()))
                if count >= lo:
                    yield from k(j, acc)
            yield from rep(i, 0, [])

        for end, labels in m(self.pattern, 0, lambda j, lab: iter([(j, lab)])):
            if end == n:
                return labels
        return None

    def snapshot(self, columns: bool = True) -> Any:
        return self.parts

    def restore(self, state: Any) -> None:
        self.parts = state
