"""An input read by one FROM reference: timestamps, ordering policy, release by watermark."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from headwater.functions import CastError, EventRecord, cast, to_datetime, to_micros
from headwater.services.processing.exec.base import Env, QueryRuntimeError, get_ci
from headwater.services.processing.exec.watermarks import Counters, EventClock, OrderingPolicy

__all__ = ["Source", "conform"]

_MISSING = object()


def conform(rec: dict, schema: list[tuple[str, str]]) -> dict:
    """``rec`` with each declared column converted to its type (NULL stays NULL); CastError
    when a value does not convert without loss."""
    out = EventRecord(rec, rec.metadata) if isinstance(rec, EventRecord) else dict(rec)
    lower = {k.lower(): k for k in rec}
    for col, typ in schema:
        key = lower.get(col.lower())
        if key is None or rec[key] is None:
            continue
        v = rec[key]
        if typ == "bigint" and isinstance(v, float) and not v.is_integer():
            raise CastError(f"{col}: {v!r} is not a bigint")
        out[key] = cast(v, typ)
    return out


class Source:
    """Events of one input as one FROM clause sees them (its alias and TIMESTAMP BY)."""

    def __init__(self, input_name: str, alias: str, timestamp_by: Callable[[Env], Any] | None,
                 over: list[Callable[[Env], Any]], policy: OrderingPolicy,
                 schema: list[tuple[str, str]] | None = None, ts_field: str | None = None) -> None:
        self.schema = schema
        #: TIMESTAMP BY a plain field: read it directly (strings parsed once per distinct value)
        self.ts_field = ts_field
        self._ts_cache: dict[str, int] = {}
        self.input = input_name.lower()
        self.alias = alias.lower()
        self.ts_fn = timestamp_by
        self.over = over
        self.clock = EventClock(policy, timestamp_by is not None)
        self.heap: list[tuple[int, int, dict]] = []
        self.seq = 0
        #: set by the engine: the system columns a statement reads (PartitionId, ...)
        self.system: set[str] = set()
        #: set by the engine: the fields the statement reads (None: whole records)
        self.fields: set[str] | None = None

    def push(self, rows: list[dict], arrivals: list[int] | None, now: int, counters: Counters,
             partitions: list | None = None, seqs: list | None = None) -> None:
        ts_fn, alias = self.ts_fn, self.alias
        if self.schema:
            rows, arrivals, partitions, seqs = self._conform(self.schema, rows, arrivals, partitions, seqs, counters)
        # (event time, arrival, record, input partition, sequence number)
        items: list[tuple[int, int, dict, str | None, int | None]] = []
        if ts_fn is None:
            for i, rec in enumerate(rows):
                a = int(arrivals[i]) if arrivals is not None else now
                items.append((a, a, rec, None, None))
        else:
            field, cache = self.ts_field, self._ts_cache
            for i, rec in enumerate(rows):
                try:
                    if field is not None and type(rec) is dict:
                        v = rec.get(field, _MISSING)
                        if v is _MISSING:
                            v = get_ci(rec, field)
                    else:
                        v = ts_fn(Env({alias: rec}, 0))
                    if v is None:
                        raise CastError("the TIMESTAMP BY value is NULL")
                    e = cache.get(v) if type(v) is str else None
                    if e is None:
                        e = to_micros(to_datetime(v))
                        if type(v) is str:
                            if len(cache) >= 4096:
                                cache.clear()
                            cache[v] = e
                except (CastError, ValueError, TypeError, OverflowError, QueryRuntimeError) as exc:
                    counters.error(f"input {self.input!r}: {exc}", record=rec, where=(
                        None if partitions is None else partitions[i],
                        None if seqs is None or len(seqs) != len(rows) else seqs[i]))
                    continue
                items.append((e, int(arrivals[i]) if arrivals is not None else e, rec,
                              None if partitions is None else str(partitions[i]),
                              None if seqs is None or len(seqs) != len(rows) else int(seqs[i])))
            if arrivals is None:  # on time: in timestamp order
                items.sort(key=lambda t: t[0])
        clock = self.clock
        verdicts = counters.verdicts if ts_fn is not None and arrivals is not None else None
        seen: list = []  # (partition, seq, arrival, event time, counted at or None, why) for the verdicts
        for item in items:
            e, a, rec = item[0], item[1], item[2]
            key: Any = item[3]  # the input partition: its own ordering
            if self.over:
                env = Env({alias: rec}, e)
                key = (key, tuple(f(env) for f in self.over))
            ts = clock.accept(e, a, key, counters)
            if verdicts is not None:
                seen.append((item[3], item[4], a, e, ts, clock.why))
            if ts is None:
                continue
            heapq.heappush(self.heap, (ts, self.seq, rec))
            self.seq += 1
        if seen and verdicts is not None:
            seen_parts, seen_seqs, arr, ev, ts_, why = zip(*seen)
            verdicts.add_batch(self.input, ["" if p is None else p for p in seen_parts],
                               None if any(q is None for q in seen_seqs) else seen_seqs, arr, ev,
                               [e if t is None else t for e, t in zip(ev, ts_)], [t is not None for t in ts_],
                               [w == "late" for w in why], [w == "early" for w in why],
                               [w == "out_of_order" for w in why], self)

    def _conform(self, schema: list[tuple[str, str]], rows, arrivals, partitions, seqs, counters):
        """CREATE TABLE: convert declared columns to their types; drop events that do not
        conform (with their partition and sequence number, for the dead letters); the
        arrivals, partitions and sequence numbers of the others stay aligned with them."""
        if seqs is not None and len(seqs) != len(rows):
            seqs = None
        out: list[dict] = []
        arr: list | None = [] if arrivals is not None else None
        parts: list | None = [] if partitions is not None else None
        kept: list | None = [] if seqs is not None else None
        for i, rec in enumerate(rows):
            try:
                rec = conform(rec, schema)
            except (CastError, ValueError, TypeError, OverflowError) as exc:
                counters.error(f"input {self.input!r}: the event does not match CREATE TABLE: {exc}", record=rec,
                               where=(None if partitions is None else partitions[i],
                                      None if seqs is None else int(seqs[i])))
                continue
            out.append(rec)
            if arr is not None:
                arr.append(arrivals[i])
            if parts is not None:
                parts.append(partitions[i])
            if kept is not None:
                kept.append(seqs[i])
        return out, arr, parts, kept

    def watermark(self) -> int:
        return self.clock.watermark()

    def release(self, watermark: int) -> list[tuple[int, dict]]:
        out = []
        heap = self.heap
        while heap and heap[0][0] <= watermark:
            ts, _, rec = heapq.heappop(heap)
            out.append((ts, rec))
        return out

    def snapshot(self) -> Any:
        return {"clock": self.clock.snapshot(), "heap": list(self.heap), "seq": self.seq}

    def restore(self, state: Any) -> None:
        self.clock.restore(state["clock"])
        self.heap = list(state["heap"])
        heapq.heapify(self.heap)
        self.seq = state["seq"]
