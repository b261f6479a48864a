"""PERCENTILE_CONT and PERCENTILE_DISC (``register_functions``).

Stream Analytics' form is ``PERCENTILE_CONT(p) OVER (ORDER BY expr [ASC|DESC])`` with a
window in GROUP BY; the same call with ``OVER ([PARTITION BY ...] ORDER BY ... LIMIT
DURATION(...))`` works as an analytic function. ``p`` is a constant in [0, 1]; one ORDER BY
expression of type bigint or float; NULLs are ignored; no values gives NULL.

- PERCENTILE_CONT interpolates: with the N values sorted, position ``p * (N - 1)`` between
  the two nearest values (the reference's example: 0.95 over 0.98, 0.93, 0.78, 0.99, 0.89
  is 0.988). Always float.
- PERCENTILE_DISC is the first value, in the ORDER BY order, whose cumulative distribution
  (position / N) reaches ``p``; its type is the expression's.

T-SQL's ``WITHIN GROUP (ORDER BY ...)`` spelling is not Stream Analytics syntax and is not
accepted (the parser refuses it with a position).
"""

from __future__ import annotations

import math
from typing import Any

from headwater.functions import CastError, ListAggregate, type_name
from headwater.hookspecs import hookimpl

__all__ = ["PercentileCont", "PercentileDisc"]


class _Percentile(ListAggregate):
    no_args, ordered, constant_args = True, True, 1

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def configure(self, *constants: Any) -> _Percentile:
        p = constants[0] if constants else None
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError("the percentile must be a numeric constant between 0 and 1")
        return type(self)(float(p))

    def _sorted(self, acc: list) -> list:
        if not acc:
            return []
        if len(acc[0][0]) != 1:
            raise ValueError(f"{self.name} takes exactly one ORDER BY expression")
        desc = acc[0][0][0][1]
        vals = []
        for key, _ in acc:
            v = key[0][0]
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise CastError(f"{self.name}: the ORDER BY expression must be bigint or float, got '{type_name(v)}'")
            vals.append(v)
        vals.sort(reverse=desc)
        return vals


class PercentileCont(_Percentile):
    """PERCENTILE_CONT(p) OVER (ORDER BY x): the interpolated percentile (float)."""

    name = "PERCENTILE_CONT"

    def result(self, acc):
        vals = self._sorted(acc)
        if not vals:
            return None
        rn = self.p * (len(vals) - 1)
        lo, hi = math.floor(rn), math.ceil(rn)
        if lo == hi:
            return float(vals[lo])
        return float(vals[lo] + (rn - lo) * (vals[hi] - vals[lo]))


class PercentileDisc(_Percentile):
    """PERCENTILE_DISC(p) OVER (ORDER BY x): the first value whose cumulative distribution reaches p."""

    name = "PERCENTILE_DISC"

    def result(self, acc):
        vals = self._sorted(acc)
        if not vals:
            return None
        return vals[max(math.ceil(self.p * len(vals)) - 1, 0)]


@hookimpl
def register_functions(register) -> None:
    register(PercentileCont())
    register(PercentileDisc())
