"""Builtin window kinds, registered through ``register_windows`` like any plugin's.

Timelines in the docstrings: ``|`` marks window ends (inclusive), ``x`` events.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, SupportsInt, cast

from headwater.hookspecs import hookimpl
from headwater.windows import (
    AlignedShape,
    SessionShape,
    SlidingShape,
    SnapshotShape,
    WindowArgs,
    WindowConfig,
    WindowKind,
    WindowLogic,
    WindowShape,
)

__all__ = ["HoppingWindow", "SessionWindow", "SlidingWindow", "SnapshotWindow", "TumblingWindow"]

MAX_SIZE = 7 * 86_400_000_000


def _check_size(what: str, us: int) -> int:
    if us <= 0:
        raise ValueError(f"{what} must be positive")
    if us > MAX_SIZE:
        raise ValueError(f"{what} must be at most 7 days")
    return us


def _first_end(ts: int, hop: int, offset: int) -> int:
    """The first window end >= ts on the grid ``k*hop + offset`` (end inclusive)."""
    return ((ts - offset - 1) // hop + 1) * hop + offset


class _AlignedLogic(WindowLogic):
    """Windows on a fixed grid: ``x`` at 12 with size 10, hop 5 -> ends 15 and 20."""

    def __init__(self, size: int, hop: int, offset: int, state: Any = None) -> None:
        self.size, self.hop, self.offset = size, hop, offset
        self.open: set[int] = set(state or ())

    def assign(self, ts: int) -> list[Hashable]:
        end = _first_end(ts, self.hop, self.offset)
        ends: list[Hashable] = []
        while end - self.size < ts:
            ends.append(end)
            self.open.add(end)
            end += self.hop
        return ends

    def close_for(self, watermark: int) -> list[tuple[Hashable, int]]:
        done = sorted(e for e in self.open if e < watermark)
        for e in done:
            self.open.discard(e)
        return [(e, e) for e in done]

    def bounds(self, window_id: Hashable) -> tuple[int, int]:
        end = int(cast(SupportsInt, window_id))  # this window's ids are its end times
        return (end - self.size, end)

    def idle(self) -> bool:
        return not self.open

    def snapshot(self) -> Any:
        return sorted(self.open)


@dataclass(frozen=True)
class AlignedConfig(WindowConfig):
    size: int
    hop: int
    offset: int = 0

    def build(self, resume_state: Any = None) -> WindowLogic:
        return _AlignedLogic(self.size, self.hop, self.offset, resume_state)

    def columnar(self) -> WindowShape:
        return AlignedShape(self.size, self.hop, self.offset)


def _no_extra(args: WindowArgs) -> None:
    if args.extra:
        raise ValueError("a size needs a time unit first, e.g. (second, 10)")


def _given(args: WindowArgs, key: str, index: int) -> int | None:
    """A duration given by name (``key``) or position (``index``), None when not given."""
    if key in args.named:
        return args.named[key]
    if len(args.positional) > index:
        return args.positional[index]
    return None


def _one(args: WindowArgs, key: str, index: int, what: str) -> int:
    """A duration that must be given."""
    value = _given(args, key, index)
    if value is None:
        raise ValueError(f"{what} is missing")
    return value


class TumblingWindow(WindowKind):
    """``TumblingWindow(unit, size[, offset])``: ``(0,10] (10,20] ...``; each event in one window."""

    name = "TumblingWindow"
    aliases = ("Tumbling",)

    def configure(self, args: WindowArgs) -> WindowConfig:
        _no_extra(args)
        if len(args.positional) > 2 or args.partition_by:
            raise ValueError("TumblingWindow takes (unit, size[, offset])")
        size = _check_size("the window size", _one(args, "duration", 0, "the window size"))
        offset = _given(args, "offset", 1) or 0
        return AlignedConfig(size, size, offset)


class HoppingWindow(WindowKind):
    """``HoppingWindow(unit, size, hop[, offset])``: a window of ``size`` ending every ``hop``."""

    name = "HoppingWindow"
    aliases = ("Hopping",)

    def configure(self, args: WindowArgs) -> WindowConfig:
        _no_extra(args)
        if len(args.positional) > 3 or args.partition_by:
            raise ValueError("HoppingWindow takes (unit, size, hop[, offset])")
        size = _check_size("the window size", _one(args, "duration", 0, "the window size"))
        pos_hop = 0 if "duration" in args.named else 1
        hop = args.named.get("hop")
        if hop is None:
            hop = args.positional[pos_hop] if len(args.positional) > pos_hop else None
        if hop is None:
            raise ValueError("HoppingWindow needs a hop size")
        _check_size("the hop size", hop)
        offset = args.named.get("offset")
        if offset is None:
            offset = args.positional[pos_hop + 1] if len(args.positional) > pos_hop + 1 else 0
        return AlignedConfig(size, hop, offset)


class _SlidingLogic(WindowLogic):
    """Output when an event enters (at ts) or exits (at ts + size)::

        x@34 x@38 x@42, size 5  ->  outputs at 34, 38, 39, 42, 43 (not 47: empty)
    """

    def __init__(self, size: int, state: Any = None) -> None:
        self.size = size
        self.instants: list[int] = sorted(state or ())
        self.last_ts: int | None = None

    def assign(self, ts: int) -> list[Hashable]:
        for t in (ts, ts + self.size):
            i = bisect.bisect_left(self.instants, t)
            if i == len(self.instants) or self.instants[i] != t:
                self.instants.insert(i, t)
        return []

    def close_for(self, watermark: int) -> list[tuple[Hashable, int]]:
        i = bisect.bisect_left(self.instants, watermark)
        done, self.instants = self.instants[:i], self.instants[i:]
        return [(t, t) for t in done]

    def bounds(self, window_id: Hashable) -> tuple[int, int]:
        end = int(cast(SupportsInt, window_id))  # this window's ids are its end times
        return (end - self.size, end)

    def retention(self) -> int:
        return self.size

    def snapshot(self) -> Any:
        return list(self.instants)


@dataclass(frozen=True)
class SlidingConfig(WindowConfig):
    size: int

    def build(self, resume_state: Any = None) -> WindowLogic:
        return _SlidingLogic(self.size, resume_state)

    def columnar(self) -> WindowShape:
        return SlidingShape(self.size)


class SlidingWindow(WindowKind):
    """``SlidingWindow(unit, size)``: the window ``(T - size, T]`` at each instant the content changes."""

    name = "SlidingWindow"
    aliases = ("Sliding",)
    per_group = True
    buffered = True

    def configure(self, args: WindowArgs) -> WindowConfig:
        _no_extra(args)
        if len(args.positional) > 1 or args.partition_by:
            raise ValueError("SlidingWindow takes (unit, size)")
        return SlidingConfig(_check_size("the window size", _one(args, "duration", 0, "the window size")))


class _SessionLogic(WindowLogic):
    """A session starts at its first event and ends ``timeout`` after its last event, or
    at the first max-duration checkpoint (multiples of ``max_duration``) where it is
    longer than ``max_duration``::

        timeout 5, max 10: x1 x4 x7 x11 x14 x17 x19 | 20 x22 ... | 27
    """

    def __init__(self, timeout: int, max_duration: int, state: Any = None) -> None:
        self.timeout, self.max_duration = timeout, max_duration
        self.current: list[int] | None = None  # [start, last]
        self.closed: list[tuple[int, int]] = []  # (session id, end)
        if state:
            self.current = list(state["current"]) if state.get("current") else None
            self.closed = [tuple(c) for c in state.get("closed", ())]

    def _end(self, start: int, last: int) -> int:
        m = self.max_duration
        checkpoint = ((start + m) // m + 1) * m  # first multiple of m where length > m
        return min(last + self.timeout, checkpoint)

    def assign(self, ts: int) -> list[Hashable]:
        cur = self.current
        if cur is not None and ts > self._end(cur[0], cur[1]):
            self.closed.append((cur[0], self._end(cur[0], cur[1])))
            cur = None
        if cur is None:
            cur = self.current = [ts, ts]
        else:
            cur[1] = max(cur[1], ts)
        return [cur[0]]

    def close_for(self, watermark: int) -> list[tuple[Hashable, int]]:
        out: list[tuple[Hashable, int]] = [c for c in self.closed if c[1] < watermark]
        self.closed = [c for c in self.closed if c[1] >= watermark]
        cur = self.current
        if cur is not None:
            end = self._end(cur[0], cur[1])
            if end < watermark:
                out.append((cur[0], end))
                self.current = None
        return out

    def idle(self) -> bool:
        return self.current is None and not self.closed

    def snapshot(self) -> Any:
        return {"current": self.current, "closed": list(self.closed)}


@dataclass(frozen=True)
class SessionConfig(WindowConfig):
    timeout: int
    max_duration: int

    def build(self, resume_state: Any = None) -> WindowLogic:
        return _SessionLogic(self.timeout, self.max_duration, resume_state)

    def columnar(self) -> WindowShape:
        return SessionShape(self.timeout, self.max_duration)


class SessionWindow(WindowKind):
    """``SessionWindow(unit, timeout, maxDuration) [OVER (PARTITION BY key)]``."""

    name = "SessionWindow"
    aliases = ("Session",)
    partitioned = True

    def configure(self, args: WindowArgs) -> WindowConfig:
        _no_extra(args)
        if len(args.positional) > 2:
            raise ValueError("SessionWindow takes (unit, timeout, maxDuration)")
        timeout = _check_size("the session timeout", _one(args, "timeout", 0, "the session timeout"))
        pos = 0 if "timeout" in args.named else 1
        maxd = args.named.get("maxduration")
        if maxd is None:
            if len(args.positional) <= pos:
                raise ValueError("SessionWindow needs a maximum duration")
            maxd = args.positional[pos]
        _check_size("the maximum duration", maxd)
        if maxd < timeout:
            raise ValueError("the maximum duration must be at least the timeout")
        return SessionConfig(timeout, maxd)


class _SnapshotLogic(WindowLogic):
    """Events with identical timestamps: ``x@5 x@5 x@7`` -> windows 5 (two events) and 7."""

    def __init__(self, state: Any = None) -> None:
        self.open: set[int] = set(state or ())

    def assign(self, ts: int) -> list[Hashable]:
        self.open.add(ts)
        return [ts]

    def close_for(self, watermark: int) -> list[tuple[Hashable, int]]:
        done = sorted(t for t in self.open if t < watermark)
        self.open.difference_update(done)
        return [(t, t) for t in done]

    def snapshot(self) -> Any:
        return sorted(self.open)


@dataclass(frozen=True)
class SnapshotConfig(WindowConfig):
    def build(self, resume_state: Any = None) -> WindowLogic:
        return _SnapshotLogic(resume_state)

    def columnar(self) -> WindowShape:
        return SnapshotShape()


class SnapshotWindow(WindowKind):
    """``GROUP BY System.Timestamp()``: groups events with the same timestamp."""

    name = "SnapshotWindow"
    aliases = ("Snapshot",)

    def configure(self, args: WindowArgs) -> WindowConfig:
        if args.positional or args.named or args.extra:
            raise ValueError("a snapshot window takes no arguments")
        return SnapshotConfig()


@hookimpl
def register_windows(register) -> None:
    for kind in (TumblingWindow(), HoppingWindow(), SlidingWindow(), SessionWindow(), SnapshotWindow()):
        register(kind)
