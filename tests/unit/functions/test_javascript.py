"""JavaScript UDFs and UDAs (plugins/javascript.py): Stream Analytics' shapes, value types,
the sandbox (no files, no network, time and memory budgets) and the CLI's ``--udf NAME=FILE.js``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from headwater.cli.main import main as headwater_main
from headwater.errors import HeadwaterError
from headwater.pluginmanager import get_plugin_manager
from headwater.plugins.javascript import JavaScriptError, js_function, js_plugin
from headwater.services.processing.testing import run_query

# The documented examples (Stream Analytics "JavaScript user-defined functions" / "aggregates").
UDF_HEX = "function main(hexValue) {\n  return parseInt(hexValue, 16);\n}"
UDA_WAVG = """// Sample UDA which calculates Time-Weighted Average of incoming values.
function main() {
    this.init = function () {
        this.totalValue = 0.0;
        this.totalWeight = 0.0;
    }

    this.accumulate = function (value, timestamp) {
        this.totalValue += value.level * value.weight;
        this.totalWeight += value.weight;
    }

    // Uncomment below for more efficient windowing
    this.deaccumulate = function (value, timestamp) {
        this.totalValue -= value.level * value.weight;
        this.totalWeight -= value.weight;
    }

    this.deaccumulateState = function (otherState){
        this.totalValue -= otherState.totalValue;
        this.totalWeight -= otherState.totalWeight;
    }

    this.computeResult = function () {
        if(this.totalValue == 0) {
            return 0;
        }
        else {
            return this.totalValue / this.totalWeight;
        }
    }
}"""


UDA_SUM = ("function main() { this.init = function () { this.s = 0; };"
           " this.accumulate = function (v, t) { this.s += v; }; this.computeResult = function () { return this.s; }; }")


def _pm(**funcs):
    return get_plugin_manager([("js", js_plugin(funcs))], load_entrypoints=False).collect()


def test_udf_documented_example_through_the_engine() -> None:
    out = run_query("SELECT id, UDF.hex2Int(h) AS n FROM Input",
                    {"Input": [{"id": 1, "h": "1F"}, {"id": 2, "h": "zz"}, {"id": 3, "h": None}]},
                    pm=_pm(hex2Int=UDF_HEX))
    assert out["output"] == [{"id": 1, "n": 31}, {"id": 2, "n": None}, {"id": 3, "n": None}]


def test_uda_documented_example_through_a_tumbling_window() -> None:
    events = [{"t": "2024-01-01T00:00:01Z", "v": {"level": 10, "weight": 1}},
              {"t": "2024-01-01T00:00:02Z", "v": {"level": 20, "weight": 3}},
              {"t": "2024-01-01T00:00:11Z", "v": {"level": 5, "weight": 2}}]
    out = run_query("SELECT System.Timestamp() AS w, UDA.wavg(v) AS avg FROM Input TIMESTAMP BY t "
                    "GROUP BY TumblingWindow(second, 10)", {"Input": events}, pm=_pm(wavg=UDA_WAVG))
    assert out["output"] == [{"w": "2024-01-01T00:00:10.0000000Z", "avg": 17.5},
                             {"w": "2024-01-01T00:00:20.0000000Z", "avg": 5}]


def test_uda_accumulate_gets_the_event_timestamp() -> None:
    uda = ("function main() { this.init = function () { this.ts = []; };"
           " this.accumulate = function (v, timestamp) { this.ts.push(timestamp.toISOString() + '=' + v); };"
           " this.computeResult = function () { return this.ts.join(','); }; }")
    out = run_query("SELECT UDA.stamps(v) AS s FROM Input TIMESTAMP BY t GROUP BY TumblingWindow(second, 10)",
                    {"Input": [{"t": "2024-01-01T00:00:01.2345678Z", "v": 1}, {"t": "2024-01-01T00:00:02Z", "v": 2}]},
                    pm=_pm(stamps=uda))
    assert out["output"] == [{"s": "2024-01-01T00:00:01.234Z=1,2024-01-01T00:00:02.000Z=2"}]


def test_values_cross_with_their_types() -> None:
    f = js_function("f", "function main(d, r, a, s, b, n) {"
                         " return {year: d.getUTCFullYear(), later: new Date(d.getTime() + 1500),"
                         " x: r.x, len: a.length, s: s + '!', b: !b, n: n, half: 1 / 2, big: 9007199254740993,"
                         " nan: NaN, u: undefined}; }")
    got = f.fn(datetime(2021, 5, 6, tzinfo=UTC), {"x": [1, 2]}, [1, 2, 3], "hé", True, None)
    assert got == {"year": 2021, "later": datetime(2021, 5, 6, 0, 0, 1, 500000, tzinfo=UTC), "x": [1, 2],
                   "len": 3, "s": "hé!", "b": False, "n": None, "half": 0.5, "big": 9007199254740992,
                   "nan": None}
    assert js_function("g", "function main() { return 1.5e300 * 1e10; }").fn() is None  # Infinity


def test_sandbox_has_no_files_network_or_process() -> None:
    probe = js_function("p", "function main() { return [typeof require, typeof std, typeof os, typeof fetch,"
                             " typeof XMLHttpRequest, typeof process, typeof print].join(','); }")
    assert set(probe.fn().split(",")) == {"undefined"}
    imp = js_function("i", "var r = 'pending';"
                           " import('/etc/passwd').then(function () { r = 'loaded'; }, function (e) { r = 'refused'; });"
                           " function main() { return r; }")
    assert imp.fn() in ("pending", "refused")


def test_time_budget_stops_a_runaway_call(monkeypatch) -> None:
    import headwater.plugins.javascript as J

    monkeypatch.setattr(J, "TIME_LIMIT_S", 0.2)
    J._local.contexts = {}
    f = js_function("spin", "function main() { while (true) {} }")
    with pytest.raises(JavaScriptError, match="time budget"):
        f.fn()
    # the interpreter stays usable for the next event
    assert js_function("ok", "function main(x) { return x + 1; }").fn(1) == 2
    J._local.contexts = {}


def test_memory_and_stack_limits() -> None:
    f = js_function("hog", "function main() { var a = []; while (true) { a.push(new Array(100000).fill(1)); } }")
    with pytest.raises(JavaScriptError):
        f.fn()
    with pytest.raises(JavaScriptError, match="stack overflow"):
        js_function("rec", "function main() { return main(); }").fn()


def test_uda_and_collect_as_analytic_functions() -> None:
    events = [{"t": f"2024-01-01T00:00:0{i}Z", "k": k, "v": v} for i, (k, v) in enumerate([("a", 1), ("b", 5), ("a", 2)])]
    out = run_query("SELECT v, UDA.total(v) OVER (PARTITION BY k LIMIT DURATION(second, 10)) AS running,"
                    " Collect(v) OVER (LIMIT DURATION(second, 10)) AS seen FROM Input TIMESTAMP BY t",
                    {"Input": events}, pm=_pm(total=UDA_SUM))["output"]
    assert [(r["running"], r["seen"]) for r in out] == [(1, [1]), (5, [1, 5]), (3, [1, 5, 2])]


def test_entry_point_forms() -> None:
    assert js_function("a", "var main = function (x) { console.log(x); return x * 3; };").fn(2) == 6
    assert js_function("b", "function helper(x) { return x + 1; }\nfunction main(x) { return helper(x); }").fn(1) == 2
    assert js_function("Hex", "function hex(h) { return parseInt(h, 16); }").fn("a") == 10
    with pytest.raises(JavaScriptError, match="must define function main"):
        js_function("c", "function f(x) { return x; }\nfunction g(x) { return x; }")


def test_errors_name_the_function() -> None:
    with pytest.raises(JavaScriptError, match="does not compile"):
        js_function("bad", "function main( { return 1; }")
    with pytest.raises(JavaScriptError, match="javascript only"):
        js_function("py", "def main(): pass", language="python")
    thrower = "function main() { throw new Error('boom'); }"
    with pytest.raises(HeadwaterError, match="UDF.thrower.*boom"):
        run_query("SELECT UDF.thrower() AS x FROM Input", {"Input": [{"a": 1}]}, pm=_pm(thrower=thrower))


def test_cli_udf_js_file(tmp_path, capsys) -> None:
    (tmp_path / "q.asaql").write_text("SELECT UDF.hex(h) AS n, UDA.wavg(v) AS a FROM Input "
                                      "TIMESTAMP BY t GROUP BY h, TumblingWindow(minute, 1)")
    (tmp_path / "hex.js").write_text(UDF_HEX)
    (tmp_path / "wavg.js").write_text(UDA_WAVG)
    (tmp_path / "in.json").write_text(json.dumps([{"t": "2024-01-01T00:00:01Z", "h": "ff",
                                                   "v": {"level": 2, "weight": 1}}]))
    code = headwater_main(["query", "test", "--query", str(tmp_path / "q.asaql"), "--input",
                           f"Input={tmp_path / 'in.json'}", "--udf", f"hex={tmp_path / 'hex.js'}",
                           "--udf", f"wavg={tmp_path / 'wavg.js'}", "--output-dir", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "output.json").read_text()) == [{"n": 255, "a": 2}]
    (tmp_path / "broken.js").write_text("function main( {")
    code = headwater_main(["query", "test", "--query", str(tmp_path / "q.asaql"), "--input",
                           f"Input={tmp_path / 'in.json'}", "--udf", f"hex={tmp_path / 'broken.js'}",
                           "--output-dir", str(tmp_path / "out2")])
    assert code == 1 and "does not compile" in capsys.readouterr().err
