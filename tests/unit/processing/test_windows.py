"""Builtin window logic, tested directly (Bytewax style). Times in seconds * 1e6.

``|`` marks a window end (inclusive), ``x`` an event.
"""

from __future__ import annotations

import pytest

from headwater.pluginmanager import get_plugin_manager
from headwater.windows import WindowArgs

S = 1_000_000


@pytest.fixture(scope="module")
def kinds():
    return get_plugin_manager(load_entrypoints=False).collect().windows


def build(kinds, name, *positional, **named):
    kind = kinds.get(name)
    cfg = kind.configure(WindowArgs(tuple(p * S for p in positional), {k: v * S for k, v in named.items()}))
    return cfg.build()


def test_tumbling_end_inclusive(kinds) -> None:
    # 0        |10        |20
    #   x     x x          x
    logic = build(kinds, "TumblingWindow", 10)
    assert [logic.assign(t * S) for t in (2, 9, 10, 20)] == [[10 * S], [10 * S], [10 * S], [20 * S]]
    assert logic.close_for(10 * S) == []          # an event at 10 may still come
    assert logic.close_for(10 * S + 1) == [(10 * S, 10 * S)]
    assert logic.close_for(100 * S) == [(20 * S, 20 * S)]


def test_tumbling_offset_and_alias(kinds) -> None:
    # Offset(millisecond, -1): windows end at 9.999, 19.999
    logic = build(kinds, "Tumbling", 10, offset=-0.001)
    assert logic.assign(10 * S) == [20 * S - 1000]
    assert logic.assign(10 * S - 1000) == [10 * S - 1000]


def test_hopping_each_event_in_size_over_hop_windows(kinds) -> None:
    # size 10, hop 5: x@12 is in (5,15] and (10,20]
    logic = build(kinds, "HoppingWindow", 10, 5)
    assert logic.assign(12 * S) == [15 * S, 20 * S]
    assert logic.assign(15 * S) == [15 * S, 20 * S]
    restored = kinds.get("Hopping").configure(WindowArgs((10 * S, 5 * S))).build(logic.snapshot())
    assert restored.close_for(16 * S) == [(15 * S, 15 * S)]


def test_sliding_outputs_on_entry_and_exit(kinds) -> None:
    # size 5: x@34 x@38 x@42 -> instants 34 38 39 42 43 (47 too, but that window is empty)
    logic = build(kinds, "SlidingWindow", 5)
    for t in (34, 38, 42):
        assert logic.assign(t * S) == []
    assert [w for w, _ in logic.close_for(44 * S)] == [t * S for t in (34, 38, 39, 42, 43)]
    assert logic.bounds(39 * S) == (34 * S, 39 * S)


def test_session_timeout_and_max_duration_checkpoints(kinds) -> None:
    # timeout 5, max 10: x1 x4 x7 x11 x14 x17 x19 |20 (checkpoint: length 19 > 10) x22 ... |27
    logic = build(kinds, "SessionWindow", 5, 10)
    ids = [logic.assign(t * S)[0] for t in (1, 4, 7, 11, 14, 17, 19, 22)]
    assert ids == [1 * S] * 7 + [22 * S]
    assert logic.close_for(100 * S) == [(1 * S, 20 * S), (22 * S, 27 * S)]


def test_session_gap_closes(kinds) -> None:
    # timeout 5: x1 x3 |8   x20 |25
    logic = build(kinds, "Session", 5, 60)
    for t in (1, 3, 20):
        logic.assign(t * S)
    assert logic.close_for(21 * S) == [(1 * S, 8 * S)]
    assert logic.close_for(26 * S) == [(20 * S, 25 * S)]


def test_snapshot_window_groups_identical_times(kinds) -> None:
    logic = build(kinds, "SnapshotWindow")
    assert logic.assign(5) == [5] and logic.assign(5) == [5] and logic.assign(7) == [7]
    assert logic.close_for(6) == [(5, 5)]


@pytest.mark.parametrize("name,args,message", [
    ("TumblingWindow", WindowArgs((0,)), "must be positive"),
    ("TumblingWindow", WindowArgs((8 * 86400 * S,)), "at most 7 days"),
    ("HoppingWindow", WindowArgs((10 * S,)), "hop"),
    ("SessionWindow", WindowArgs((10 * S, 5 * S)), "at least the timeout"),
    ("TumblingWindow", WindowArgs(extra=(10,)), "time unit"),
])
def test_bad_arguments(kinds, name, args, message) -> None:
    with pytest.raises(ValueError, match=message):
        kinds.get(name).configure(args)


@pytest.mark.parametrize("unit,us", [("day", 86_400 * S), ("dd", 86_400 * S), ("d", 86_400 * S), ("hour", 3600 * S),
                                     ("hh", 3600 * S), ("minute", 60 * S), ("mi", 60 * S), ("n", 60 * S),
                                     ("second", S), ("ss", S), ("s", S), ("millisecond", 1000), ("ms", 1000),
                                     ("microsecond", 1), ("mcs", 1), ("SECOND", S)])
def test_every_time_unit_in_both_forms(unit, us) -> None:
    from headwater.services.processing.plan.binder import window_args
    from headwater.services.processing.sql.parser import parse

    for text in (f"TumblingWindow({unit}, 2)", f"Tumbling(Duration({unit}, 2))"):
        q = parse(f"SELECT COUNT(*) FROM i GROUP BY {text}")
        call = q.statements[0].selects[0].group_by[0]
        args = window_args(call)
        assert (args.positional or (args.named["duration"],))[0] == 2 * us


# -- a window plugin's batch hook ---------------------------------------------------------
class _EveryN:
    """Window k holds events k*n+1 .. (k+1)*n, emitted once its last event is below the
    watermark. ``batch``: the plugin has ``assign_batch``; the engine must call it (one call
    per batch) instead of ``assign`` per event, with the same rows."""

    def __init__(self, name: str, batch: bool, calls: dict) -> None:
        import numpy as np

        from headwater.windows import WindowConfig, WindowKind, WindowLogic

        class Logic(WindowLogic):
            def __init__(self, n, state=None) -> None:
                self.n = n
                self.count, self.full = (state["count"], [tuple(f) for f in state["full"]]) if state else (0, [])

            def assign(self, ts):
                calls["assign"] += 1
                wid = self.count // self.n
                self.count += 1
                if self.count % self.n == 0:
                    self.full.append((wid, ts))
                return [wid]

            def close_for(self, watermark):
                done = [f for f in self.full if f[1] < watermark]
                self.full = [f for f in self.full if f[1] >= watermark]
                return done

            def snapshot(self):
                return {"count": self.count, "full": list(self.full)}

        class BatchLogic(Logic):
            def assign_batch(self, ts):
                calls["assign_batch"] += 1
                seq = np.arange(self.count, self.count + len(ts))
                wids = seq // self.n
                ends = np.nonzero((seq + 1) % self.n == 0)[0]
                self.full.extend((int(wids[i]), int(ts[i])) for i in ends)
                self.count += len(ts)
                return list(range(len(ts))), wids.tolist()

        class Config(WindowConfig):
            def __init__(self, n) -> None:
                self.n = n

            def build(self, resume_state=None):
                return (BatchLogic if batch else Logic)(self.n, resume_state)

        class Kind(WindowKind):
            def configure(self, args):
                return Config(args.extra[0])

        Kind.name = name
        self.kind = Kind()


def test_a_window_plugins_batch_hook_is_used_and_gives_its_row_hooks_rows() -> None:
    from headwater import hookimpl
    from headwater.pluginmanager import get_plugin_manager
    from headwater.services.processing.engine import compile_query

    calls = {"assign": 0, "assign_batch": 0}

    class Plugin:
        @hookimpl
        def register_windows(self, register) -> None:
            register(_EveryN("EveryNBatch", True, calls).kind)
            register(_EveryN("EveryNRow", False, calls).kind)

    pm = get_plugin_manager([("everyn", Plugin())], load_entrypoints=False).collect()
    events = [{"v": i, "t": f"2024-01-01T00:00:{i % 60:02d}Z", "d": i // 60} for i in range(600)]
    events.sort(key=lambda e: (e["t"], e["v"]))
    rows = {}
    for kind in ("EveryNBatch", "EveryNRow"):
        compiled = compile_query(f"SELECT COUNT(*) AS n, SUM(v) AS s, System.Timestamp() AS te FROM i "
                                 f"TIMESTAMP BY t GROUP BY {kind}(7)", pm)
        rt = compiled.runtime()
        assert rt.mode == "vectorised"
        before = dict(calls)
        for lo in range(0, len(events), 100):
            rt.feed("i", events[lo:lo + 100])
        rt.flush()
        rows[kind] = sorted(r["s"] for r in rt.take()["output"])
        used = {k: calls[k] - before[k] for k in calls}
        if kind == "EveryNBatch":
            assert used["assign"] == 0 and 0 < used["assign_batch"] <= 20, used  # per batch, not per event
        else:
            assert used["assign"] == len(events), used  # the row hook as the fallback, per event
    assert rows["EveryNBatch"] == rows["EveryNRow"] and len(rows["EveryNRow"]) == 600 // 7
