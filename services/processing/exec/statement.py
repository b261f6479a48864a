"""One SELECT as a pipeline: joins, then stages (APPLY, analytic, WHERE, aggregate or
project), from items of its input streams to ``(ts, record)`` rows of its target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.functions import CastError
from headwater.services.processing.exec.base import Env, QueryRuntimeError
from headwater.services.processing.exec.join import StreamJoin
from headwater.services.processing.exec.project import Stage

__all__ = ["StatementOp"]

_VALUE_ERRORS = (CastError, ValueError, TypeError, ArithmeticError, AttributeError, KeyError, IndexError)


class StatementOp:
    """``inputs[0]`` feeds the FROM source; ``inputs[i]`` (i >= 1) the i-th stream JOIN."""

    def __init__(self, target: str, main_alias: str, joins: list[Any], stages: list[Stage],
                 final: Callable[[Env], dict] | None) -> None:
        self.target = target
        self.main_alias = main_alias.lower()
        self.joins = joins
        self.stages = stages
        self.final = final

    def run(self, inputs: list[list[tuple[int, dict]]], watermark: int) -> list[tuple[int, dict]]:
        """One step of the time loop; an expression failing on a value stops the query."""
        try:
            return self._run(inputs, watermark)
        except QueryRuntimeError:
            raise
        except _VALUE_ERRORS as exc:
            raise QueryRuntimeError(f"{type(exc).__name__}: {exc}") from None

    def _run(self, inputs: list[list[tuple[int, dict]]], watermark: int) -> list[tuple[int, dict]]:
        alias = self.main_alias
        if self.joins:
            envs = [Env({alias: rec}, ts, {alias: ts}) for ts, rec in inputs[0]]
        else:
            envs = [Env({alias: rec}, ts) for ts, rec in inputs[0]]
        k = 1
        for join in self.joins:
            if isinstance(join, StreamJoin):
                envs = join.run(envs, inputs[k], watermark)
                k += 1
            else:
                envs = join.run(envs)
        for stage in self.stages:
            envs = stage.process(envs)
            more = stage.advance(watermark)
            if more:
                envs = envs + more if envs else more
        if self.final is not None:
            final = self.final
            return [(e.ts, final(e)) for e in envs]
        return [(e.ts, e.recs[""]) for e in envs]

    def snapshot(self, columns: bool = True) -> Any:
        return {"joins": [j.snapshot() for j in self.joins],
                "stages": [s.snapshot(columns) for s in self.stages]}

    def restore(self, state: Any) -> None:
        for j, s in zip(self.joins, state["joins"]):
            j.restore(s)
        for st, s in zip(self.stages, state["stages"]):
            st.restore(s)

