"""Plugin-facing API for window kinds (Bytewax-shaped).

A :class:`WindowKind` is registered through ``register_windows``. The planner calls
``kind.configure(args)`` with the GROUP BY arguments (durations already in
microseconds) and gets a frozen :class:`WindowConfig`; the runtime calls
``config.build(resume_state)`` for a :class:`WindowLogic` (one per partition when
the kind is ``partitioned``, one per group when ``per_group``) and restores it from
``logic.snapshot()`` after a restart.

Time is an ``int`` of microseconds since 1970-01-01 UTC. The runtime guarantees that
``assign`` sees timestamps in non-decreasing order and that after
``close_for(watermark)`` no event with ``ts < watermark`` arrives.

Windows are start-exclusive and end-inclusive, ``(end - size, end]``; the window's
``System.Timestamp()`` is its end.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:  # the plugin API does not need numpy at run time
    import numpy as np

__all__ = ["AlignedShape", "SessionShape", "SlidingShape", "SnapshotShape", "UNITS", "WindowArgs", "WindowConfig",
           "WindowKind", "WindowLogic", "WindowShape", "unit_micros"]

#: Time units and their abbreviations (microseconds each).
UNITS: dict[str, int] = {}
for _names, _us in (
    (("day", "dd", "d", "days"), 86_400_000_000),
    (("hour", "hh", "hours"), 3_600_000_000),
    (("minute", "mi", "n", "minutes"), 60_000_000),
    (("second", "ss", "s", "seconds"), 1_000_000),
    (("millisecond", "ms", "milliseconds"), 1_000),
    (("microsecond", "mcs", "microseconds"), 1),
):
    for _n in _names:
        UNITS[_n] = _us


def unit_micros(unit: str) -> int:
    """Microseconds in one ``unit`` (``second``, ``ss``, ``s``, ...); KeyError if unknown."""
    return UNITS[unit.lower()]


@dataclass(frozen=True)
class WindowArgs:
    """GROUP BY window arguments: ``positional`` durations in order, ``named`` wrapped ones
    (``duration``, ``hop``, ``offset``, ``timeout``, ``maxduration``), ``partition_by``
    true when the window has ``OVER (PARTITION BY ...)``, ``extra`` any non-duration
    arguments (numbers, strings) in order."""

    positional: tuple[int, ...] = ()
    named: dict[str, int] = field(default_factory=dict)
    partition_by: bool = False
    extra: tuple[Any, ...] = ()


@dataclass(frozen=True)
class AlignedShape:
    """Tumbling and hopping windows: ``(end - size, end]`` for every ``end = offset + k * hop``."""

    size: int
    hop: int
    offset: int = 0


@dataclass(frozen=True)
class SlidingShape:
    """``(T - size, T]`` at each instant ``T`` the content changes (an event enters or leaves)."""

    size: int


@dataclass(frozen=True)
class SessionShape:
    """Sessions per key: a gap of ``timeout`` ends one; none outlasts ``max_duration``
    (aligned on multiples of it, as Stream Analytics does)."""

    timeout: int
    max_duration: int


@dataclass(frozen=True)
class SnapshotShape:
    """One window per distinct timestamp (``GROUP BY System.Timestamp()``)."""


#: What :meth:`WindowConfig.columnar` returns: a window the engine computes on columns.
WindowShape: TypeAlias = AlignedShape | SlidingShape | SessionShape | SnapshotShape


class WindowLogic(ABC):
    """The per-partition state of one window definition."""

    @abstractmethod
    def assign(self, ts: int) -> list[Hashable]:
        """Window ids the event at ``ts`` belongs to (empty for ``buffered`` kinds)."""

    def assign_batch(self, ts: np.ndarray) -> tuple[list[int], list[Hashable]]:
        """:meth:`assign` for a batch of non-decreasing timestamps (int64 microseconds):
        ``(event index, window id)`` pairs as two lists, in order. Override it when windows
        can be assigned without a Python call per event."""
        idx: list[int] = []
        ids: list[Hashable] = []
        for i, t in enumerate(ts.tolist()):
            for w in self.assign(t):
                idx.append(i)
                ids.append(w)
        return idx, ids

    @abstractmethod
    def close_for(self, watermark: int) -> list[tuple[Hashable, int]]:
        """Windows that are final because no event with ``ts < watermark`` will come:
        ``(window id, System.Timestamp of its output)``, oldest first."""

    def bounds(self, window_id: Hashable) -> tuple[int, int]:
        """``(start exclusive, end inclusive)`` of a window (``buffered`` kinds)."""
        raise NotImplementedError

    def idle(self) -> bool:
        """True when no window is open: the runtime may drop this logic (and build a new one
        for the partition's next event), so state does not grow with keys seen long ago."""
        return False

    def retention(self) -> int:
        """How long (us) a ``buffered`` kind needs events kept after their timestamp."""
        return 0

    @abstractmethod
    def snapshot(self) -> Any:
        """Picklable state to rebuild this logic with ``config.build(state)``."""


class WindowConfig(ABC):
    """A frozen, hashable window definition."""

    @abstractmethod
    def build(self, resume_state: Any = None) -> WindowLogic:
        ...

    def columnar(self) -> WindowShape | None:
        """This window as one of the shapes the engine computes on columns (Polars, a batch
        at a time), or None: then the engine calls :meth:`build`'s logic per event. A
        shape must mean exactly what the logic computes."""
        return None


class WindowKind(ABC):
    """A window usable in GROUP BY: ``name`` is its SQL name, ``aliases`` short names."""

    name: str = ""
    aliases: tuple[str, ...] = ()
    #: accepts OVER (PARTITION BY ...): one logic per partition key
    partitioned: bool = False
    #: one logic per GROUP BY key (windows that depend on the group's own events)
    per_group: bool = False
    #: membership from bounds() over retained events rather than assign()
    buffered: bool = False
    doc: str = ""

    @abstractmethod
    def configure(self, args: WindowArgs) -> WindowConfig:
        """Validate the arguments; raise ValueError with a message for a person."""
