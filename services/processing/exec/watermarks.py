"""Event ordering policy and watermarks of one input (Stream Analytics' rules).

Given an event's time ``e`` (TIMESTAMP BY) and arrival time ``a``:

1. early: ``e - a > 5 min`` -> dropped; it does not advance the watermark (TH);
2. late: ``a - e >= late tolerance`` (and > 0) -> Adjust: ``e := a - late``; Drop: dropped (EO);
3. out of order: ``W = max(newest - ooo, clock - late)``, ``newest`` the largest event
   time accepted so far (TH's watermark). Below ``W`` -> Adjust to ``W`` or Drop.
   Besides, an event older than ``newest`` that arrived more than ``ooo`` after its own
   time (and was not late-adjusted) is adjusted to ``min(a - ooo, newest)``.

Reading where the documents conflict (SEMANTICS.md §15.2): the event-ordering article
adjusts its event 5 (00:10:35, arrived 00:10:45, tolerance 8 s) to ``a - ooo`` =
00:10:37, while the time-handling article's watermark (newest 00:10:42 - 8 s) leaves
it at 00:10:35. Rule 3's second sentence reproduces the event-ordering table without
changing any outcome of the time-handling illustration (whose events 6 and 9 arrive
exactly ``late`` after their time, so step 2 applies to them: ``>=`` there is chosen
so that both documented tables hold). Only System.Timestamp changes; the payload's
event-time field is never modified.

Without TIMESTAMP BY the arrival time is the timestamp and no policy applies.
Every source's watermark also advances with the arrival clock (``clock - late``), so
windows close on an idle input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from headwater.services.processing.exec.base import MIN_TS

__all__ = ["OrderingPolicy", "Counters", "EventClock"]

EARLY_US = 5 * 60 * 1_000_000


@dataclass(frozen=True)
class OrderingPolicy:
    late_arrival_tolerance_us: int = 5_000_000
    out_of_order_tolerance_us: int = 0
    out_of_order_action: str = "adjust"  # adjust | drop

    @classmethod
    def from_seconds(cls, late: float | None = None, ooo: float | None = None, action: str | None = None):
        return cls(
            int(round((5.0 if late is None else late) * 1e6)),
            int(round((0.0 if ooo is None else ooo) * 1e6)),
            (action or "adjust").lower(),
        )


@dataclass
class Counters:
    """Job metrics of the input side.

    ``deserialization_errors`` counts events dropped because they could not be decoded at all
    (not JSON, not UTF-8, nested too deeply, not an object), ``conversion_errors`` those that
    decoded but could not be converted (a TIMESTAMP BY value that is not a time, a CREATE
    TABLE type). ``error_samples`` keeps the
    first few as ``{"partition", "sequence_number", "reason"}`` (the runtime's feed names
    the batch's partitions and sequence numbers in ``context``)."""

    events_in: int = 0
    late: int = 0
    early: int = 0
    out_of_order: int = 0
    dropped: int = 0
    conversion_errors: int = 0
    deserialization_errors: int = 0
    samples: list[str] = field(default_factory=list)
    error_samples: list[dict] = field(default_factory=list)
    #: (partition per body or one partition, sequence numbers per body, row -> body index) of the batch fed
    context: Any = field(default=None, repr=False, compare=False)

    def error(self, message: str, index: int | None = None, *, body: bool = False) -> None:
        """An event that cannot be decoded or converted: counted, dropped, sampled.
        ``index`` is the event's position in the batch (of bodies when ``body``, else of rows)."""
        self.dropped += 1
        if message.startswith("InputDeserializationError"):
            self.deserialization_errors += 1
        else:
            self.conversion_errors += 1
        if len(self.samples) < 10:
            self.samples.append(message)
        if len(self.error_samples) < 20:
            part, seq = None, None
            ctx = self.context
            if ctx is not None and index is not None:
                parts, seqs, rows = ctx
                i = index if body or rows is None else (int(rows[index]) if index < len(rows) else None)
                if i is not None:
                    part = parts if isinstance(parts, str) else (parts[i] if parts is not None and i < len(parts)
                                                                 else None)
                    seq = int(seqs[i]) if seqs is not None and i < len(seqs) else None
            self.error_samples.append({"partition": None if part is None else str(part), "sequence_number": seq,
                                       "reason": message})

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items() if k != "context"}


class EventClock:
    """The ordering state of one timestamped source (per substream key for OVER)."""

    def __init__(self, policy: OrderingPolicy, application_time: bool) -> None:
        self.policy = policy
        self.app = application_time
        self.newest: dict[Any, int] = {}
        self.clock = MIN_TS

    def accept(self, e: int, a: int, key: Any, counters: Counters) -> int | None:
        """The event's System.Timestamp, or None when the policy drops it."""
        if a > self.clock:
            self.clock = a
        if not self.app:
            return a
        p = self.policy
        drop = p.out_of_order_action == "drop"
        late = p.late_arrival_tolerance_us
        ooo = p.out_of_order_tolerance_us
        if e - a > EARLY_US:
            counters.early += 1
            counters.dropped += 1
            return None
        ts = e
        late_adjusted = False
        if a - e > 0 and a - e >= late:
            counters.late += 1
            if drop:
                counters.dropped += 1
                return None
            ts = a - late
            late_adjusted = True
        newest = self.newest.get(key)
        floor = self.clock - late
        if newest is not None:
            floor = max(floor, newest - ooo)
            if not late_adjusted and ts < newest and a - ts > ooo:
                floor = max(floor, min(a - ooo, newest))
        if ts < floor:
            counters.out_of_order += 1
            if drop:
                counters.dropped += 1
                return None
            ts = floor
        if newest is None or ts > newest:
            self.newest[key] = ts
        return ts

    def watermark(self) -> int:
        """No event accepted from now on gets a timestamp below this."""
        if not self.app:
            return self.clock
        late = self.policy.late_arrival_tolerance_us
        ooo = self.policy.out_of_order_tolerance_us
        w = self.clock - late if self.clock > MIN_TS else MIN_TS
        if self.newest:
            w = max(w, min(self.newest.values()) - ooo)
        return w

    def advance_time(self, now: int) -> None:
        if now > self.clock:
            self.clock = now

    def snapshot(self) -> Any:
        return {"newest": dict(self.newest), "clock": self.clock}

    def restore(self, state: Any) -> None:
        self.newest, self.clock = dict(state["newest"]), state["clock"]
