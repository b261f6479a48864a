"""`headwater job diff`'s comparison of two runs' outputs, with known rows."""

from __future__ import annotations

from headwater.cli.job_ops import diff_outputs


def test_rows_are_added_removed_or_changed_by_their_text_and_time_columns():
    before = {"out": [{"w": "10:00", "zone": "a", "n": 3}, {"w": "10:00", "zone": "b", "n": 1},
                      {"w": "10:00", "zone": "c", "n": 2}, {"w": "10:00", "zone": "c", "n": 2}]}
    after = {"out": [{"w": "10:00", "zone": "a", "n": 4}, {"w": "10:00", "zone": "c", "n": 2},
                     {"w": "10:00", "zone": "d", "n": 5}],
             "alerts": [{"zone": "d"}]}
    d = diff_outputs(before, after)
    out = d["out"]
    assert (out["rows_before"], out["rows_after"]) == (4, 3)
    assert out["changed"] == [{"key": {"w": "10:00", "zone": "a"}, "columns": {"n": [3, 4]}}]
    assert out["added"] == [{"w": "10:00", "zone": "d", "n": 5}]
    # b is gone, and one of the two identical c rows (rows are a multiset)
    assert sorted(r["zone"] for r in out["removed"]) == ["b", "c"]
    assert d["alerts"] == {"rows_before": 0, "rows_after": 1, "added": [{"zone": "d"}], "removed": [],
                           "changed": []}


def test_identical_outputs_differ_in_nothing_whatever_the_order():
    rows = [{"w": "10:00", "zone": z, "n": i, "ok": True} for i, z in enumerate("abc")]
    d = diff_outputs({"out": rows}, {"out": list(reversed(rows))})
    assert d["out"]["added"] == d["out"]["removed"] == d["out"]["changed"] == []


def test_rows_without_a_text_key_are_only_added_or_removed():
    d = diff_outputs({"out": [{"n": 1}]}, {"out": [{"n": 2}]})
    assert (d["out"]["added"], d["out"]["removed"], d["out"]["changed"]) == ([{"n": 2}], [{"n": 1}], [])


def test_numbers_compare_by_value_when_a_column_becomes_a_float():
    """A fix that declares a column float: 12 -> 12.0 is no change; 20 -> 34.25 is one."""
    before = {"out": [{"w": "10:00", "zone": "a", "fares": 12}, {"w": "10:00", "zone": "b", "fares": 20}]}
    after = {"out": [{"w": "10:00", "zone": "a", "fares": 12.0}, {"w": "10:00", "zone": "b", "fares": 34.25}]}
    out = diff_outputs(before, after)["out"]
    assert out["changed"] == [{"key": {"w": "10:00", "zone": "b"}, "columns": {"fares": [20, 34.25]}}]
    assert out["added"] == out["removed"] == []
