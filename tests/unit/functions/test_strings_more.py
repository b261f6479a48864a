"""CONCAT_WS, LEFT, RIGHT, NCHAR, UNICODE, REPLICATE, REVERSE, SPACE, STUFF, TRANSLATE with the
reference's examples, through the engine; negative lengths as documented."""

from __future__ import annotations

import pytest

from headwater.errors import HeadwaterError
from headwater.plugins import strings as S
from headwater.testing import run_query


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
