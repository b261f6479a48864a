"""ReadTable's filter/order_by grammar: what it accepts, what it refuses and where."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.services.sink.table_filter import MAX_IN_ITEMS, apply

T = pa.table({"city": ["Oslo", "Lima", None, "Kyiv"], "n": [1, 5, None, 9], "ok": [True, False, True, None],
              "ts": [dt.datetime(2024, 1, d) for d in range(1, 5)], "Weird Name": [1, 2, 3, 4]})


@pytest.mark.parametrize(("filter_", "order_by", "expected"), [
    ("city = 'Oslo' OR n > 4", "", [1, 5, 9]),
    ("NOT (city LIKE 'O%')", "n DESC", [9, 5]),
    ("city NOT LIKE '%y%'", "", [1, 5]),
    ("city LIKE 'L_ma'", "", [5]),
    ("city LIKE 'Oslo'", "", [1]),
    ("city LIKE '%va'", "", []),
    ("city LIKE '%yi%'", "", [9]),
    ("city LIKE 'K%v'", "", [9]),
    ("city LIKE '%'", "", [1, 5, 9]),
    ("city LIKE 'a.*'", "", []),
    ("city IN ('Oslo', 'Kyiv')", "", [1, 9]),
    ("n NOT IN (1, 9)", "", [5]),
    ("city IS NULL", "", [None]),
    ("n IS NOT NULL AND ok", "", [1]),
    ("ts >= '2024-01-03'", "", [None, 9]),
    ('"Weird Name" = 2', "", [5]),
    ("[Weird Name] <> 2 AND n != 1", "", [9]),
    ("CITY = 'Lima'", "", [5]),
    ("n > -1.5 AND (ok = TRUE OR ok = FALSE)", "", [1, 5]),
    ("5 < n", "", [9]),
    ("", "city NULLS FIRST", [None, 9, 5, 1]),
    ("", "n DESC", [None, 9, 5, 1]),
    ("", "n ASC, city", [1, 5, 9, None]),
])
def test_grammar(filter_, order_by, expected):
    assert apply(T, filter_, order_by).column("n").to_pylist() == expected


@pytest.mark.parametrize(("field", "text", "message", "position"), [
    ("filter", "read_csv('/etc/passwd') IS NOT NULL", "unknown column 'read_csv'", 1),
    ("filter", "n = 1 OR city IN (SELECT * FROM read_csv('auth.json'))", "expected a value", 19),
    ("filter", "city = 3", "column 'city' is text, compared with a number", 8),
    ("filter", "cty = 'x'", "unknown column 'cty'", 1),
    ("filter", "city = 'x", "unterminated", 8),
    ("filter", "n >", "found the end", 4),
    ("filter", "n = 1 n", "unexpected 'n'", 7),
    ("filter", "city ~ 'x'", "unexpected character '~'", 6),
    ("filter", "city", "expected a condition", 1),
    ("filter", "n LIKE '1%'", "LIKE needs a text column", 3),
    ("filter", "(" * 100 + "n = 1" + ")" * 100, "nested more than", 65),
    ("order_by", "n; DROP TABLE t", "unexpected character ';'", 2),
    ("order_by", "nope DESC", "unknown column 'nope'", 1),
    ("order_by", "n NULLS MIDDLE", "expected FIRST or LAST", 9),
])
def test_errors_name_field_and_position(field, text, message, position):
    kwargs = {"filter_": text} if field == "filter" else {"order_by": text}
    with pytest.raises(HeadwaterError) as info:
        apply(T, **kwargs)
    err = info.value
    assert err.reason is Reason.INVALID_ARGUMENT and err.metadata["field"] == field
    assert message in err.message and err.metadata["position"] == str(position), err.message


def test_in_list_is_bounded():
    text = "n IN (" + ",".join(["1"] * (MAX_IN_ITEMS + 1)) + ")"
    with pytest.raises(HeadwaterError, match="at most"):
        apply(T, text)
