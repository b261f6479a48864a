"""Syntax tree of a query. Every node carries ``pos`` = (line, column) of its first token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Node", "Literal", "Column", "Star", "SystemTimestamp", "SystemWindowId", "Unary", "Binary",
    "Between", "InList", "IsNull", "Like", "Case", "Cast", "Call", "OverClause", "Subscript",
    "SelectItem", "Source", "Join", "Apply", "MatchRecognize", "Select", "Statement", "Query",
    "OrderItem",
]


@dataclass(eq=False)
class Node:
    pos: tuple[int, int]


@dataclass(eq=False)
class Literal(Node):
    value: Any


@dataclass(eq=False)
class Column(Node):
    """A (possibly dotted) reference: ``a``, ``r.deviceId``, ``rules.includeDim.[0]``."""

    parts: list[str]


@dataclass(eq=False)
class Star(Node):
    """``*`` or ``path.*`` in a SELECT list (``path`` empty for a bare ``*``)."""

    path: list[str] = field(default_factory=list)


@dataclass(eq=False)
class SystemTimestamp(Node):
    pass


@dataclass(eq=False)
class SystemWindowId(Node):
    pass


@dataclass(eq=False)
class Unary(Node):
    op: str  # '-', '+', 'NOT', '~'
    operand: Node


@dataclass(eq=False)
class Binary(Node):
    op: str  # + - * / % = <> < > <= >= AND OR ||
    left: Node
    right: Node


@dataclass(eq=False)
class Between(Node):
    expr: Node
    low: Node
    high: Node
    negated: bool = False


@dataclass(eq=False)
class InList(Node):
    expr: Node
    items: list[Node]
    negated: bool = False


@dataclass(eq=False)
class IsNull(Node):
    expr: Node
    negated: bool = False


@dataclass(eq=False)
class Like(Node):
    expr: Node
    pattern: Node
    negated: bool = False


@dataclass(eq=False)
class Case(Node):
    operand: Node | None
    whens: list[tuple[Node, Node]]
    default: Node | None


@dataclass(eq=False)
class Cast(Node):
    expr: Node
    type_name: str
    try_: bool = False


@dataclass(eq=False)
class OrderItem(Node):
    expr: Node
    descending: bool = False


@dataclass(eq=False)
class OverClause(Node):
    partition_by: list[Node] = field(default_factory=list)
    limit_duration: tuple[str, float] | None = None
    when: Node | None = None
    order_by: list[OrderItem] = field(default_factory=list)


@dataclass(eq=False)
class Call(Node):
    """A function call; ``namespace`` is ``UDF``/``UDA`` (or empty), ``star`` for ``COUNT(*)``."""

    name: str
    args: list[Node]
    namespace: str = ""
    distinct: bool = False
    star: bool = False
    over: OverClause | None = None


@dataclass(eq=False)
class Subscript(Node):
    """Field access on an expression result: ``f(x).Id``, ``(expr).a``."""

    base: Node
    parts: list[str]


@dataclass(eq=False)
class SelectItem(Node):
    expr: Node
    alias: str | None = None


@dataclass(eq=False)
class Source(Node):
    name: str
    alias: str | None = None
    timestamp_by: Node | None = None
    timestamp_over: list[Node] = field(default_factory=list)
    partition_by: str | None = None

    @property
    def ref(self) -> str:
        return self.alias or self.name


@dataclass(eq=False)
class Join(Node):
    kind: str  # 'inner' | 'left'
    source: Source
    on: Node


@dataclass(eq=False)
class Apply(Node):
    outer: bool
    call: Call
    alias: str


@dataclass(eq=False)
class MatchRecognize(Node):
    limit_duration: tuple[str, float]
    partition_by: list[Node]
    measures: list[SelectItem]
    skip_to_next_row: bool
    pattern: Any  # nested tuples, see parser._pattern
    define: dict[str, Node]
    alias: str | None = None


@dataclass(eq=False)
class Select(Node):
    items: list[SelectItem]
    into: str | None
    source: Source
    joins: list[Join] = field(default_factory=list)
    applies: list[Apply] = field(default_factory=list)
    match: MatchRecognize | None = None
    where: Node | None = None
    group_by: list[Node] = field(default_factory=list)
    having: Node | None = None
    distinct: bool = False
    into_pos: tuple[int, int] | None = None


@dataclass(eq=False)
class Statement(Node):
    """One SELECT, or several joined by UNION (same INTO)."""

    selects: list[Select]


@dataclass(eq=False)
class Query(Node):
    steps: list[tuple[str, Statement, tuple[int, int]]]
    statements: list[Statement]
    #: CREATE TABLE input (col type, ...): declared input schemas, by input name (lower case)
    tables: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
