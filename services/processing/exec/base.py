"""What flows between physical operators: :class:`Env` (one event in a statement, with
the records of every source alias in scope) and ``(ts, record)`` pairs between statements.

Time is ``int`` microseconds since 1970-01-01 UTC. An operator's ``advance(watermark)``
means: no item with ``ts < watermark`` will come any more.
"""

from __future__ import annotations

from typing import Any

from headwater.errors import HeadwaterError, Reason

__all__ = ["Env", "KeyedColumns", "QueryRuntimeError", "get_ci", "MAX_TS", "MIN_TS"]

MAX_TS = 2**62
MIN_TS = -(2**62)
_MISSING = object()


class QueryRuntimeError(HeadwaterError):
    """The query failed while running (a CAST that does not convert stops the job)."""

    def __init__(self, message: str) -> None:
        super().__init__(Reason.JOB_FAILED, message)


class Env:
    """One event as a statement sees it.

    ``recs`` maps each alias in scope (lower case) to its record; ``times`` the alias's
    own timestamp (for DATEDIFF in a JOIN); ``ts`` is System.Timestamp(); ``aggs`` the
    aggregate results of a group, ``an`` the analytic-function values, ``wid`` the
    System.Window().Id.
    """

    __slots__ = ("recs", "ts", "times", "aggs", "an", "wid")

    def __init__(self, recs: dict[str, Any], ts: int, times: dict[str, int] | None = None,
                 aggs: list | None = None, an: list | None = None, wid: Any = None) -> None:
        self.recs = recs
        self.ts = ts
        self.times = times
        self.aggs = aggs
        self.an = an
        self.wid = wid

    def with_(self, **kw: Any) -> Env:
        e = Env(self.recs, self.ts, self.times, self.aggs, self.an, self.wid)
        for k, v in kw.items():
            setattr(e, k, v)
        return e

    def __getstate__(self):
        return (self.recs, self.ts, self.times, self.aggs, self.an, self.wid)

    def __setstate__(self, s):
        self.recs, self.ts, self.times, self.aggs, self.an, self.wid = s


class KeyedColumns:
    """A large keyed collection in an operator's snapshot, given as columns of equal length
    (keys, accumulators, representative events...). The state layer writes each column as
    one typed Arrow array where its values allow it (one scalar type, lists or tuples of a
    fixed or varying length, events) and as one msgpack value otherwise, instead of one
    value at a time; restore gives the same columns back, with the same Python types."""

    __slots__ = ("columns",)

    def __init__(self, columns: list[list]) -> None:
        self.columns = columns

    def __repr__(self) -> str:
        return f"KeyedColumns({len(self.columns)} columns of {len(self.columns[0]) if self.columns else 0})"


def get_ci(value: Any, key: str) -> Any:
    """Field ``key`` of a record, case-insensitively; an array element for a numeric key."""
    if type(value) is dict or isinstance(value, dict):  # an EventRecord too (events with metadata)
        v = value.get(key, _MISSING)
        if v is not _MISSING:
            return v
        low = key.lower()
        for k, v in value.items():
            if k.lower() == low:
                return v
        return None
    if type(value) is list and key.isdigit():
        i = int(key)
        return value[i] if i < len(value) else None
    return None
