"""Throughput units: per-hub quotas on ingress and egress, with auto-inflate.

One unit allows 1 MB/s or 1000 events/s in and 2 MB/s or 4096 events/s out
(Event Hubs Standard). Each hub with units > 0 has token buckets holding one
second of allowance; a request over quota is refused with QUOTA_EXCEEDED
(transient, with the wait in RetryInfo), and with auto-inflate on the hub's
units go up by one (to the maximum) instead, as Event Hubs' auto-inflate does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from headwater.errors import HeadwaterError, Reason

__all__ = ["IN_BYTES", "IN_EVENTS", "OUT_BYTES", "OUT_EVENTS", "HubQuota"]

IN_BYTES, IN_EVENTS = 1_000_000, 1000
OUT_BYTES, OUT_EVENTS = 2_000_000, 4096


@dataclass
class _Bucket:
    rate: float
    tokens: float
    stamp: float = field(default_factory=time.time)  # wall clock: the NATS backend shares buckets

    def refill(self, rate: float) -> None:
        now = time.time()
        self.rate = rate
        self.tokens = min(rate, self.tokens + (now - self.stamp) * rate)
        self.stamp = now


class HubQuota:
    """Token buckets of one hub."""

    def __init__(self, hub: str, units: int, auto_inflate: bool = False, maximum_units: int = 0) -> None:
        self.hub = hub
        self.units = 0
        self.create_time = 0.0  # the hub settings these buckets follow (see the servicer's _attach)
        self.revision = 0
        self.meta_units = units  # the units the hub's settings name (auto-inflate may be above)
        self.auto_inflate = auto_inflate
        self.maximum_units = maximum_units
        self._b = {k: _Bucket(0.0, 0.0) for k in ("in_bytes", "in_events", "out_bytes", "out_events")}
        self.set_units(units)

    def set_units(self, units: int, auto_inflate: bool | None = None, maximum_units: int | None = None) -> None:
        old = self.units
        self.units = units
        if auto_inflate is not None:
            self.auto_inflate = auto_inflate
        if maximum_units is not None:
            self.maximum_units = maximum_units
        for name, per in (("in_bytes", IN_BYTES), ("in_events", IN_EVENTS), ("out_bytes", OUT_BYTES),
                          ("out_events", OUT_EVENTS)):
            b = self._b[name]
            b.refill(per * units)
            # New units add their allowance; removed ones take theirs away.
            b.tokens = min(per * units, b.tokens + per * (units - old))

    def _take(self, direction: str, events: int, nbytes: int, on_inflate) -> None:
        if self.units <= 0:
            return
        per_b, per_e = (IN_BYTES, IN_EVENTS) if direction == "in" else (OUT_BYTES, OUT_EVENTS)
        while True:
            bb, be = self._b[f"{direction}_bytes"], self._b[f"{direction}_events"]
            bb.refill(per_b * self.units)
            be.refill(per_e * self.units)
            # A request bigger than a whole second of allowance passes when the
            # bucket is full, so one big batch is never refused forever.
            need_b, need_e = min(nbytes, bb.rate), min(events, be.rate)
            if bb.tokens >= need_b and be.tokens >= need_e:
                bb.tokens -= nbytes
                be.tokens -= events
                return
            if self.auto_inflate and self.units < self.maximum_units:
                self.set_units(self.units + 1)
                if on_inflate is not None:
                    on_inflate(self.units)
                continue
            wait = max((need_b - bb.tokens) / bb.rate, (need_e - be.tokens) / be.rate, 0.01)
            raise HeadwaterError(
                Reason.QUOTA_EXCEEDED,
                f"hub {self.hub!r} is over its {self.units} throughput unit(s) ({direction}gress); "
                f"retry in {wait:.2f}s or raise the units",
                metadata={"resource": f"hubs/{self.hub}", "limit": f"{self.units} TU"}, retry_after=wait)

    def state(self) -> dict:
        """The buckets as plain data (shared between instances on the NATS backend)."""
        return {"units": self.units, "buckets": {k: [b.tokens, b.stamp] for k, b in self._b.items()}}

    def load(self, state: dict) -> None:
        """Take over buckets from :meth:`state` (another instance's takes included)."""
        for k, (tokens, stamp) in state.get("buckets", {}).items():
            if k in self._b:
                self._b[k].tokens, self._b[k].stamp = tokens, stamp

    def take_in(self, events: int, nbytes: int, on_inflate=None) -> None:
        self._take("in", events, nbytes, on_inflate)

    def take_out(self, events: int, nbytes: int, on_inflate=None) -> None:
        self._take("out", events, nbytes, on_inflate)
