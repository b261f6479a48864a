"""The typed plugin contracts: the engine reads what a plugin declares, never its name.

A third-party window kind that declares an ``AlignedShape`` and a third-party aggregate
that declares an ``AggregateKind`` run on the engine's column path (their per-event
logic raises, so a name-matched or row path would fail); a serializer with ``magic``
bytes reads its files whatever they are called. docs/plugin_hooks.md names every
member of every contract class.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from headwater import functions, hookimpl, serializers, sinks, windows
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.local import decode_events
from headwater.services.processing.testing import run_query

ROOT = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class EveryConfig(windows.WindowConfig):
    size: int

    def build(self, resume_state: Any = None) -> windows.WindowLogic:
        raise AssertionError("the engine should compute this window from its shape")

    def columnar(self) -> windows.WindowShape:
        return windows.AlignedShape(self.size, self.size)


class Every(windows.WindowKind):
    name = "Every"

    def configure(self, args: windows.WindowArgs) -> windows.WindowConfig:
        return EveryConfig(args.positional[0])


class Total(functions.AggregateFunction):
    name, columnar = "Total", functions.AggregateKind.SUM

    def create(self) -> Any:
        raise AssertionError("the engine should compute this aggregate from its kind")


class ThirdParty:
    @hookimpl
    def register_windows(self, register):
        register(Every())

    @hookimpl
    def register_functions(self, register):
        register(Total())


EVENTS = [{"k": "a", "v": i, "t": f"2024-01-01T00:00:{i:02d}Z"} for i in range(0, 40, 3)]


def _run(sql: str, pm) -> list[dict]:
    return run_query(sql, {"input": EVENTS}, pm=pm)["output"]


def test_a_third_party_window_and_aggregate_run_from_their_declared_shape_and_kind():
    pm = get_plugin_manager([("third-party", ThirdParty())], load_entrypoints=False).collect()
    theirs = _run("SELECT k, Total(v) AS s INTO output FROM input TIMESTAMP BY t GROUP BY k, Every(second, 10)", pm)
    ours = _run("SELECT k, SUM(v) AS s INTO output FROM input TIMESTAMP BY t GROUP BY k, TumblingWindow(second, 10)",
                pm)
    assert theirs == ours and len(ours) >= 3


class Lines(serializers.Serializer):
    name, magic, file_suffixes = "lines", b"LINES\n", (".lines",)

    def decode(self, bodies, content_type="", on_error=None):
        return [{"line": line} for body in bodies for line in body.decode().splitlines()[1:]]

    def encode(self, rows):
        return [b"LINES\n" + str(r["line"]).encode() for r in rows]


class LinesPlugin:
    @hookimpl
    def register_serializers(self, register):
        register(Lines())


def test_a_serializer_with_magic_bytes_reads_its_files_whatever_their_name():
    pm = get_plugin_manager([("lines", LinesPlugin())], load_entrypoints=False)
    assert decode_events(b"LINES\none\ntwo", "data.txt", pm) == [{"line": "one"}, {"line": "two"}]
    assert decode_events(b'[{"a": 1}]', "data.json", pm) == [{"a": 1}]


def test_a_serializer_gets_one_content_type_per_body_from_decode_with_index():
    seen: list[str] = []

    class Typed(Lines):
        def decode(self, bodies, content_type="", on_error=None):
            seen.append(content_type)
            return super().decode(bodies, content_type, on_error)

    rows, index = Typed().decode_with_index([b"LINES\na", b"LINES\nb\nc"], ["t/1", "t/2"])
    assert seen == ["t/1", "t/2"] and index == [0, 1, 1] and [r["line"] for r in rows] == ["a", "b", "c"]


CONTRACTS = [
    windows.WindowKind, windows.WindowConfig, windows.WindowLogic, windows.WindowArgs, windows.AlignedShape,
    windows.SlidingShape, windows.SessionShape, windows.SnapshotShape,
    functions.ScalarFunction, functions.AggregateFunction, functions.Operator, functions.AggregateKind,
    serializers.Serializer,
    sinks.SinkKind, sinks.Sink, sinks.ReadableSink, sinks.SinkSpec, sinks.Checkpoint, sinks.OutputMode,
    sinks.ErrorPolicy, sinks.SinkBackpressureError, sinks.SinkTransientError, sinks.SinkRowError,
    sinks.SinkConfigError,
]


def _members(cls) -> list[str]:
    if issubclass(cls, functions.AggregateKind | sinks.OutputMode | sinks.ErrorPolicy):
        return [m.name for m in cls]
    names = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) else []
    for klass in cls.__mro__:
        if klass.__module__.split(".")[0] != "headwater" or issubclass(klass, BaseException) and \
                klass.__module__ == "headwater.errors":
            continue
        names += [n for n in vars(klass) if not n.startswith("_")]
        names += [n for n in getattr(klass, "__annotations__", {}) if not n.startswith("_")]
    if issubclass(cls, BaseException):
        names += [n for n in inspect.signature(cls.__init__).parameters if n not in ("self", "message")]
    return sorted(set(names))


@pytest.mark.parametrize("cls", CONTRACTS, ids=lambda c: c.__name__)
def test_docs_plugin_hooks_is_the_whole_contract(cls):
    doc = (ROOT / "docs" / "plugin_hooks.md").read_text()
    assert f"`{cls.__name__}`" in doc or f"{cls.__name__}(" in doc, f"{cls.__name__} is not in docs/plugin_hooks.md"
    missing = [n for n in _members(cls) if f"`{n}" not in doc and f".{n}" not in doc and f" {n}(" not in doc]
    assert not missing, f"docs/plugin_hooks.md does not describe {cls.__name__}: {missing}"
