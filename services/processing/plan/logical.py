"""Logical plan: what each statement reads, groups and writes, resolved by the analyzer."""

from __future__ import annotations

from dataclasses import dataclass, field

from headwater.services.processing.sql import ast as A
from headwater.windows import WindowConfig, WindowKind

__all__ = ["LogicalPlan", "LogicalStatement", "WindowSpec"]


@dataclass
class WindowSpec:
    """One window definition of a GROUP BY (several for ``Windows(...)``)."""

    kind: WindowKind
    config: WindowConfig
    label: str | None = None
    partition_by: list[A.Node] = field(default_factory=list)
    pos: tuple[int, int] = (1, 1)


@dataclass
class LogicalStatement:
    select: A.Select
    target: str  # a step name or an output alias
    is_output: bool
    group_keys: list[A.Node] = field(default_factory=list)
    windows: list[WindowSpec] = field(default_factory=list)
    aggregate: bool = False


@dataclass
class LogicalPlan:
    query: A.Query
    inputs: list[str]  # stream inputs, as first spelled
    references: list[str]
    steps: list[str]  # in dependency order
    outputs: list[str]
    statements: list[LogicalStatement]  # steps first (dependency order), then outputs
