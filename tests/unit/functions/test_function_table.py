"""docs/query-engine.md's function table is true: every function of a row marked *yes* has an
example here that compiles and gives the documented answer, a function named in the table
without one fails the test, and the only rows that are not *yes* are the two kinds of
function a self-hosted engine cannot have (Azure Machine Learning, C# UDFs), each with its
reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.plugins.javascript import js_plugin
from headwater.services.processing.testing import run_query

DOC = Path(__file__).resolve().parents[3] / "docs" / "query-engine.md"

EVENTS = [
    {"t": "2021-01-01T00:00:01Z", "k": "a", "v": 4, "f": 2.5, "s": "Hello", "a": [10, 20], "r": {"x": 1, "y": "z"}},
    {"t": "2021-01-01T00:00:02Z", "k": "a", "v": 6, "f": -1.5, "s": "World", "a": [30], "r": {"x": 2}},
    {"t": "2021-01-01T00:00:03Z", "k": "b", "v": 5, "f": 0.5, "s": "abc", "a": [], "r": {"x": 3}},
]
GROUPED = "SELECT {} AS x FROM i TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)"
PER_EVENT = "SELECT {} AS x FROM i TIMESTAMP BY t"
ONE = "SELECT {} AS x FROM i TIMESTAMP BY t WHERE v = 4"
SQUARE = ("CreatePolygon(CreatePoint(0, 0), CreatePoint(0, 10), CreatePoint(10, 10), CreatePoint(10, 0),"
          " CreatePoint(0, 0))")
LINE = "CreateLineString(CreatePoint(0, 0), CreatePoint(10, 10))"
UDF_HEX = "function main(hexValue) {\n  return parseInt(hexValue, 16);\n}"
UDA_SUM = ("function main() { this.init = function () { this.s = 0; };"
           " this.accumulate = function (v, t) { this.s += v; }; this.computeResult = function () { return this.s; }; }")

#: function (as the table names it) -> (query, the column x of the output rows)
EXAMPLES: dict[str, tuple[str, list]] = {
    # aggregate
    "AVG": (GROUPED.format("AVG(v)"), [5.0]),
    "COUNT": (GROUPED.format("COUNT(*) + COUNT(DISTINCT k) + COUNT(i)"), [3 + 2 + 3]),
    "MAX": (GROUPED.format("MAX(v)"), [6]),
    "MIN": (GROUPED.format("MIN(f)"), [-1.5]),
    "SUM": (GROUPED.format("SUM(v)"), [15]),
    "STDEV": (GROUPED.format("STDEV(v)"), [1.0]),
    "STDEVP": (GROUPED.format("ROUND(STDEVP(v), 4)"), [0.8165]),
    "VAR": (GROUPED.format("VAR(v)"), [1.0]),
    "VARP": (GROUPED.format("ROUND(VARP(v), 4)"), [0.6667]),
    "Collect": (GROUPED.format("Collect(v)"), [[4, 6, 5]]),
    "CollectTop": (GROUPED.format("CollectTop(2) OVER (ORDER BY v DESC)"),
                   [[{"rank": 1, "value": EVENTS[1]}, {"rank": 2, "value": EVENTS[2]}]]),
    "TopOne": (GROUPED.format("TopOne() OVER (ORDER BY f ASC).s"), ["World"]),
    "PERCENTILE_CONT": (GROUPED.format("PERCENTILE_CONT(0.25) OVER (ORDER BY v)"), [4.5]),
    "PERCENTILE_DISC": (GROUPED.format("PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY v)"), [5]),
    # analytic
    "LAG": (PER_EVENT.format("LAG(v) OVER (LIMIT DURATION(minute, 1))"), [None, 4, 6]),
    "LAST": (PER_EVENT.format("LAST(s) OVER (PARTITION BY k LIMIT DURATION(minute, 1) WHEN v > 4)"),
             [None, "World", "abc"]),  # the current event counts (conformance syn_last_when_includes_current)
    "ISFIRST": (PER_EVENT.format("ISFIRST(minute, 1) OVER (PARTITION BY k)"), [1, 0, 1]),
    "AnomalyDetection_SpikeAndDip": (
        PER_EVENT.format("AnomalyDetection_SpikeAndDip(v, 95, 30, 'spikes') OVER (LIMIT DURATION(minute, 1))"),
        [{"IsAnomaly": 0, "Score": 0.5}] * 3),
    "AnomalyDetection_ChangePoint": (
        PER_EVENT.format("AnomalyDetection_ChangePoint(v, 95, 30) OVER (LIMIT DURATION(minute, 1)).IsAnomaly"),
        [0, 0, 0]),
    # array
    "GetArrayElement": (PER_EVENT.format("GetArrayElement(a, 0)"), [10, 30, None]),
    "GetArrayLength": (PER_EVENT.format("GetArrayLength(a)"), [2, 1, 0]),
    "GetArrayElements": ("SELECT e.ArrayValue AS x FROM i TIMESTAMP BY t CROSS APPLY GetArrayElements(i.a) AS e",
                         [10, 20, 30]),
    # conversion
    "CAST": (ONE.format("CAST(f AS bigint) + CAST('7' AS bigint)"), [2 + 7]),  # truncates, as T-SQL
    "TRY_CAST": (ONE.format("TRY_CAST(s AS float)"), [None]),
    "GetType": (ONE.format("CONCAT(GetType(v), GetType(f), GetType(s), GetType(a), GetType(r))"),
                ["bigintfloatnvarchar(max)arrayrecord"]),
    # date and time
    "DATEADD": (ONE.format("DATEADD(day, 1, t)"), ["2021-01-02T00:00:01.0000000Z"]),
    "DATEDIFF": (ONE.format("DATEDIFF(second, '2021-01-01T00:00:00Z', t)"), [1]),
    "DATENAME": (ONE.format("DATENAME(weekday, t)"), ["Friday"]),
    "DATEPART": (ONE.format("DATEPART(dayofyear, t)"), [1]),
    "DATETIMEFROMPARTS": (ONE.format("DATETIMEFROMPARTS(2021, 2, 3, 4, 5, 6, 7)"), ["2021-02-03T04:05:06.0070000Z"]),
    "DAY": (ONE.format("DAY(t)"), [1]),
    "MONTH": (ONE.format("MONTH(t)"), [1]),
    "YEAR": (ONE.format("YEAR(t)"), [2021]),
    # geospatial
    "CreatePoint": (ONE.format("CreatePoint(47.6, -122.1)"), [{"type": "Point", "coordinates": [-122.1, 47.6]}]),
    "CreateLineString": (ONE.format(LINE), [{"type": "LineString", "coordinates": [[0.0, 0.0], [10.0, 10.0]]}]),
    "CreatePolygon": (ONE.format("GetArrayLength(GetArrayElement(" + SQUARE + ".coordinates, 0))"), [5]),
    "ST_DISTANCE": (ONE.format("ROUND(ST_DISTANCE(CreatePoint(-5, -5), CreatePoint(0, 0)), 2)"), [784028.74]),
    "ST_WITHIN": (ONE.format("ST_WITHIN(CreatePoint(5, 5), " + SQUARE + ")"), [1]),
    "ST_INTERSECTS": (ONE.format("ST_INTERSECTS(" + LINE + ", CreateLineString(CreatePoint(0, 10),"
                                 " CreatePoint(10, 0)))"), [1]),
    "ST_OVERLAPS": (ONE.format("ST_OVERLAPS(" + SQUARE + ", CreatePolygon(CreatePoint(5, 5), CreatePoint(5, 15),"
                               " CreatePoint(15, 15), CreatePoint(15, 5), CreatePoint(5, 5)))"), [1]),
    # input metadata
    "GetMetadataPropertyValue": (ONE.format("GetType(GetMetadataPropertyValue(i, 'EventEnqueuedUtcTime'))"),
                                 ["datetime"]),
    # mathematical
    "ABS": (ONE.format("ABS(-v)"), [4]),
    "CEILING": (ONE.format("CEILING(f)"), [3.0]),
    "EXP": (ONE.format("ROUND(EXP(1.0), 5)"), [2.71828]),
    "FLOOR": (ONE.format("FLOOR(f)"), [2.0]),
    "POWER": (ONE.format("POWER(v, 2)"), [16]),
    "ROUND": (ONE.format("ROUND(2.567, 1)"), [2.6]),
    "SIGN": (PER_EVENT.format("SIGN(f)"), [1.0, -1.0, 1.0]),
    "SQRT": (ONE.format("SQRT(v)"), [2.0]),
    "SQUARE": (ONE.format("SQUARE(f)"), [6.25]),
    "LOG": (ONE.format("ROUND(LOG(v), 4)"), [1.3863]),
    "LOG10": (ONE.format("LOG10(100.0)"), [2.0]),
    # record
    "GetRecordProperties": ("SELECT p.PropertyName AS x FROM i TIMESTAMP BY t CROSS APPLY GetRecordProperties(i.r) AS p"
                            " WHERE i.v = 4", ["x", "y"]),
    "GetRecordPropertyValue": (PER_EVENT.format("GetRecordPropertyValue(r, 'x')"), [1, 2, 3]),
    # string
    "CHARINDEX": (ONE.format("CHARINDEX('l', s)"), [3]),
    "CONCAT": (ONE.format("CONCAT(s, '-', v)"), ["Hello-4"]),
    "LEN": (PER_EVENT.format("LEN(s)"), [5, 5, 3]),
    "LOWER": (ONE.format("LOWER(s)"), ["hello"]),
    "LTRIM": (ONE.format("LTRIM('  x ')"), ["x "]),
    "RTRIM": (ONE.format("RTRIM('  x ')"), ["  x"]),
    "TRIM": (ONE.format("TRIM('  x ')"), ["x"]),
    "REPLACE": (ONE.format("REPLACE(s, 'l', 'L')"), ["HeLLo"]),
    "SUBSTRING": (ONE.format("SUBSTRING(s, 2, 3)"), ["ell"]),
    "UPPER": (ONE.format("UPPER(s)"), ["HELLO"]),
    "CONCAT_WS": (ONE.format("CONCAT_WS('/', s, NULL, k)"), ["Hello/a"]),
    "LEFT": (ONE.format("LEFT(s, 2)"), ["He"]),
    "RIGHT": (ONE.format("RIGHT(s, 2)"), ["lo"]),
    "NCHAR": (ONE.format("NCHAR(65)"), ["A"]),
    "UNICODE": (ONE.format("UNICODE(s)"), [72]),
    "REPLICATE": (ONE.format("REPLICATE('ab', 3)"), ["ababab"]),
    "REVERSE": (ONE.format("REVERSE(s)"), ["olleH"]),
    "SPACE": (ONE.format("CONCAT('[', SPACE(2), ']')"), ["[  ]"]),
    "STUFF": (ONE.format("STUFF('abcdef', 2, 3, 'ijklmn')"), ["aijklmnef"]),
    "TRANSLATE": (ONE.format("TRANSLATE('2*[3+4]/{7-2}', '[]{}', '()()')"), ["2*(3+4)/(7-2)"]),
    "PATINDEX": (ONE.format("PATINDEX('%ter%', 'interesting')"), [3]),
    "REGEXMATCH": (PER_EVENT.format("REGEXMATCH(s, '^[a-c]+$') + REGEXMATCH(s, '(')"), [0, 0, 1]),  # invalid: 0
    "STARTSWITH": (ONE.format("STARTSWITH(s, 'he')"), [True]),
    "ENDSWITH": (ONE.format("ENDSWITH(s, 'LO')"), [True]),
    # scalar
    "COALESCE": (ONE.format("COALESCE(NULL, r.nothing, s)"), ["Hello"]),
    "NULLIF": (PER_EVENT.format("NULLIF(k, 'a')"), [None, None, "b"]),
    # operators
    "+ - * / %": (ONE.format("v + 1 - 2 * 3 / 2 + 7 % 3"), [3.0]),
    "comparisons": (PER_EVENT.format("CASE WHEN v >= 5 AND v <> 6 AND f != 0 AND s = 'ABC' THEN 1 ELSE 0 END"),
                    [0, 0, 1]),
    "LIKE": (PER_EVENT.format("CASE WHEN s LIKE '_o%' THEN 1 ELSE 0 END"), [0, 1, 0]),
    "IN": (PER_EVENT.format("CASE WHEN v IN (4, 5) THEN 1 ELSE 0 END"), [1, 0, 1]),
    "BETWEEN": (PER_EVENT.format("CASE WHEN f BETWEEN 0 AND 1 THEN 1 ELSE 0 END"), [0, 0, 1]),
    "& | ^ ~": (ONE.format("(v & 6) + (v | 1) + (v ^ 1) + ~v"), [4 + 5 + 5 - 5]),
    # windowing
    "TumblingWindow": (GROUPED.format("COUNT(*)"), [3]),
    "HoppingWindow": ("SELECT COUNT(*) AS x FROM i TIMESTAMP BY t GROUP BY HoppingWindow(second, 2, 1)", [1, 2, 2, 1]),
    "SlidingWindow": ("SELECT COUNT(*) AS x FROM i TIMESTAMP BY t GROUP BY SlidingWindow(second, 2)", [1, 2, 2, 1]),
    "SessionWindow": ("SELECT COUNT(*) AS x FROM i TIMESTAMP BY t GROUP BY k, SessionWindow(second, 5, 60)", [2, 1]),
    "SnapshotWindow": ("SELECT COUNT(*) AS x FROM i TIMESTAMP BY t GROUP BY System.Timestamp()", [1, 1, 1]),
    "Windows/Window": ("SELECT System.Window().Id AS x FROM i TIMESTAMP BY t GROUP BY"
                       " Windows(Window('ten', TumblingWindow(second, 10)), Window('two', TumblingWindow(second, 2)))",
                       ["two", "two", "ten"]),
    "System.Timestamp()": (GROUPED.format("System.Timestamp()"), ["2021-01-01T00:00:10.0000000Z"]),
    "System.Window().Id": ("SELECT System.Window().Id AS x FROM i TIMESTAMP BY t"
                           " GROUP BY Windows(Window('w', TumblingWindow(second, 10)))", ["w"]),
    # user-defined
    "JavaScript UDF": (ONE.format("UDF.hex2Int('1F')"), [31]),
    "JavaScript UDA": (GROUPED.format("UDA.total(v)"), [15]),
}

#: the rows that cannot be "yes", and the words their notes must give as the reason
NOT_POSSIBLE = {"Azure Machine Learning functions": "Azure", "C# user-defined functions and aggregates": ".NET"}


def _table() -> list[tuple[str, list[str], str, str]]:
    text = DOC.read_text()
    section = text.split("## Functions: status against the language reference", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 4 or cells[0] in ("category", "---"):
            continue
        names = [re.sub(r"\s+\(.*\)$", "", n.strip().strip("`").replace("\\|", "|")).strip()
                 for n in cells[1].split(", ")]
        rows.append((cells[0], names, cells[2], cells[3]))
    return rows


def test_every_row_is_yes_but_the_functions_a_self_hosted_engine_cannot_have() -> None:
    rows = _table()
    assert len(rows) > 20
    others = {", ".join(names): notes for _, names, status, notes in rows if status != "yes"}
    assert set(others) == set(NOT_POSSIBLE), others
    for name, reason in NOT_POSSIBLE.items():
        assert rows and dict((", ".join(n), s) for _, n, s, _ in rows)[name] == "no"
        assert reason in others[name] and len(others[name]) > 60, others[name]


def test_every_yes_function_has_an_example() -> None:
    named = {n for _, names, status, _ in _table() if status == "yes" for n in names}
    assert named - set(EXAMPLES) == set(), "functions in the table without an example here"
    assert set(EXAMPLES) - named == set(), "examples of functions the table does not list"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_yes_function_compiles_and_runs_as_documented(name: str) -> None:
    query, expected = EXAMPLES[name]
    pm = None
    if name.startswith("JavaScript"):
        pm = get_plugin_manager([("js", js_plugin({"hex2Int": UDF_HEX, "total": UDA_SUM}))],
                                load_entrypoints=False).collect()
    out = run_query(query, {"i": EVENTS}, pm=pm)["output"]
    assert [r["x"] for r in out] == expected
