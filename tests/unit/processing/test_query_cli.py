"""``headwater query test`` in-process: file formats, outputs, errors and exit codes."""

from __future__ import annotations

import io
import json

import fastavro

from headwater.cli.main import main

EVENTS = [{"Make": "A", "Time": "2024-01-01T00:00:01Z", "v": 1},
          {"Make": "A", "Time": "2024-01-01T00:00:05Z", "v": 2},
          {"Make": "B", "Time": "2024-01-01T00:00:12Z", "v": 3}]
QUERY = ("SELECT Make, COUNT(*) AS n, SUM(CAST(v AS bigint)) AS total, System.Timestamp() AS e INTO counts\n"
         "FROM Input TIMESTAMP BY Time GROUP BY Make, TumblingWindow(second, 10)")
EXPECTED = [{"Make": "A", "n": 2, "total": 3, "e": "2024-01-01T00:00:10.0000000Z"},
            {"Make": "B", "n": 1, "total": 3, "e": "2024-01-01T00:00:20.0000000Z"}]


def _run(tmp_path, query, *extra):
    (tmp_path / "q.asaql").write_text(query)
    return main(["query", "test", "--query", str(tmp_path / "q.asaql"), "--output-dir", str(tmp_path / "out"),
                 *extra])


def _write_inputs(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(EVENTS))
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(e) for e in EVENTS))
    (tmp_path / "a.csv").write_text("Make,Time,v\n" + "\n".join(f"{e['Make']},{e['Time']},{e['v']}" for e in EVENTS))
    schema = {"type": "record", "name": "E", "fields": [{"name": "Make", "type": "string"},
                                                         {"name": "Time", "type": "string"},
                                                         {"name": "v", "type": "long"}]}
    buf = io.BytesIO()
    fastavro.writer(buf, schema, EVENTS)
    (tmp_path / "a.avro").write_bytes(buf.getvalue())


def test_every_input_format_gives_the_same_rows(tmp_path) -> None:
    _write_inputs(tmp_path)
    for name in ("a.json", "a.jsonl", "a.csv", "a.avro"):
        assert _run(tmp_path, QUERY, "--input", f"Input={tmp_path / name}") == 0, name
        assert json.loads((tmp_path / "out" / "counts.json").read_text()) == EXPECTED, name


def test_compile_error_prints_line_and_column(tmp_path, capsys) -> None:
    code = _run(tmp_path, "SELECT a\nFROM Input\nWHERE a LIKE", "--input", "Input=/dev/null")
    assert code == 1
    assert capsys.readouterr().err.strip() == "line 3, column 13: expected an expression, found end of query"
    assert not (tmp_path / "out").exists()


def test_failing_cast_exits_non_zero(tmp_path, capsys) -> None:
    (tmp_path / "a.json").write_text(json.dumps([{"v": "this is a string"}]))
    assert _run(tmp_path, "SELECT CAST(v AS bigint) AS b FROM Input", "--input", f"Input={tmp_path / 'a.json'}") == 1
    assert "CAST" in capsys.readouterr().err


def test_udf_from_a_file_arrival_field_and_reference(tmp_path) -> None:
    (tmp_path / "udfs.py").write_text("def shout(s):\n    return s.upper() + '!'\n")
    (tmp_path / "a.json").write_text(json.dumps([
        {"k": "x", "t": "2024-01-01T00:00:00Z", "arr": "2024-01-01T00:00:30Z"}]))
    (tmp_path / "r.json").write_text(json.dumps([{"k": "x", "label": "ex"}]))
    code = _run(tmp_path, "SELECT UDF.shout(r.label) AS s, System.Timestamp() AS ts, i.* FROM Input i "
                          "TIMESTAMP BY t JOIN R r ON i.k = r.k",
                "--input", f"Input={tmp_path / 'a.json'}", "--reference", f"R={tmp_path / 'r.json'}",
                "--udf", f"shout={tmp_path / 'udfs.py'}:shout", "--arrival-time-field", "arr",
                "--late-arrival-tolerance", "10")
    assert code == 0
    rows = json.loads((tmp_path / "out" / "output.json").read_text())
    # late by 30 s with a 10 s tolerance: System.Timestamp() = arrival - 10 s; payload unchanged, arr removed
    assert rows == [{"s": "EX!", "ts": "2024-01-01T00:00:20.0000000Z", "k": "x", "t": "2024-01-01T00:00:00Z"}]


def test_explain_prints_the_plan_and_path(tmp_path, capsys) -> None:
    (tmp_path / "q.asaql").write_text(QUERY)
    assert main(["query", "explain", "--query", str(tmp_path / "q.asaql")]) == 0
    out = capsys.readouterr().out
    assert "aggregate keys Make windows TumblingWindow(size=10s, hop=10s, offset=0) [vectorised]" in out
    assert "(vectorised, merged across partitions)" in out
    (tmp_path / "bad.asaql").write_text("SELECT FROM")
    assert main(["query", "explain", "--query", str(tmp_path / "bad.asaql")]) == 1


def test_a_source_that_is_not_a_given_input_is_a_compile_error(tmp_path, capsys) -> None:
    _write_inputs(tmp_path)
    code = _run(tmp_path, "SELECT Make\nFROM Inptu", "--input", f"Input={tmp_path / 'a.json'}")
    assert code == 1
    assert capsys.readouterr().err.strip() == ("line 2, column 6: 'Inptu' is neither an input nor a WITH step "
                                               "(did you mean 'Input'?)")


def test_an_input_file_the_query_does_not_read_is_a_warning(tmp_path, capsys) -> None:
    _write_inputs(tmp_path)
    code = _run(tmp_path, QUERY, "--input", f"Input={tmp_path / 'a.json'}", "--input", f"Other={tmp_path / 'a.csv'}",
                "--reference", f"Rules={tmp_path / 'a.json'}")
    assert code == 0
    err = capsys.readouterr().err
    assert "the query does not read input 'Other'; its file is ignored" in err
    assert "the query does not read input 'Rules'" in err
    assert "'Input'" not in err
    assert json.loads((tmp_path / "out" / "counts.json").read_text()) == EXPECTED


def test_dropped_late_and_error_counts_are_reported(tmp_path, capsys) -> None:
    events = [{"Make": "A", "Time": "2024-01-01T00:00:30Z", "arrived": "2024-01-01T00:00:30Z", "v": 1},
              {"Make": "A", "Time": "2024-01-01T00:00:01Z", "arrived": "2024-01-01T00:00:31Z", "v": 2},
              {"Make": "B", "Time": "not a time", "arrived": "2024-01-01T00:00:32Z", "v": 3}]
    (tmp_path / "e.json").write_text(json.dumps(events))
    code = _run(tmp_path, QUERY, "--input", f"Input={tmp_path / 'e.json'}", "--arrival-time-field", "arrived",
                "--out-of-order-tolerance", "0", "--late-arrival-tolerance", "5", "--out-of-order-action", "drop")
    assert code == 0
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "events in" in x)
    assert line.startswith("headwater: 3 events in: 2 dropped")
    assert "1 conversion errors" in line
    assert "TIMESTAMP BY" in err or "not a time" in err


def test_no_warning_when_every_input_is_read_and_on_time(tmp_path, capsys) -> None:
    _write_inputs(tmp_path)
    assert _run(tmp_path, QUERY, "--input", f"Input={tmp_path / 'a.json'}") == 0
    assert capsys.readouterr().err == ""


def test_an_input_file_that_does_not_read_is_named_in_the_error(tmp_path, capsys) -> None:
    """Not JSON (one line: before, the JSON-lines fallback recursed until RecursionError), a bad
    JSON line, and an integer past bigint's 64 bits (the reference: InputDeserializationError)."""
    cases = {"cut.json": ('[{"Make": "A"},', "not JSON"),
             "lines.jsonl": ('{"Make": "A"}\n{"Make": \n', "JSON line 2: not JSON"),
             "big.json": ('[{"Make": "A", "v": 9223372036854775808}]', "the integer 9223372036854775808 is outside"
                                                                      " the bigint range")}
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        assert _run(tmp_path, QUERY, "--input", f"Input={tmp_path / name}") == 1
        err = capsys.readouterr().err
        assert f"{tmp_path / name}: InputDeserializationError: {message}" in err, err
        assert "Recursion" not in err and "Traceback" not in err


def test_a_file_is_read_as_partition_0(tmp_path) -> None:
    """PartitionId (column and metadata) is 0 for events of a file, as from a hub with one
    partition (it was NULL); a payload field of that name wins, as in a job."""
    events = [{"v": 1, "Time": "2024-01-01T00:00:01Z"}, {"v": 2, "Time": "2024-01-01T00:00:02Z", "PartitionId": 3}]
    (tmp_path / "e.json").write_text(json.dumps(events))
    query = ("SELECT v, PartitionId AS p, GetMetadataPropertyValue(Input, '[EventHub].[PartitionId]') AS m\n"
             "FROM Input TIMESTAMP BY Time PARTITION BY PartitionId")
    assert _run(tmp_path, query, "--input", f"Input={tmp_path / 'e.json'}") == 0
    rows = json.loads((tmp_path / "out" / "output.json").read_text())
    assert rows == [{"v": 1, "p": 0, "m": 0}, {"v": 2, "p": 3, "m": 3}]
    grouped = ("SELECT PartitionId, COUNT(*) AS n FROM Input TIMESTAMP BY Time PARTITION BY PartitionId\n"
               "GROUP BY PartitionId, TumblingWindow(second, 10)")
    (tmp_path / "e.json").write_text(json.dumps(events[:1] * 3))
    assert _run(tmp_path, grouped, "--input", f"Input={tmp_path / 'e.json'}") == 0
    assert json.loads((tmp_path / "out" / "output.json").read_text()) == [{"PartitionId": 0, "n": 3}]
