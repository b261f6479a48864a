"""The plugin API: every hook documented and exercised; duplicates, blocking, misspellings."""

from __future__ import annotations

import argparse
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from headwater import hookimpl, hookspecs
from headwater.errors import PluginError
from headwater.pluginmanager import get_plugin_manager

ROOT = Path(__file__).resolve().parents[2]
HOOKS = sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(fn, "headwater_spec"))


def test_hooks_are_the_designed_ones():
    assert HOOKS == ["register_commands", "register_functions", "register_serializers",
                     "register_sinks", "register_windows"]


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
    doc = (ROOT / "docs" / "plugin_hooks.md").read_text()
    assert f"## {hook}" in doc, f"docs/plugin_hooks.md has no section for {hook}"


@dataclass(frozen=True)
class Named:
    name: str
    aliases: tuple[str, ...] = ()
    namespace: str = ""


class Everything:
    """A plugin implementing every hook, as a third party would."""

    @hookimpl
    def register_windows(self, register):
        register(Named("TestWindow", aliases=("Testy",)))

    @hookimpl
    def register_functions(self, register):
        register(Named("double", namespace="UDF"))

    @hookimpl
    def register_sinks(self, register):
        register(Named("test-sink"))

    @hookimpl
    def register_serializers(self, register):
        register(Named("test-format"))

    @hookimpl
    def register_commands(self, cli):
        p = cli.add_parser("hello-plugin")
        p.set_defaults(func=lambda args: 7)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_reaches_the_manager(hook):
    pm = get_plugin_manager([("everything", Everything())], load_entrypoints=False).collect()
    if hook == "register_windows":
        assert pm.windows.get("testy").name == "TestWindow"
        assert pm.windows.owners["testwindow"] == "everything"
    elif hook == "register_functions":
        assert pm.functions.get("DOUBLE", namespace="udf").name == "double"
    elif hook == "register_sinks":
        assert "test-sink" in pm.sinks
    elif hook == "register_serializers":
        assert "TEST-FORMAT" in pm.serializers
    elif hook == "register_commands":
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        pm.hook.register_commands(cli=sub)
        args = parser.parse_args(["hello-plugin"])
        assert args.func(args) == 7
    assert pm.provides()["everything"]


def test_duplicate_names_are_an_error_naming_both_plugins():
    class Again:
        @hookimpl
        def register_sinks(self, register):
            register(Named("test-sink"))

    pm = get_plugin_manager([("first", Everything()), ("second", Again())], load_entrypoints=False)
    with pytest.raises(PluginError) as info:
        pm.collect()
    assert "'first'" in str(info.value) and "'second'" in str(info.value)


def test_misspelt_hook_fails_at_load():
    class Typo:
        @hookimpl
        def register_window(self, register):  # missing "s"
            pass

    with pytest.raises(Exception, match="register_window"):
        get_plugin_manager([("typo", Typo())], load_entrypoints=False)


def test_disabled_plugins_are_blocked(monkeypatch):
    monkeypatch.setenv("HEADWATER_DISABLED_PLUGINS", "headwater.plugins.windows, other")
    pm = get_plugin_manager(load_entrypoints=False)
    assert pm.is_blocked("headwater.plugins.windows")
    assert pm.get_plugin("headwater.plugins.windows") is None


def test_entry_points_are_loaded_unless_autoload_is_off(monkeypatch):
    """A fake distribution with a `headwater` entry point is discovered (pytest's way of testing this)."""
    import importlib.metadata as md

    plugin_module = ModuleType("fake_plugin")  # what an entry point loads
    plugin_module.register_sinks = Everything().register_sinks

    class EntryPoint:
        name, group, value = "fake", "headwater", "fake_plugin"

        def load(self):
            return plugin_module

    class Dist:
        metadata = {"name": "fake-headwater-plugin"}
        version = "1.0"
        entry_points = [EntryPoint()]

        @property
        def name(self):
            return "fake-headwater-plugin"

    monkeypatch.setattr(md, "distributions", lambda: [Dist()])
    pm = get_plugin_manager()
    assert pm.get_plugin("fake") is plugin_module
    assert "test-sink" in pm.collect().sinks
    monkeypatch.setenv("HEADWATER_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert get_plugin_manager().get_plugin("fake") is None


def test_an_implementation_under_another_name_is_used():
    """`@hookimpl(specname=...)`: the function's own name is not the hook's (pluggy calls it)."""

    class Renamed:
        @hookimpl(specname="register_sinks")
        def add_my_sinks(self, register):
            register(Named("renamed-sink"))

        @hookimpl(specname="register_sinks")
        def add_more_sinks(self, register):  # a second implementation of the same hook
            register(Named("renamed-sink-2"))

    pm = get_plugin_manager([("renamed", Renamed())], load_entrypoints=False).collect()
    assert pm.sinks.owners["renamed-sink"] == "renamed"
    assert pm.sinks.owners["renamed-sink-2"] == "renamed"
    assert pm.provides()["renamed"] == {"sinks": ["renamed-sink", "renamed-sink-2"]}


def test_a_hook_wrapper_sees_every_registration_call():
    seen: list[list[str]] = []

    class Watcher:
        @hookimpl(wrapper=True)
        def register_windows(self, register):
            before = len(pm.windows.unique())
            result = yield  # the implementations of this call run here
            seen.append([k.name for k in pm.windows.unique()[before:]])
            return result

    pm = get_plugin_manager([("everything", Everything()), ("watcher", Watcher())], load_entrypoints=False)
    traced: list[str] = []
    pm.trace.root.setwriter(traced.append)
    undo = pm.enable_tracing()
    try:
        pm.collect()
    finally:
        undo()
    # one call per implementing plugin (the third party's, then the builtins'), each wrapped
    assert len(seen) == 2
    assert seen[0] == ["TestWindow"] and "TumblingWindow" in seen[1]
    assert sum("register_windows" in line for line in traced) >= 2  # pluggy's tracing saw them too


def test_tryfirst_decides_the_registration_order():
    class Early:
        @hookimpl(tryfirst=True)
        def register_sinks(self, register):
            register(Named("early-sink"))

    class Late:
        @hookimpl
        def register_sinks(self, register):
            register(Named("late-sink"))

    pm = get_plugin_manager([("early", Early()), ("late", Late())], load_entrypoints=False).collect()
    names = [k.name for k in pm.sinks.unique()]
    # pluggy calls the last registered first, except a tryfirst implementation
    assert names[:2] == ["early-sink", "late-sink"] and "memory" in names[2:]
