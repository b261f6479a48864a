"""``headwater perf query`` smoke test: a JSON summary as the last line, every query, DuckDB peer."""

from __future__ import annotations

import json

import pytest

from headwater.cli.main import main


@pytest.mark.parametrize("query", ["book", "distinct", "hopping", "session"])
def test_perf_query_json(query, capsys) -> None:
    assert main(["perf", "query", "-n", "20000", "--batch", "5000", "--query", query, "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last)
    assert result["events_per_s"] > 0 and result["peak_rss_mb"] > 0
    assert result["path"] == "vectorised" and result["output_rows"] > 0 and result["events_in"] == 20000


def test_perf_query_compare_duckdb(capsys) -> None:
    pytest.importorskip("duckdb")
    assert main(["perf", "query", "-n", "10000", "--compare", "duckdb", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["duckdb_events_per_s"] > 0 and result["ratio_vs_duckdb"] > 0


def test_perf_query_suite_lists_every_shape(capsys) -> None:
    from headwater.perf.query import SUITE

    assert main(["perf", "query", "--suite", "-n", "2000", "--batch", "1000", "--json",
                 "--only", "book", "--only", "with_step", "--only", "book_passthrough"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [q["query"] for q in result["queries"]] == ["book", "book_passthrough", "with_step"]
    assert all(q["events_per_s"] > 0 for q in result["queries"]) and result["peak_rss_mb"] > 0
    assert {q["query"]: q["plan"] for q in result["queries"]}["with_step"] == "vectorised"
    assert len(SUITE) >= 15


def test_perf_query_suite_packed_feeds_the_same_events(capsys) -> None:
    """--packed feeds each batch as one buffer and offsets (as a job does): the same output."""
    rows = {}
    for packed in ([], ["--packed"]):
        assert main(["perf", "query", "--suite", "-n", "3000", "--batch", "1000", "--json", "--only", "book",
                     "--only", "stream_join", "--only", "book_passthrough", *packed]) == 0
        out = capsys.readouterr().out
        assert ("packed buffers" in out) == bool(packed)
        rows[bool(packed)] = {q["query"]: q["output_rows"] for q in json.loads(out.strip().splitlines()[-1])["queries"]}
    assert rows[True] == rows[False] and rows[True]["book_passthrough"] == 3000


def test_perf_query_suite_repeat_reports_the_fastest_of_identical_runs(capsys, monkeypatch) -> None:
    """--repeat N: each shape runs N times from a new runtime; every run gives the same rows
    and the fastest is reported."""
    from headwater.perf import query

    calls = []
    real = query._engine_run

    def counted(text, batches, n):
        calls.append(text)
        return real(text, batches, n)

    monkeypatch.setattr(query, "_engine_run", counted)
    assert main(["perf", "query", "--suite", "-n", "2000", "--batch", "1000", "--json", "--repeat", "4",
                 "--only", "book_passthrough"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert "best of 4 runs" in out and result["repeat"] == 4
    assert calls.count(query.SUITE["book_passthrough"][0]) == 4
    assert result["queries"][0]["output_rows"] == 2000


def test_perf_query_checkpoint(capsys) -> None:
    assert main(["perf", "query", "--checkpoint", "3000", "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["rows_after_restore"] == 3000 and result["snapshot_ms"] > 0 and result["snapshot_mb"] > 0
