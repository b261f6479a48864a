"""Builtin functions and operators (plugins/functions.py) and the value model (headwater.functions)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from headwater.functions import CastError, cast, format_datetime, to_datetime
from headwater.plugins import functions as F

UTC = UTC


@pytest.mark.parametrize("s,pattern,expected", [
    ("AAA-999", "A%9", True), ("ABC-369", "A%9", True), ("ABC-123", "A%9", False),
    ("Oslo", "O_lo", True), ("Oslo", "o%", True), ("Bergen", "[A-C]%", True), ("Bergen", "[^A-C]%", False),
    ("50%", "50[%]", True), ("a.b", "a.b", True), ("axb", "a.b", False), (None, "%", None),
])
def test_like(s, pattern, expected) -> None:
    assert F._like(s, pattern) == expected


@pytest.mark.parametrize("a,b,expected", [
    (1, 1.0, 0), ("start", "Start", 0), ("a", "B", -1), ("10", 9, 1), (None, 1, None),
    ("2024-01-01T00:00:00Z", datetime(2024, 1, 1, tzinfo=UTC), 0), ({"a": 1}, "x", None), (True, 1, 0),
])
def test_compare(a, b, expected) -> None:
    assert F.compare(a, b) == expected


def test_datediff_counts_boundaries() -> None:
    assert F.datediff("minute", "2024-01-01T00:00:59Z", "2024-01-01T00:01:00Z") == 1
    assert F.datediff("mi", "2024-01-01T00:00:00Z", "2024-01-01T00:00:59Z") == 0
    assert F.datediff("year", "2023-12-31T23:59:59Z", "2024-01-01T00:00:00Z") == 1
    assert F.datediff("month", "2024-01-31T00:00:00Z", "2024-03-01T00:00:00Z") == 2
    assert F.datediff("week", "2024-01-06T00:00:00Z", "2024-01-07T00:00:00Z") == 1  # Saturday -> Sunday
    assert F.datediff("ss", "2024-01-01T00:01:00Z", "2024-01-01T00:00:00Z") == -60


def test_dateadd_datepart_datename() -> None:
    d = to_datetime("2024-01-31T10:00:00Z")
    assert F.dateadd("month", 1, d) == to_datetime("2024-02-29T10:00:00Z")
    assert F.dateadd("hh", -11, d) == to_datetime("2024-01-30T23:00:00Z")
    assert F.datepart("weekday", d) == 4 and F.datepart("dayofyear", d) == 31 and F.datepart("qq", d) == 1
    assert F.datename("month", d) == "January" and F.datename("dw", d) == "Wednesday"
    with pytest.raises(ValueError, match="date part"):
        F.datepart("fortnight", d)


@pytest.mark.parametrize("value,target,expected", [
    ("42", "bigint", 42), (3.9, "bigint", 3), (True, "bigint", 1), ("2.5", "float", 2.5), (7, "float", 7.0),
    (2.0, "nvarchar(max)", "2"), (True, "nvarchar(max)", "true"), ({"a": [1]}, "nvarchar(max)", '{"a":[1]}'),
    (0.0, "bit", False), (0.1, "bit", True), ("true", "bit", True), ({"a": 1}, "record", {"a": 1}),
    ([1], "array", [1]), (None, "bigint", None),
    ("2014-09-10T05:01:00-07:00", "datetime", datetime(2014, 9, 10, 12, 1, tzinfo=UTC)),
])
def test_cast(value, target, expected) -> None:
    assert cast(value, target) == expected


@pytest.mark.parametrize("value,target", [("this is a string", "bigint"), ("NaN", "float"), ({}, "array"),
                                          ("not a date", "datetime"), ([1], "record"), ("maybe", "bit")])
def test_cast_failures(value, target) -> None:
    with pytest.raises(CastError):
        cast(value, target)
    assert F._try_cast(value, target) is None


def test_datetime_format_has_seven_digits() -> None:
    assert format_datetime(to_datetime("2018-04-05T06:51:39.0491173Z")) == "2018-04-05T06:51:39.0491170Z"
    assert format_datetime(to_datetime("2021-12-10T10:00:00")) == "2021-12-10T10:00:00.0000000Z"


def test_strings_and_math() -> None:
    assert F.substring("Stream", 2, 3) == "tre" and F.substring("abc", 0, 2) == "a"
    assert F._round(2.345, 2) == 2.35 and F._round(-2.5, 0) == -3.0 and F._round(7, 0) == 7
    with pytest.raises(CastError, match="Only 'bigint', 'float'"):
        F._round("1.5", 0)
    assert F.charindex("B", "abc") == 2 and F.regexmatch("Hello", "l+") == 3
    assert F.concat("a", None, 1) == "a1"
    assert F.get_array_element([1, 2], 5) is None and F.get_record_property_value({"Ab": 1}, "aB") == 1


def test_aggregates() -> None:
    c = F.CountDistinct()
    acc = c.create()
    for v in ("a", "a", None, "A"):
        acc = c.add(acc, v)
    assert c.result(acc) == 2
    s = F.Stdev()
    acc = s.create()
    for v in (2, 4, 4, 4, 5, 5, 7, 9):
        acc = s.add(acc, v)
    assert abs(s.result(acc) - 2.138089935299395) < 1e-12
    t = F.TopOne()
    acc = t.create()
    for key, v in (((1, True),), "a"), (((3, True),), "b"), (((None, True),), "c"):
        acc = t.add(acc, (key, v))
    assert t.result(acc) == "b"
