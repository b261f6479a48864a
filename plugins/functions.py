"""Builtin scalar functions, aggregates and operators (``register_functions``).

Everything the query language calls by name, CAST, LIKE and COUNT(DISTINCT ...)
included, is registered here exactly as a third-party plugin registers its own.

String comparison (``=``, ``<``, ``LIKE``, ``IN``, CASE) is case-insensitive (T-SQL's
default collation): the query-patterns article compares ``Event = 'start'`` against
``Start`` and still outputs the row (SEMANTICS.md §15.5). Grouping, partitioning and
DISTINCT compare values exactly.
"""

from __future__ import annotations

import calendar
import math
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from headwater.functions import (
    AggregateFunction,
    AggregateKind,
    CastError,
    ListAggregate,
    Operator,
    ScalarFunction,
    cast,
    check_bigint,
    to_datetime,
    to_micros,
    type_name,
)
from headwater.hookspecs import hookimpl
from headwater.plugins.regex import re2_compile, regex_search

__all__ = ["compare", "DATEPARTS"]


# -- comparison -----------------------------------------------------------------
def _num(v: Any) -> float | int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return None
    return None


def compare(a: Any, b: Any) -> int | None:
    """-1/0/1, or None when either side is NULL or the types do not compare."""
    if a is None or b is None:
        return None
    ta, tb = type(a), type(b)
    if ta is str and tb is str:
        x, y = a.lower(), b.lower()
        return (x > y) - (x < y)
    if isinstance(a, datetime) or isinstance(b, datetime):
        try:
            x, y = to_datetime(a), to_datetime(b)
        except (CastError, TypeError):
            return None
        return (x > y) - (x < y)
    if ta in (int, float, bool) and tb in (int, float, bool):
        return (a > b) - (a < b)
    x, y = _num(a), _num(b)
    if x is not None and y is not None:
        return (x > y) - (x < y)
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return 0 if a == b else None
    return None


def _cmp_op(test):
    def fn(a, b):
        c = compare(a, b)
        return None if c is None else test(c)
    return fn


def _arith(op):
    def fn(a, b):
        if a is None or b is None:
            return None
        if op == "+" and isinstance(a, str) and isinstance(b, str):
            return a + b
        if isinstance(a, bool):
            a = int(a)
        if isinstance(b, bool):
            b = int(b)
        if isinstance(a, str):
            a = cast(a, "float")
        if isinstance(b, str):
            b = cast(b, "float")
        if not isinstance(a, (int, float)) or not isinstance(b, (int, float)):
            raise CastError(f"operator {op} is not defined for '{type_name(a)}' and '{type_name(b)}'")
        if op == "+":
            return check_bigint(a + b, f"{a} + {b}")
        if op == "-":
            return check_bigint(a - b, f"{a} - {b}")
        if op == "*":
            return check_bigint(a * b, f"{a} * {b}")
        if op == "/":
            if b == 0:
                raise ZeroDivisionError("division by zero")
            return a / b
        if b == 0:
            raise ZeroDivisionError("division by zero")
        return math.fmod(a, b) if isinstance(a, float) or isinstance(b, float) else int(math.fmod(a, b))
    return fn


def _bits(op):
    """Bitwise ``& | ^``: bit when both sides are bit, else bigint (a float is cast to bigint
    first, as the reference's ``170 & 75.0`` = 10 shows)."""
    def fn(a, b):
        if a is None or b is None:
            return None
        both_bit = isinstance(a, bool) and isinstance(b, bool)
        x, y = _bit_operand(op, a), _bit_operand(op, b)
        r = x & y if op == "&" else x | y if op == "|" else x ^ y
        return bool(r) if both_bit else r
    return fn


def _bit_operand(op: str, v) -> int:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return cast(v, "bigint")
    raise CastError(f"operator {op} takes bit or bigint, got '{type_name(v)}'")


def _bitnot(a):
    if a is None:
        return None
    if isinstance(a, bool):
        return not a
    return ~_bit_operand("~", a)


def _and(a, b):
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _or(a, b):
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


def _not(a):
    return None if a is None else not a


def _neg(a):
    if a is None:
        return None
    if isinstance(a, str):
        a = cast(a, "float")
    return check_bigint(-a, f"-({a})")


def _like_body(pattern: str) -> str:
    """The RE2 form of a LIKE pattern: ``%`` any run, ``_`` one character, ``[set]`` /
    ``[^set]`` a character class; everything else literal."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "%":
            out.append(".*")
        elif c == "_":
            out.append(".")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1:i + 2] == "^" else i + 1)
            if j < 0 or j == i + 1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                neg = body.startswith("^")
                if neg:
                    body = body[1:]
                # only '-' keeps its meaning inside a set; everything else is literal
                body = "".join(ch if ch == "-" else re.escape(ch) for ch in body)
                out.append(f"[{'^' if neg else ''}{body}]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@lru_cache(maxsize=512)
def like_regex(pattern: str) -> Any:
    """LIKE compiled for RE2 (case-insensitive, ``.`` matching newlines): a finite automaton,
    so matching is linear in the value's length whatever the pattern (no backtracking: a 14 KB
    value under ``'%error%timeout%retry%'`` takes microseconds, not seconds)."""
    return re2_compile(_like_body(pattern))


@lru_cache(maxsize=512)
def like_matcher(pattern: str) -> Callable[[str], bool]:
    """A linear-time matcher for a LIKE pattern. Patterns of literals and ``%`` only (the
    common ``'%error%timeout%'``, ``'abc%'``) match by greedy leftmost search of each literal
    (correct for ``%``-only patterns and several times faster than a regex call); patterns
    with ``_`` or ``[set]`` go to RE2."""
    if "_" in pattern or "[" in pattern:
        rx = like_regex(pattern)
        return lambda v: rx.fullmatch(v) is not None
    parts = pattern.lower().split("%")
    if len(parts) == 1:
        lit = parts[0]
        return lambda v: v.lower() == lit
    head, middle, tail = parts[0], [p for p in parts[1:-1] if p], parts[-1]
    need = len(head) + len(tail) + sum(map(len, middle))

    def match(v: str) -> bool:
        low = v.lower()
        if len(low) < need or not low.startswith(head) or not low.endswith(tail):
            return False
        i, end = len(head), len(low) - len(tail)
        for lit in middle:
            j = low.find(lit, i, end)
            if j < 0:
                return False
            i = j + len(lit)
        return True
    return match


def _like(s, pattern):
    if s is None or pattern is None:
        return None
    return like_matcher(str(pattern))(_str(s))


def patindex(pattern, s):
    """PATINDEX('%pattern%', s): 1-based start of the first match of a LIKE pattern, 0 if none.

    As in T-SQL, a pattern without a leading ``%`` must match at the start and one without a
    trailing ``%`` must match at the end; ``PATINDEX('%ter%', 'interesting')`` is 3."""
    if s is None or pattern is None:
        return None
    p, v = str(pattern), _str(s)
    core = p.strip("%")
    if not core:
        return 1 if p or not v else 0
    lead, trail = p.startswith("%"), p.endswith("%")
    m = _patindex_regex(core, lead, trail).search(v)
    return m.start() + 1 if m else 0


@lru_cache(maxsize=512)
def _patindex_regex(core: str, lead: bool, trail: bool) -> Any:
    return re2_compile(f"{'' if lead else '^'}(?:{_like_body(core)}){'' if trail else '$'}")


def _try_cast(v, t):
    try:
        return cast(v, t)
    except (CastError, ValueError, OverflowError, TypeError):
        return None


# -- dates ----------------------------------------------------------------------
DATEPARTS: dict[str, str] = {}
for _canon, _names in {
    "year": ("year", "yy", "yyyy"), "quarter": ("quarter", "qq", "q"), "month": ("month", "mm", "m"),
    "dayofyear": ("dayofyear", "dy", "y"), "day": ("day", "dd", "d"), "week": ("week", "wk", "ww"),
    "weekday": ("weekday", "dw", "w"), "hour": ("hour", "hh"), "minute": ("minute", "mi", "n"),
    "second": ("second", "ss", "s"), "millisecond": ("millisecond", "ms"),
    "microsecond": ("microsecond", "mcs"), "nanosecond": ("nanosecond", "ns"),
}.items():
    for _n in _names:
        DATEPARTS[_n] = _canon

_FIXED = {"day": 86_400_000_000, "dayofyear": 86_400_000_000, "hour": 3_600_000_000, "minute": 60_000_000,
          "second": 1_000_000, "millisecond": 1000, "microsecond": 1}


_UNITS = frozenset(DATEPARTS)


def _part(unit: str) -> str:
    try:
        return DATEPARTS[str(unit).lower()]
    except KeyError:
        raise ValueError(f"unknown date part {unit!r}") from None


def datediff(unit, a, b):
    """Signed count of ``unit`` boundaries crossed from ``a`` to ``b`` (T-SQL)."""
    if a is None or b is None:
        return None
    p = _part(unit)
    x, y = to_datetime(a), to_datetime(b)
    if p in _FIXED:
        u = _FIXED[p]
        return to_micros(y) // u - to_micros(x) // u
    if p == "nanosecond":
        return (to_micros(y) - to_micros(x)) * 1000
    if p == "year":
        return y.year - x.year
    if p == "quarter":
        return (y.year * 4 + (y.month - 1) // 3) - (x.year * 4 + (x.month - 1) // 3)
    if p == "month":
        return (y.year * 12 + y.month) - (x.year * 12 + x.month)
    # week / weekday: weeks start on Sunday; 1970-01-01 was a Thursday
    day = 86_400_000_000
    return (to_micros(y) // day + 4) // 7 - (to_micros(x) // day + 4) // 7


def _add_months(d: datetime, months: int) -> datetime:
    m = d.month - 1 + months
    y, m = d.year + m // 12, m % 12 + 1
    return d.replace(year=y, month=m, day=min(d.day, calendar.monthrange(y, m)[1]))


def dateadd(unit, n, d):
    if n is None or d is None:
        return None
    p = _part(unit)
    d = to_datetime(d)
    n = int(cast(n, "bigint")) if not isinstance(n, (int, float)) else int(n)
    if p == "year":
        return _add_months(d, 12 * n)
    if p == "quarter":
        return _add_months(d, 3 * n)
    if p == "month":
        return _add_months(d, n)
    if p in ("week", "weekday"):
        return d + timedelta(days=7 * n if p == "week" else n)
    if p == "nanosecond":
        return d + timedelta(microseconds=n // 1000)
    return d + timedelta(microseconds=_FIXED[p] * n)


def datepart(unit, d):
    if d is None:
        return None
    p = _part(unit)
    d = to_datetime(d)
    return {
        "year": lambda: d.year, "quarter": lambda: (d.month - 1) // 3 + 1, "month": lambda: d.month,
        "dayofyear": lambda: d.timetuple().tm_yday, "day": lambda: d.day,
        "week": lambda: (d.timetuple().tm_yday + (d.replace(month=1, day=1).isoweekday() % 7) - 1) // 7 + 1,
        "weekday": lambda: d.isoweekday() % 7 + 1, "hour": lambda: d.hour, "minute": lambda: d.minute,
        "second": lambda: d.second, "millisecond": lambda: d.microsecond // 1000,
        "microsecond": lambda: d.microsecond, "nanosecond": lambda: d.microsecond * 1000,
    }[p]()


def datename(unit, d):
    if d is None:
        return None
    p = _part(unit)
    dt = to_datetime(d)
    if p == "month":
        return calendar.month_name[dt.month]
    if p == "weekday":
        return calendar.day_name[dt.weekday()]
    return str(datepart(unit, dt))


def datetimefromparts(y, mo, d, h=0, mi=0, s=0, ms=0):
    if any(v is None for v in (y, mo, d, h, mi, s, ms)):
        return None
    return to_datetime(datetime(int(y), int(mo), int(d), int(h), int(mi), int(s), int(ms) * 1000))


# -- strings, math, records --------------------------------------------------------
def _str(v):
    return cast(v, "nvarchar(max)")


def substring(s, start, length):
    """SUBSTRING(s, start, length), 1-based; a negative length fails the statement (the
    reference: "an error is generated and the statement is terminated")."""
    if s is None or start is None or length is None:
        return None
    s = _str(s)
    start, length = int(start), int(length)
    if length < 0:
        raise ValueError(f"SUBSTRING: the length must not be negative, got {length}")
    begin = max(start - 1, 0)
    end = start - 1 + length
    return s[begin:max(end, begin)] if end > 0 else ""


def _round(x, n=0, mode=0):
    if x is None or n is None:
        return None
    if isinstance(x, str) or not isinstance(x, (int, float)):
        raise CastError(f"ROUND: Only 'bigint', 'float' is allowed, got '{type_name(x)}'")
    n = int(n)
    if isinstance(x, int) and not isinstance(x, bool):  # exact: a bigint rounds to a bigint
        if n >= 0:
            return x
        m = 10 ** -n
        q = abs(x) // m if mode else (abs(x) + m // 2) // m
        return check_bigint(int(math.copysign(1, x)) * q * m, f"ROUND({x}, {n})")
    if mode:
        f = 10.0 ** n
        return math.trunc(x * f) / f
    f = 10.0 ** n
    r = math.floor(abs(x) * f + 0.5) / f
    r = math.copysign(r, x)
    return int(r) if isinstance(x, int) else r


def _numeric(name, f):
    def fn(x, *rest):
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            raise CastError(f"{name}: Only 'bigint', 'float' is allowed, got '{type_name(x)}'")
        return f(x, *rest)
    return fn


def _keep_int(f):
    def fn(x):
        r = f(x)
        return int(r) if isinstance(x, int) else float(r)
    return fn


def get_array_element(arr, i):
    if arr is None or i is None:
        return None
    arr = cast(arr, "array")
    i = int(i)
    return arr[i] if 0 <= i < len(arr) else None


def get_array_length(arr):
    return None if arr is None else len(cast(arr, "array"))


def get_record_property_value(rec, name):
    if rec is None or name is None:
        return None
    rec = cast(rec, "record")
    if name in rec:
        return rec[name]
    low = str(name).lower()
    for k, v in rec.items():
        if k.lower() == low:
            return v
    return None


#: GetMetadataPropertyValue's Event Hubs properties (the reference's list)
EVENTHUB_PROPERTIES = ("EventEnqueuedUtcTime", "EventProcessedUtcTime", "PartitionId", "Offset", "SequenceNumber",
                       "PartitionKey", "Publisher")


def _metadata_path(path: str) -> list[str]:
    """``'[EventHub].[EventEnqueuedUtcTime]'`` / ``'EventHub.PartitionId'`` / ``'[User].[key]'`` -> parts."""
    parts = re.findall(r"\[([^\]]*)\]|([^.\[\]]+)", path.strip())
    return [a or b.strip() for a, b in parts if (a or b.strip())]


def get_metadata_property_value(rec, path):
    """GetMetadataPropertyValue(input, '[EventHub].[Property]' | 'EventHub' | '[User].[key]' |
    'User' | 'EventId'): the input event's metadata (see :class:`headwater.functions.EventRecord`).

    Without metadata from the runtime, the Event Hubs properties come from the system
    columns of the event (``PartitionId``, ``EventEnqueuedUtcTime``, and the others when
    present); ``EventProcessedUtcTime`` is then the time of processing. An unknown property
    is NULL."""
    if rec is None or path is None:
        return None
    if not isinstance(rec, dict):
        raise CastError(f"GetMetadataPropertyValue: the first argument must be an input (a record), "
                        f"got '{type_name(rec)}'")
    meta = getattr(rec, "metadata", None) or {}
    parts = _metadata_path(str(path))
    if not parts:
        return None
    head = parts[0].lower()

    def eventhub(name: str):
        for k, v in meta.items():
            if k.lower() == name.lower() and k != "User":
                return v
        v = get_record_property_value(rec, name)
        if v is None and name.lower() == "eventprocessedutctime":
            from headwater.functions import UTC

            return datetime.now(UTC)
        return v

    if head in ("eventhub", "iothub"):
        if len(parts) == 1:
            out = {n: eventhub(n) for n in EVENTHUB_PROPERTIES}
            return {k: v for k, v in out.items() if v is not None}
        return eventhub(parts[1])
    if head == "user":
        user = meta.get("User") or {}
        if len(parts) == 1:
            return dict(user)
        return get_record_property_value(user, parts[1]) if user else None
    if head == "eventid":  # stable across replays: the partition and the sequence number
        if meta.get("EventId") is not None:
            return meta["EventId"]
        pid, seq = eventhub("PartitionId"), eventhub("SequenceNumber")
        return None if pid is None or seq is None else f"{pid}:{seq}"
    return eventhub(parts[0]) if len(parts) == 1 else None


def concat(*args):
    return "".join("" if a is None else _str(a) for a in args)


def charindex(find, s, start=1):
    if find is None or s is None:
        return None
    return _str(s).lower().find(_str(find).lower(), max(int(start or 1) - 1, 0)) + 1


def regexmatch(s, pattern):
    """REGEXMATCH(s, pattern): 1-based start of the first match, 0 when none or when the
    pattern is not a valid regular expression (the reference). Case-insensitive, ``.``
    matching newlines. See :mod:`headwater.plugins.regex` for the engines behind it."""
    if s is None or pattern is None:
        return None
    return regex_search(str(pattern), _str(s))


def coalesce(*args):
    for a in args:
        if a is not None:
            return a
    return None


def _nullif(a, b):
    return None if compare(a, b) == 0 else a


def _sqrt(x):
    return math.sqrt(x)


SCALARS = [
    ScalarFunction("LEN", lambda s: None if s is None else len(_str(s)), 1, 1,
                   vectorized_text=lambda e: e.str.len_chars().cast(int), vectorized_type="bigint"),
    ScalarFunction("SUBSTRING", substring, 3, 3),
    ScalarFunction("UPPER", lambda s: None if s is None else _str(s).upper(), 1, 1,
                   vectorized_text=lambda e: e.str.to_uppercase(), vectorized_type="nvarchar(max)"),
    ScalarFunction("LOWER", lambda s: None if s is None else _str(s).lower(), 1, 1,
                   vectorized_text=lambda e: e.str.to_lowercase(), vectorized_type="nvarchar(max)"),
    ScalarFunction("CONCAT", concat, 1, None),
    ScalarFunction("LTRIM", lambda s: None if s is None else _str(s).lstrip(), 1, 1),
    ScalarFunction("RTRIM", lambda s: None if s is None else _str(s).rstrip(), 1, 1),
    ScalarFunction("TRIM", lambda s: None if s is None else _str(s).strip(), 1, 1),
    ScalarFunction("REPLACE", lambda s, a, b: None if None in (s, a, b) else
                   re.sub(re.escape(_str(a)), lambda _m: _str(b), _str(s), flags=re.I), 3, 3),
    ScalarFunction("CHARINDEX", charindex, 2, 3),
    ScalarFunction("REGEXMATCH", regexmatch, 2, 2),
    ScalarFunction("PATINDEX", patindex, 2, 2),
    ScalarFunction("STARTSWITH", lambda s, p: None if None in (s, p) else _str(s).lower().startswith(_str(p).lower()), 2, 2),
    ScalarFunction("ENDSWITH", lambda s, p: None if None in (s, p) else _str(s).lower().endswith(_str(p).lower()), 2, 2),
    ScalarFunction("ABS", _numeric("ABS", lambda x: check_bigint(abs(x), f"ABS({x})")), 1, 1, null_propagates=True),
    ScalarFunction("ROUND", _round, 2, 3),
    ScalarFunction("FLOOR", _numeric("FLOOR", _keep_int(math.floor)), 1, 1, null_propagates=True),
    ScalarFunction("CEILING", _numeric("CEILING", _keep_int(math.ceil)), 1, 1, null_propagates=True),
    ScalarFunction("SIGN", _numeric("SIGN", lambda x: (x > 0) - (x < 0)), 1, 1, null_propagates=True),
    ScalarFunction("POWER", _numeric("POWER", lambda x, y: float(x) ** y), 2, 2, null_propagates=True),
    ScalarFunction("SQRT", _numeric("SQRT", _sqrt), 1, 1, null_propagates=True),
    ScalarFunction("SQUARE", _numeric("SQUARE", lambda x: float(x) * x), 1, 1, null_propagates=True),
    ScalarFunction("EXP", _numeric("EXP", math.exp), 1, 1, null_propagates=True),
    ScalarFunction("LOG", _numeric("LOG", lambda x, b=None: math.log(x) if b is None else math.log(x, b)), 1, 2,
                   null_propagates=True),
    ScalarFunction("LOG10", _numeric("LOG10", math.log10), 1, 1, null_propagates=True),
    ScalarFunction("DATEADD", dateadd, 3, 3, unit_arg=True, units=_UNITS),
    ScalarFunction("DATEDIFF", datediff, 3, 3, unit_arg=True, units=_UNITS),
    ScalarFunction("DATEPART", datepart, 2, 2, unit_arg=True, units=_UNITS),
    ScalarFunction("DATENAME", datename, 2, 2, unit_arg=True, units=_UNITS),
    ScalarFunction("DATETIMEFROMPARTS", datetimefromparts, 7, 7),
    ScalarFunction("YEAR", lambda d: datepart("year", d), 1, 1),
    ScalarFunction("MONTH", lambda d: datepart("month", d), 1, 1),
    ScalarFunction("DAY", lambda d: datepart("day", d), 1, 1),
    ScalarFunction("GetArrayElement", get_array_element, 2, 2),
    ScalarFunction("GetArrayLength", get_array_length, 1, 1),
    ScalarFunction("GetRecordPropertyValue", get_record_property_value, 2, 2),
    ScalarFunction("GetMetadataPropertyValue", get_metadata_property_value, 2, 2),
    ScalarFunction("GetType", type_name, 1, 1),
    ScalarFunction("COALESCE", coalesce, 1, None),
    ScalarFunction("NULLIF", _nullif, 2, 2),
]

OPERATORS = [
    Operator("+", _arith("+")), Operator("-", _arith("-")), Operator("*", _arith("*")),
    Operator("/", _arith("/")), Operator("%", _arith("%")),
    Operator("||", lambda a, b: None if a is None or b is None else _str(a) + _str(b)),
    Operator("=", _cmp_op(lambda c: c == 0)), Operator("<>", _cmp_op(lambda c: c != 0)),
    Operator("<", _cmp_op(lambda c: c < 0)), Operator(">", _cmp_op(lambda c: c > 0)),
    Operator("<=", _cmp_op(lambda c: c <= 0)), Operator(">=", _cmp_op(lambda c: c >= 0)),
    Operator("AND", _and), Operator("OR", _or), Operator("NOT", _not), Operator("NEG", _neg),
    Operator("&", _bits("&")), Operator("|", _bits("|")), Operator("^", _bits("^")), Operator("~", _bitnot),
    Operator("LIKE", _like), Operator("CAST", cast), Operator("TRY_CAST", _try_cast),
]


# -- aggregates ---------------------------------------------------------------------
class Count(AggregateFunction):
    """COUNT(*) counts events; COUNT(x) non-NULL values. Always bigint."""

    name, star, columnar = "COUNT", True, AggregateKind.COUNT

    def create(self):
        return 0

    def add(self, acc, value):
        return acc + (value is not None)

    def merge(self, a, b):
        return a + b


class CountDistinct(AggregateFunction):
    """COUNT(DISTINCT x): unique non-NULL values (registered under the name ``COUNT DISTINCT``)."""

    name, columnar = "COUNT DISTINCT", AggregateKind.COUNT_DISTINCT

    def create(self):
        return set()

    def add(self, acc, value):
        if value is not None:
            acc.add(_hashable(value))
        return acc

    def merge(self, a, b):
        return a | b

    def result(self, acc):
        return len(acc)


def _hashable(v):
    if v is True or v is False:
        return ("bit", v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, list):
        return tuple(_hashable(x) for x in v)
    return v


def _numeric_value(name, v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, str):
        return cast(v, "float")
    raise CastError(f"{name}: Only 'bigint', 'float' is allowed, got '{type_name(v)}'")


class Sum(AggregateFunction):
    name, columnar = "SUM", AggregateKind.SUM

    def create(self):
        return None

    def add(self, acc, value):
        if value is None:
            return acc
        v = _numeric_value("SUM", value)
        return v if acc is None else acc + v

    def merge(self, a, b):
        return b if a is None else a if b is None else a + b

    def result(self, acc):
        # exact while adding (Python ints), checked once: order of events does not matter
        return check_bigint(acc, "SUM")


class Avg(AggregateFunction):
    name, columnar = "AVG", AggregateKind.AVG

    def create(self):
        return [0.0, 0]

    def add(self, acc, value):
        if value is not None:
            acc[0] += _numeric_value("AVG", value)
            acc[1] += 1
        return acc

    def merge(self, a, b):
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, acc):
        return acc[0] / acc[1] if acc[1] else None


class _Extreme(AggregateFunction):
    sign = 1

    def create(self):
        return None

    def add(self, acc, value):
        if value is None:
            return acc
        if acc is None:
            return value
        c = compare(value, acc)
        return value if c is not None and c * self.sign > 0 else acc

    def merge(self, a, b):
        return self.add(a, b)


class Min(_Extreme):
    name, sign, columnar = "MIN", -1, AggregateKind.MIN


class Max(_Extreme):
    name, sign, columnar = "MAX", 1, AggregateKind.MAX


class _Moments(AggregateFunction):
    sample = True
    root = True

    def create(self):
        return [0, 0.0, 0.0]

    def add(self, acc, value):
        if value is not None:
            x = float(_numeric_value(self.name, value))
            acc[0] += 1
            d = x - acc[1]
            acc[1] += d / acc[0]
            acc[2] += d * (x - acc[1])
        return acc

    def result(self, acc):
        n = acc[0] - (1 if self.sample else 0)
        if n <= 0:
            return None
        v = acc[2] / n
        return math.sqrt(v) if self.root else v


class Stdev(_Moments):
    name = "STDEV"


class StdevP(_Moments):
    name, sample = "STDEVP", False


class Var(_Moments):
    name, root = "VAR", False


class VarP(_Moments):
    name, root, sample = "VARP", False, False


class TopOne(AggregateFunction):
    """TopOne([expr]) OVER (ORDER BY ...): the first value (whole event without expr) in that order."""

    name, no_args, ordered = "TopOne", True, True

    def create(self):
        return None

    def add(self, acc, value):
        key, v = value
        if acc is None or _order_lt(key, acc[0]):
            return (key, v)
        return acc

    def result(self, acc):
        return None if acc is None else acc[1]


def _order_lt(a: tuple, b: tuple) -> bool:
    """``a`` sorts before ``b``; keys are ``(value, descending)`` pairs; NULL is the minimum."""
    for (x, desc), (y, _) in zip(a, b):
        if x is None and y is None:
            continue
        if x is None:
            c = -1
        elif y is None:
            c = 1
        else:
            c = compare(x, y) or 0
        if c:
            return (c > 0) if desc else (c < 0)
    return False


class CollectTop(ListAggregate):
    """CollectTop(n[, expr]) OVER (ORDER BY ...): ``[{"rank": r, "value": v}, ...]`` for the
    values ranked 1..n in that order (equal keys share a rank; NULL sorts as the minimum)."""

    name, no_args, ordered, constant_args = "CollectTop", True, True, 1

    def __init__(self, n: int = 1) -> None:
        self.n = n

    def configure(self, *constants):
        n = constants[0] if constants else None
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError("CollectTop(n, ...) needs a positive integer n")
        return CollectTop(n)

    def result(self, acc):
        from functools import cmp_to_key

        def cmp(x, y):
            return -1 if _order_lt(x[0], y[0]) else 1 if _order_lt(y[0], x[0]) else 0
        ranked, rank, prev = [], 0, None
        for i, (key, v) in enumerate(sorted(acc, key=cmp_to_key(cmp))):
            if prev is None or cmp((prev, None), (key, None)) != 0:
                rank = i + 1
            if rank > self.n:
                break
            prev = key
            ranked.append({"rank": rank, "value": v})
        return ranked


class Collect(ListAggregate):
    """Collect([expr]): an array of the values (whole events without expr)."""

    name, no_args = "Collect", True


AGGREGATES = [Count(), CountDistinct(), Sum(), Avg(), Min(), Max(), Stdev(), StdevP(), Var(), VarP(),
              TopOne(), CollectTop(), Collect()]


@hookimpl
def register_functions(register) -> None:
    for fn in (*SCALARS, *OPERATORS, *AGGREGATES):
        register(fn)
