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

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headwater.services.processing.exec.base import MIN_TS

__all__ = ["OrderingPolicy", "Counters", "EventClock", "VerdictLog", "VERDICTS_RETAINED", "verdict_rows",
           "aligned_windows"]

#: How many recent verdicts a job keeps per input (ListEventVerdicts' bounded range).
VERDICTS_RETAINED = 10_000

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

    def error(self, message: str, index: int | None = None, *, body: bool = False, record: Any = None,
              where: tuple | None = None) -> None:
        """An event that cannot be decoded or converted: counted, dropped, sampled (and,
        with ``dead`` a list, kept for the job's dead-letter hub). ``index`` is the event's
        position in the batch (of bodies when ``body``, else of rows); ``record`` the decoded
        event when its position is not known, ``where`` its (partition, sequence number)
        when the caller knows them."""
        self.dropped += 1
        if message.startswith("InputDeserializationError"):
            self.deserialization_errors += 1
        else:
            self.conversion_errors += 1
        if len(self.samples) < 10:
            self.samples.append(message)
        if len(self.error_samples) < 20 or self.dead is not None:
            part, seq = None, None
            ctx = self.context
            if where is not None:
                part, seq = where
            elif ctx is not None and index is not None:
                parts, seqs, rows = ctx
                i = index if body or rows is None else (int(rows[index]) if index < len(rows) else None)
                if i is not None:
                    part = parts if isinstance(parts, str) else (parts[i] if parts is not None and i < len(parts)
                                                                 else None)
                    seq = int(seqs[i]) if seqs is not None and i < len(seqs) else None
            sample = {"partition": None if part is None else str(part), "sequence_number": seq, "reason": message}
            if len(self.error_samples) < 20:
                self.error_samples.append(sample)
            if self.dead is not None:
                self.dead.append({**sample, "record": record})

    #: Set by a job's runtime with a dead-letter hub: every error as an error sample, plus
    #: ``record`` (None: not recorded).
    dead: Any = field(default=None, repr=False, compare=False)
    #: Set by a job's runtime: where each event's verdict goes (None: not recorded).
    verdicts: Any = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items()
                if k not in ("context", "verdicts", "dead")}


class VerdictLog:
    """What the ordering policy did with each recent event, per input, the newest
    ``retained`` kept. Batches are kept as arrays (the hot path only slices and compares);
    :meth:`export` makes the rows ``[partition, sequence number, enqueued us, event us,
    adjusted us or None, "on_time" | "adjusted" | "dropped", reason, windows]``.
    ``windows`` (per input, a callable from an adjusted time in us to window names) names
    the windows an accepted event counts in."""

    _VERDICT = ("on_time", "adjusted", "dropped")
    _REASON = ("", "early", "late", "out_of_order")

    def __init__(self, retained: int = VERDICTS_RETAINED) -> None:
        self.retained = retained
        #: input -> deque of chunks (partitions, seqs, enqueued, event, adjusted, verdict, reason)
        self.by_input: dict[str, deque] = {}
        self._sizes: dict[str, int] = {}
        self.windows: dict[str, Any] = {}
        self.owners: dict[str, int] = {}

    def add_batch(self, input_name: str, partitions: Any, seqs: Any, enqueued: Any, event: Any, adjusted: Any,
                  kept: Any, late: Any, early: Any, low: Any, source: Any = None) -> None:
        """One batch, as arrays (``partitions`` one string or one per event; ``seqs`` None
        when unknown, then -1). Of several sources reading one input (two FROM clauses),
        the first to report is the one recorded."""
        n = len(event)
        if n == 0 or self.owners.setdefault(input_name, id(source)) != id(source):
            return
        cut = slice(max(0, n - self.retained), n)
        ev = np.asarray(event, dtype=np.int64)[cut]
        adj = np.asarray(adjusted, dtype=np.int64)[cut]
        k = np.asarray(kept, dtype=bool)[cut]
        reason = np.select([np.asarray(early, dtype=bool)[cut], np.asarray(late, dtype=bool)[cut],
                            np.asarray(low, dtype=bool)[cut] | (k & (adj != ev))], [1, 2, 3], 0).astype(np.int8)
        verdict = np.where(~k, 2, np.where(reason > 0, 1, 0)).astype(np.int8)
        parts = partitions or "" if partitions is None or isinstance(partitions, str) else \
            np.asarray([str(p) for p in partitions[cut]], dtype=object)
        seq = np.full(len(ev), -1, dtype=np.int64) if seqs is None else np.asarray(seqs, dtype=np.int64)[cut]
        log = self.by_input.setdefault(input_name, deque())
        log.append((parts, seq, np.asarray(enqueued, dtype=np.int64)[cut], ev, adj, verdict, reason))
        size = self._sizes.get(input_name, 0) + len(ev)
        while size - len(log[0][3]) >= self.retained:  # whole chunks older than the range
            size -= len(log.popleft()[3])
        self._sizes[input_name] = size

    def export(self) -> dict:
        """The range as columns (cheap to write at every checkpoint): per input
        ``partition``, ``seq``, ``enqueued``, ``event``, ``adjusted`` (us), ``verdict`` and
        ``reason`` (indexes into VERDICTS and REASONS); ``windows``: per input the aligned
        window ``[size, hop, offset]`` (us) of the statement reading it, if any."""
        inputs = {}
        for name, log in self.by_input.items():
            if not log:
                continue
            cols = list(zip(*log))
            parts = np.concatenate([np.full(len(ev), p, dtype=object) if isinstance(p, str) else p
                                    for p, ev in zip(cols[0], cols[3])])
            keep = slice(-self.retained, None)
            inputs[name] = {key: (parts if i == 0 else np.concatenate(cols[i]))[keep].tolist()
                            for i, key in enumerate(("partition", "seq", "enqueued", "event", "adjusted",
                                                     "verdict", "reason"))}
        return {"retained": self.retained, "inputs": inputs,
                "windows": {k: list(v) for k, v in self.windows.items() if k in inputs}}

    def load(self, body: dict) -> None:
        """Continue from :meth:`export` (after a restart)."""
        for name, c in body.get("inputs", {}).items():
            if not isinstance(c, dict) or not c.get("event"):
                continue
            self.by_input[name] = deque([(
                np.asarray(c["partition"], dtype=object), np.asarray(c["seq"], dtype=np.int64),
                np.asarray(c["enqueued"], dtype=np.int64), np.asarray(c["event"], dtype=np.int64),
                np.asarray(c["adjusted"], dtype=np.int64), np.asarray(c["verdict"], dtype=np.int8),
                np.asarray(c["reason"], dtype=np.int8))])
            self._sizes[name] = len(c["event"])


def verdict_rows(body: dict, input_name: str) -> list[list]:
    """One input's verdicts of an exported range as rows: ``[partition, sequence number,
    enqueued us, event us, counted-at us or None, verdict, reason, windows]``; ``windows``
    names each window ``(start, end]`` an accepted event counts in."""
    c = body.get("inputs", {}).get(input_name)
    if not isinstance(c, dict):
        return []
    spec = body.get("windows", {}).get(input_name)
    rows = []
    for p, q, a, e, t, v, r in zip(c["partition"], c["seq"], c["enqueued"], c["event"], c["adjusted"],
                                   c["verdict"], c["reason"]):
        t = None if v == 2 else t
        rows.append([p, q, a, e, t, VerdictLog._VERDICT[v], VerdictLog._REASON[r],
                     [] if t is None or spec is None else aligned_windows(t, *spec)])
    return rows


def aligned_windows(ts: int, size: int, hop: int, offset: int = 0) -> list[str]:
    """The windows ``(end - size, end]`` (every ``end = offset + k * hop``) holding ``ts``, as ISO 8601."""
    from datetime import UTC, datetime

    def iso(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, UTC).isoformat().replace("+00:00", "Z")

    end = offset + -(-(ts - offset) // hop) * hop
    found = []
    while end - size < ts:
        found.append(f"({iso(end - size)}, {iso(end)}]")
        end += hop
    return found


class EventClock:
    """The ordering state of one timestamped source (per substream key for OVER)."""

    def __init__(self, policy: OrderingPolicy, application_time: bool) -> None:
        self.policy = policy
        self.app = application_time
        self.newest: dict[Any, int] = {}
        self.clock = MIN_TS
        #: Why the last accept() moved or dropped its event: "", "early", "late", "out_of_order".
        self.why = ""

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
        self.why = ""
        if e - a > EARLY_US:
            counters.early += 1
            counters.dropped += 1
            self.why = "early"
            return None
        ts = e
        late_adjusted = False
        if a - e > 0 and a - e >= late:
            counters.late += 1
            self.why = "late"
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
            self.why = self.why or "out_of_order"
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
