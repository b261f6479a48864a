"""CONCAT_WS, LEFT, RIGHT, NCHAR, UNICODE, REPLICATE, REVERSE, SPACE, STUFF, TRANSLATE with the
reference's examples, through the engine; negative lengths as documented."""

from __future__ import annotations

import pytest

from headwater.errors import HeadwaterError
from headwater.plugins import strings as S
from headwater.services.processing.testing import run_query


def test_documented_examples_through_the_engine() -> None:
    row = {"s": "abcdefg", "address1": "1 Microsoft Way", "address2": None, "city": "Redmond",
           "stateCode": "WA", "zipCode": "98052", "country": None}
    out = run_query(
        "SELECT LEFT('abcdefg', 2) AS leftX, RIGHT(s, 3) AS rightX, REVERSE('abcdefg') AS reversedX,"
        " STUFF('abcdef', 2, 3, 'ijklmn') AS Stuffed,"
        " CONCAT_WS(', ', address1, address2, city, stateCode, zipCode, country) AS fullAddress,"
        " RTRIM('LastName  ') + ',' + SPACE(1) + LTRIM('    FirstName') AS FullName,"
        " TRANSLATE('2*[3+4]/{7-2}', '[]{}', '()()') AS t, NCHAR(8364) AS euro, UNICODE('€uro') AS code"
        " FROM Input", {"Input": [row]})["output"]
    assert out == [{"leftX": "ab", "rightX": "efg", "reversedX": "gfedcba", "Stuffed": "aijklmnef",
                    "fullAddress": "1 Microsoft Way, Redmond, WA, 98052", "FullName": "LastName, FirstName",
                    "t": "2*(3+4)/(7-2)", "euro": "€", "code": 8364}]


def test_replicate_documented_example() -> None:
    lines = [{"ProductLine": p} for p in ("T", "1222X", "99A", "123456789")]
    out = run_query("SELECT ProductLine, CONCAT(REPLICATE('0', 4 - LEN(ProductLine)), ProductLine) AS LineCode"
                    " FROM Input", {"Input": lines})["output"]
    assert [r["LineCode"] for r in out] == ["000T", "1222X", "099A", "123456789"]


def test_edges() -> None:
    assert S.stuff("abc", 0, 1, "X") == "Xbc" and S.stuff("abc", 5, 1, "X") == "" and S.stuff("abc", 2, 9, None) == "a"
    assert S.concat_ws("-", None, None) == "" and S.concat_ws(None, "a") is None
    assert S.replicate("ab", -1) is None and S.space(-2) is None and S.right("abc", 0) == ""
    assert S.nchar(-1) is None and S.unicode("") is None and S.left(None, 1) is None
    with pytest.raises(ValueError, match="same length"):
        S.translate("abc", "ab", "x")
    with pytest.raises(ValueError, match="longer than"):
        S.replicate("x", 10**9)


@pytest.mark.parametrize("call", ["LEFT(s, -1)", "RIGHT(s, -1)", "STUFF(s, 1, -1, 'x')"])
def test_negative_length_fails_the_statement(call) -> None:
    with pytest.raises(HeadwaterError, match="length must not be negative"):
        run_query(f"SELECT {call} AS x FROM Input", {"Input": [{"s": "abc"}]})


def test_bitwise_operators_documented_values() -> None:
    out = run_query("SELECT 170 & 75 AS a, 170 | 75 AS o, 170 ^ 75 AS x, ~170 AS n, 170 & 75.0 AS f,"
                    " CAST(1 AS bit) & CAST(0 AS bit) AS b, CAST(1 AS bit) | CAST(0 AS bit) AS bo,"
                    " ~CAST(0 AS bit) AS nb, v & 1 AS nul FROM Input", {"Input": [{"v": None}]})["output"]
    assert out == [{"a": 10, "o": 235, "x": 225, "n": -171, "f": 10, "b": False, "bo": True, "nb": True,
                    "nul": None}]
    with pytest.raises(HeadwaterError, match="bit or bigint"):
        run_query("SELECT s & 1 AS x FROM Input", {"Input": [{"s": "abc"}]})
