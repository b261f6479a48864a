"""No query text crashes the compiler: only QueryCompileError (with line/column) comes out."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from headwater.errors import QueryCompileError
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.engine import compile_query

ROOT = Path(__file__).resolve().parents[3]
SEEDS = [
    "SELECT a, COUNT(*) AS c INTO out FROM inp TIMESTAMP BY t GROUP BY a, TumblingWindow(second, 10)",
    "WITH s AS (SELECT * FROM i) SELECT x.y.[0] FROM s WHERE x LIKE 'a%' AND NOT b IS NULL",
    "SELECT CASE WHEN a = 1 THEN 'x' ELSE CAST(b AS nvarchar(max)) END FROM i i1 JOIN i i2 "
    "ON DATEDIFF(minute, i1, i2) BETWEEN 0 AND 5",
    "SELECT LAG(a, 1) OVER (PARTITION BY b LIMIT DURATION(hour, 1) WHEN c > 2) FROM i CROSS APPLY "
    "GetArrayElements(arr) AS e",
]
TOKENS = ["SELECT", "FROM", "WHERE", "GROUP", "BY", "(", ")", ",", "*", "'", "[", "]", "AS", "INTO", "JOIN",
          "ON", "OVER", "TumblingWindow", "Windows", "Window", "CAST", "TRY_CAST", "CASE", "WHEN", "END", "1",
          "-1", "1e400", "System.Timestamp()", "System.Window().Id", ".", "x", "--", "/*", "\n", "UDF.f",
          "MATCH_RECOGNIZE", "PATTERN", "DEFINE", "{", "}", "+", "LIMIT", "DURATION", "WITH", "UNION",
          "HAVING", "NOT", "LIKE", "IN", "BETWEEN", "AND", "NULL", "COUNT", "DISTINCT", "Duration(second, 0)",
          "CREATE TABLE t (a bigint);", "CollectTop(2, x) OVER (ORDER BY y)", "APPLY", "CROSS", "LAG(*)",
          "SessionWindow(s, 1, 2) OVER (PARTITION BY k)", "[0]", '"dq"', "TIMESTAMP BY", "ISFIRST(mi, 1)"]


def _conformance_queries() -> list[str]:
    import os

    base = Path(os.environ.get("HEADWATER_CONFORMANCE_DIR") or ROOT.parent / "shared" / "conformance")
    out = []
    for p in sorted((base / "cases").glob("*.json")):
        case = json.loads(p.read_text())
        out.append(case.get("query_corrected") or case["query"])
    return out


def _mutants(rng: random.Random, texts: list[str], n: int):
    for _ in range(n):
        t = rng.choice(texts)
        r = rng.random()
        if r < 0.25 and t:  # cut
            i = rng.randrange(len(t))
            yield t[:i]
        elif r < 0.5 and t:  # delete a span
            i = rng.randrange(len(t))
            yield t[:i] + t[i + rng.randrange(1, 20):]
        elif r < 0.75:  # insert a token
            i = rng.randrange(len(t) + 1)
            yield t[:i] + " " + rng.choice(TOKENS) + " " + t[i:]
        else:  # random token soup / bytes
            if rng.random() < 0.5:
                yield " ".join(rng.choice(TOKENS) for _ in range(rng.randrange(1, 30)))
            else:
                yield "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(0, 60)))


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False).collect()


def test_garbled_text_only_raises_compile_errors(pm) -> None:
    rng = random.Random(4)
    texts = SEEDS + _conformance_queries()
    for text in _mutants(rng, texts, 8000):
        try:
            compile_query(text, pm)
        except QueryCompileError as exc:
            assert exc.line >= 1 and exc.column >= 1, (text, exc)
            lines = text.split("\n")
            assert exc.line <= len(lines) + 1, (text, exc)


@pytest.mark.parametrize("text", ["", "   ", "(" * 5000, "SELECT " + "-" * 3000 + "1 FROM i",
                                  "SELECT a FROM i WHERE " + " AND ".join(["a=1"] * 2000)])
def test_degenerate_text(pm, text) -> None:
    try:
        compile_query(text, pm)
    except QueryCompileError as exc:
        assert exc.line >= 1
