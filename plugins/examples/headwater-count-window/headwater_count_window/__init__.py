"""Example Headwater plugin: ``CountWindow(n)`` and ``Haversine(lat1, lon1, lat2, lon2)``."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from headwater import hookimpl
from headwater.functions import ScalarFunction
from headwater.windows import WindowArgs, WindowConfig, WindowKind, WindowLogic

__all__ = ["CountWindow", "haversine"]


class _CountLogic(WindowLogic):
    """Window k holds events k*n+1 .. (k+1)*n::

        n=3:  x x x | x x x | x x   (the last two are never emitted)
    """

    def __init__(self, n: int, state: Any = None) -> None:
        self.n = n
        self.count, self.full = (state["count"], [tuple(f) for f in state["full"]]) if state else (0, [])

    def assign(self, ts: int) -> list[Hashable]:
        wid = self.count // self.n
        self.count += 1
        if self.count % self.n == 0:
            self.full.append((wid, ts))
        return [wid]

    def close_for(self, watermark: int) -> list[tuple[Hashable, int]]:
        done = [f for f in self.full if f[1] < watermark]
        self.full = [f for f in self.full if f[1] >= watermark]
        return done

    def snapshot(self) -> Any:
        return {"count": self.count, "full": list(self.full)}


@dataclass(frozen=True)
class CountConfig(WindowConfig):
    n: int

    def build(self, resume_state: Any = None) -> WindowLogic:
        return _CountLogic(self.n, resume_state)


class CountWindow(WindowKind):
    """``CountWindow(n)``: every ``n`` events."""

    name = "CountWindow"
    aliases = ("Count_Window",)

    def configure(self, args: WindowArgs) -> WindowConfig:
        if args.positional or args.named or len(args.extra) != 1:
            raise ValueError("CountWindow takes one number: CountWindow(n)")
        n = args.extra[0]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError("CountWindow(n) needs a positive integer n")
        return CountConfig(n)


def haversine(lat1, lon1, lat2, lon2):
    """Great-circle distance in km between two points given in degrees."""
    p1, p2 = math.radians(float(lat1)), math.radians(float(lat2))
    dp, dl = p2 - p1, math.radians(float(lon2) - float(lon1))
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(math.sqrt(a))


@hookimpl
def register_windows(register) -> None:
    register(CountWindow())


@hookimpl
def register_functions(register) -> None:
    register(ScalarFunction("Haversine", haversine, 4, 4, null_propagates=True))
