"""Plugin-facing API for query functions, plus the value model they share.

A plugin registers, through ``register_functions``:

- :class:`ScalarFunction`: ``fn(*args) -> value`` (``UDF.name(...)`` with ``namespace="UDF"``);
- :class:`AggregateFunction`: ``create() / add(acc, value) / merge(a, b) / result(acc)``
  (``UDA.name(...)`` with ``namespace="UDA"``);
- :class:`Operator`: the builtin operators (``=``, ``+``, ``LIKE``, ``CAST``, ...) by symbol.

Values are Stream Analytics' types as Python values: bigint ``int``, float ``float``,
nvarchar(max) ``str``, datetime :class:`datetime.datetime` (UTC), bit ``bool``, record
``dict``, array ``list``; NULL is ``None``. The helpers here (:func:`to_datetime`,
:func:`cast`, :func:`format_datetime`) are the conversions every function shares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

__all__ = [
    "AggregateFunction", "AggregateKind", "CastError", "EventRecord", "ListAggregate", "Operator", "ScalarFunction", "SimpleAggregate",
    "UTC", "cast", "format_datetime", "from_micros", "json_text", "to_datetime", "to_micros", "type_name",
    "udf", "uda", "TYPES",
]

UTC = UTC
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TYPES = ("bigint", "float", "nvarchar(max)", "datetime", "bit", "record", "array")


def json_text(value: Any) -> str:
    """A record or array as JSON text (how outputs carry them), however deeply nested.

    orjson writes at most 254 levels; an input event may hold more (the JSON reader
    takes 1,024), so deeper values are written by an explicit stack instead of failing
    the job that passes them through."""
    import orjson

    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        pass
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, dict):
            seq: list[Any] = [_Raw("{")]
            for n, (k, v) in enumerate(item.items()):
                seq += [_Raw(","), _Raw(orjson.dumps(str(k)).decode() + ":"), v] if n else [
                    _Raw(orjson.dumps(str(k)).decode() + ":"), v]
            stack.extend(reversed([*seq, _Raw("}")]))
        elif isinstance(item, (list, tuple)):
            seq = [_Raw("[")]
            for n, v in enumerate(item):
                seq += [_Raw(","), v] if n else [v]
            stack.extend(reversed([*seq, _Raw("]")]))
        else:
            out.append(orjson.dumps(item, default=str).decode())
    return "".join(out)


@dataclass(frozen=True)
class _Raw:
    """Text the stack-based writer emits as is."""

    text: str


class CastError(ValueError):
    """A value that cannot be converted to the requested type."""


#: Stream Analytics bigint: 64-bit signed.
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1


def bigint_overflow(what: str, value: int) -> str:
    """The error of a bigint result out of range (the statement fails, as T-SQL's does)."""
    return (f"arithmetic overflow: {what} gives {value}, outside the bigint range "
            f"{BIGINT_MIN}..{BIGINT_MAX}; CAST an operand AS float for a float result")


def check_bigint(value: Any, what: str) -> Any:
    """``value``; an int out of the bigint range raises OverflowError (a run-time error)."""
    if type(value) is int and not BIGINT_MIN <= value <= BIGINT_MAX:
        raise OverflowError(bigint_overflow(what, value))
    return value


@dataclass(frozen=True)
class ScalarFunction:
    """A scalar function: ``fn(*args)``; with ``null_propagates`` a NULL argument gives NULL."""

    name: str
    fn: Callable[..., Any]
    min_args: int = 0
    max_args: int | None = None
    aliases: tuple[str, ...] = ()
    namespace: str = ""
    null_propagates: bool = False
    #: first argument is a datepart/unit keyword (DATEADD, DATEDIFF, ...), passed as a str
    unit_arg: bool = False
    #: with ``unit_arg``: the date parts it accepts (lower case); any other is a compile error
    units: frozenset[str] = frozenset()
    doc: str = ""
    #: optional vectorised form: Polars expressions of the arguments in, one expression out,
    #: with exactly ``fn``'s meaning; the engine calls ``fn`` per row where it is None
    vectorized: Callable[..., Any] | None = None
    #: optional vectorised form of a one-argument function over text: a Polars expression
    #: of the argument in, one out, used only where the argument is known to be nvarchar
    #: (``fn`` runs per row elsewhere); ``vectorized_type`` is its result's type
    vectorized_text: Callable[[Any], Any] | None = None
    #: the type ``vectorized_text`` gives: ``nvarchar(max)``, ``bigint``, ``float`` or ``bit``
    vectorized_type: str = ""


@dataclass(frozen=True)
class Operator:
    """A builtin operator by its symbol or keyword (``+``, ``=``, ``LIKE``, ``CAST``)."""

    name: str
    fn: Callable[..., Any]
    aliases: tuple[str, ...] = ()
    namespace: str = ""
    doc: str = ""


class AggregateKind(StrEnum):
    """The aggregates the engine computes on columns (:attr:`AggregateFunction.columnar`)."""

    #: rows, or non-NULL values of the argument
    COUNT = "count"
    #: distinct non-NULL values
    COUNT_DISTINCT = "count_distinct"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"


class AggregateFunction:
    """An aggregate: an accumulator per group and window.

    ``star`` accepts ``f(*)``; ``no_args`` accepts ``f()`` (then ``add`` receives the whole
    event as a record); ``ordered`` accepts ``OVER (ORDER BY ...)`` (``add`` receives
    ``(sort_key, value)``, the key a tuple of ``(value, descending)`` pairs). Aggregates also
    work as analytic functions, ``OVER ([PARTITION BY ...] [ORDER BY ...] LIMIT DURATION(...)
    [WHEN ...])``: then :meth:`result` is computed, for each event, over the values of the
    events in that duration (the current one last). ``columnar`` is the :class:`AggregateKind`
    the engine may compute on columns instead of calling the accumulator per event, if any;
    results must be the same either way.
    """

    name: str = ""
    aliases: tuple[str, ...] = ()
    namespace: str = ""
    star: bool = False
    no_args: bool = False
    ordered: bool = False
    #: leading constant arguments (``CollectTop(n, ...)``), given to :meth:`configure`
    constant_args: int = 0
    #: trailing constant arguments (``AnomalyDetection_SpikeAndDip(x, 95, 120, 'spikes')``),
    #: given to :meth:`configure` after the leading ones
    trailing_constant_args: int = 0
    columnar: AggregateKind | None = None
    #: ``add`` receives ``(timestamp_us, value)``: the event's System.Timestamp in microseconds
    timestamped: bool = False
    doc: str = ""

    def configure(self, *constants: Any) -> AggregateFunction:
        """This aggregate for the query's constant arguments (raise ValueError if wrong)."""
        return self

    def create(self) -> Any:
        raise NotImplementedError

    def add(self, acc: Any, value: Any) -> Any:
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:  # pragma: no cover - optional
        raise NotImplementedError

    def result(self, acc: Any) -> Any:
        return acc


class ListAggregate(AggregateFunction):
    """An aggregate that keeps its window's values in a list (state stays plain data) and
    computes :meth:`result` from all of them (``Collect``, percentiles, JavaScript UDAs)."""

    def create(self) -> list[Any]:
        return []

    def add(self, acc: list[Any], value: Any) -> list[Any]:
        acc.append(value)
        return acc

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        return a + b


class SimpleAggregate(AggregateFunction):
    """An aggregate from plain functions (handy for UDAs)."""

    def __init__(self, name: str, create_fn: Callable[[], Any], add_fn: Callable[[Any, Any], Any],
                 result_fn: Callable[[Any], Any] = lambda acc: acc,
                 merge_fn: Callable[[Any, Any], Any] | None = None, *, aliases: tuple[str, ...] = (),
                 namespace: str = "", no_args: bool = False) -> None:
        self.name, self.create_fn, self.add_fn, self.result_fn, self.merge_fn = (
            name, create_fn, add_fn, result_fn, merge_fn)
        self.aliases, self.namespace, self.no_args = aliases, namespace, no_args

    def create(self) -> Any:
        return self.create_fn()

    def add(self, acc: Any, value: Any) -> Any:
        return self.add_fn(acc, value)

    def merge(self, a: Any, b: Any) -> Any:
        if self.merge_fn is None:
            raise NotImplementedError(self.name)
        return self.merge_fn(a, b)

    def result(self, acc: Any) -> Any:
        return self.result_fn(acc)


class EventRecord(dict[str, Any]):
    """An input event's payload with the metadata Stream Analytics reads through
    ``GetMetadataPropertyValue``: ``metadata`` maps Event Hubs property names
    (``EventEnqueuedUtcTime``, ``EventProcessedUtcTime``, ``PartitionId``, ``Offset``,
    ``SequenceNumber``, ``PartitionKey``, ``Publisher``, ``EventId``) to values and ``User`` to
    the event's custom (application) properties. It is the payload everywhere else (SELECT *,
    output); a runtime that has the metadata builds events as ``EventRecord(payload,
    metadata)``, and without it the function falls back to the system columns in the payload."""

    __slots__ = ("metadata",)

    def __init__(self, payload: dict[str, Any] | None = None, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(payload or {})
        self.metadata = metadata or {}


def udf(name: str, fn: Callable[..., Any], *, min_args: int = 0, max_args: int | None = None) -> ScalarFunction:
    """A Python user-defined function, called in a query as ``UDF.name(...)``."""
    return ScalarFunction(name, fn, min_args, max_args, namespace="UDF")


def uda(name: str, create: Callable[[], Any], add: Callable[[Any, Any], Any],
        result: Callable[[Any], Any] = lambda acc: acc) -> SimpleAggregate:
    """A Python user-defined aggregate, called in a query as ``UDA.name(...)``."""
    return SimpleAggregate(name, create, add, result, namespace="UDA")


# -- datetimes ----------------------------------------------------------------
def to_datetime(value: Any) -> datetime:
    """A datetime from a datetime or an ISO-8601 string (no offset means UTC); else CastError."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str):
        s = value.strip()
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            dt = _parse_loose(s)
        if dt.tzinfo is None:
            return dt.replace(tzinfo=UTC)
        return dt.astimezone(UTC)
    raise CastError(f"Cannot cast value of type '{type_name(value)}' to type 'datetime'")


def _parse_loose(s: str) -> datetime:
    # more than 6 fractional digits or other ISO forms fromisoformat rejects
    import re

    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?", s)
    if not m:
        raise CastError(f"Cannot cast value '{s}' to type 'datetime'")
    frac = (m.group(3) or "")[:6].ljust(6, "0")
    tz = m.group(4) or ""
    try:
        return datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}.{frac}{'+00:00' if tz == 'Z' else tz}")
    except ValueError as exc:
        raise CastError(f"Cannot cast value '{s}' to type 'datetime'") from exc


def to_micros(dt: datetime) -> int:
    """Microseconds since 1970-01-01 UTC."""
    d = dt - EPOCH
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def from_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def format_datetime(dt: datetime) -> str:
    """Stream Analytics' output form: ``2021-12-10T10:00:00.0000000Z``."""
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC)
    return f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}.{dt.microsecond:06d}0Z"


# -- types and casts ------------------------------------------------------------
def type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bit"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "nvarchar(max)"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, dict):
        return "record"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _fail(value: Any, target: str) -> CastError:
    return CastError(f"Cannot cast value {value!r} of type '{type_name(value)}' to type '{target}'")


def cast(value: Any, target: str) -> Any:
    """CAST(value AS target); raises :class:`CastError` when the value does not convert."""
    if value is None:
        return None
    t = target.lower()
    if t == "bigint":
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            if math.isnan(value) or math.isinf(value):
                raise _fail(value, t)
            out = int(value)
        elif isinstance(value, str):
            try:
                out = int(value.strip())
            except ValueError:
                raise _fail(value, t) from None
        else:
            raise _fail(value, t)
        if not BIGINT_MIN <= out <= BIGINT_MAX:  # past 64 bits: does not convert (TRY_CAST: NULL)
            raise _fail(value, t)
        return out
    if t == "float":
        if isinstance(value, (bool, int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                f = float(value.strip())
            except ValueError:
                raise _fail(value, t) from None
            if math.isnan(f) or math.isinf(f):
                raise _fail(value, t)
            return f
        raise _fail(value, t)
    if t == "nvarchar(max)":
        if isinstance(value, str):
            return value
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, datetime):
            return format_datetime(value)
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        if isinstance(value, (dict, list)):
            import json

            return json.dumps(value, default=str, separators=(",", ":"))
        return str(value)
    if t == "datetime":
        return to_datetime(value)
    if t == "bit":
        if isinstance(value, bool):
            return value
        if isinstance(value, (int, float)):
            return value != 0
        if isinstance(value, str):
            s = value.strip().lower()
            if s in ("true", "1"):
                return True
            if s in ("false", "0"):
                return False
        raise _fail(value, t)
    if t == "record":
        if isinstance(value, dict):
            return value
        raise _fail(value, t)
    if t == "array":
        if isinstance(value, list):
            return value
        raise _fail(value, t)
    raise CastError(f"unknown type {target!r}")
