"""The plugin manager: builtins first, then third-party entry points.

Builtins are ordinary plugins listed in :data:`DEFAULT_PLUGINS` and registered
exactly as a third-party package's module is (the pytest / tox way), so a
plugin author takes the same path the builtins take.

Environment:

``HEADWATER_DISABLE_PLUGIN_AUTOLOAD``
    when set (non-empty), entry points of the ``headwater`` group are not loaded.
``HEADWATER_DISABLED_PLUGINS``
    comma-separated plugin names to block (builtins or entry points).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import pluggy

from headwater import hookspecs
from headwater.errors import PluginError

__all__ = [
    "DEFAULT_PLUGINS",
    "NamedRegistry",
    "PluginManager",
    "get_plugin_manager",
]

#: Builtin plugin modules, registered before entry points, in this order.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "headwater.plugins.windows",
    "headwater.plugins.functions",
    "headwater.plugins.strings",
    "headwater.plugins.geospatial",
    "headwater.plugins.statistics",
    "headwater.plugins.anomaly",
    "headwater.plugins.serializers",
    "headwater.plugins.avro",
    "headwater.plugins.sinks",
)

T = TypeVar("T")


@dataclass
class NamedRegistry(Generic[T]):
    """Items registered by name (case-insensitive), remembering who registered each."""

    what: str
    items: dict[str, T] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    _current: str = "?"

    def bind(self, plugin_name: str) -> Callable[[T], None]:
        def register(item: T) -> None:
            self.add(item, plugin_name)

        return register

    def add(self, item: T, plugin_name: str) -> None:
        names = [item.name]
        names += list(getattr(item, "aliases", ()) or ())
        namespace = getattr(item, "namespace", "") or ""
        for name in names:
            key = self.key(name, namespace)
            if key in self.items:
                raise PluginError(
                    f"{self.what} {name!r} is registered twice: by plugin "
                    f"{self.owners[key]!r} and by plugin {plugin_name!r}"
                )
            self.items[key] = item
            self.owners[key] = plugin_name

    @staticmethod
    def key(name: str, namespace: str = "") -> str:
        return f"{namespace}.{name}".lower() if namespace else name.lower()

    def get(self, name: str, namespace: str = "") -> T | None:
        return self.items.get(self.key(name, namespace))

    def __contains__(self, name: str) -> bool:
        return self.key(name) in self.items

    def unique(self) -> list[T]:
        """Each registered item once (aliases collapsed), in registration order."""
        seen: dict[int, T] = {}
        for item in self.items.values():
            seen.setdefault(id(item), item)
        return list(seen.values())

    def by_plugin(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for item in self.unique():
            key = self.key(item.name, getattr(item, "namespace", "") or "")
            out.setdefault(self.owners[key], []).append(
                (f"{item.namespace}." if getattr(item, "namespace", "") else "") + item.name
            )
        return out


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the registries the hooks fill."""

    def __init__(self) -> None:
        super().__init__("headwater")
        self.add_hookspecs(hookspecs)
        self.windows: NamedRegistry[Any] = NamedRegistry("window kind")
        self.functions: NamedRegistry[Any] = NamedRegistry("function")
        self.sinks: NamedRegistry[Any] = NamedRegistry("sink kind")
        self.serializers: NamedRegistry[Any] = NamedRegistry("serializer")
        self._collected = False

    def collect(self) -> PluginManager:
        """Call every registration hook, one plugin at a time, so duplicates name their owners."""
        if self._collected:
            return self
        for plugin_name, plugin in reversed(self.list_name_plugin()):
            if plugin is None:
                continue
            for hook, registry in (
                ("register_windows", self.windows),
                ("register_functions", self.functions),
                ("register_sinks", self.sinks),
                ("register_serializers", self.serializers),
            ):
                impl = getattr(plugin, hook, None)
                if impl is not None and getattr(impl, "headwater_impl", None) is not None:
                    impl(register=registry.bind(plugin_name))
        self._collected = True
        return self

    def provides(self) -> dict[str, dict[str, list[str]]]:
        """For each plugin name: what it registered, by registry."""
        self.collect()
        out: dict[str, dict[str, list[str]]] = {}
        for name, _ in self.list_name_plugin():
            out.setdefault(name, {})
        for what, reg in (
            ("windows", self.windows),
            ("functions", self.functions),
            ("sinks", self.sinks),
            ("serializers", self.serializers),
        ):
            for plugin, names in reg.by_plugin().items():
                out.setdefault(plugin, {})[what] = names
        return out


def _blocked() -> list[str]:
    raw = os.environ.get("HEADWATER_DISABLED_PLUGINS", "")
    return [p.strip() for p in raw.split(",") if p.strip()]


def get_plugin_manager(
    extra: Iterable[tuple[str, object]] = (),
    *,
    load_entrypoints: bool | None = None,
) -> PluginManager:
    """A manager with the builtins, entry points (unless disabled) and ``extra`` plugins.

    ``extra`` is a sequence of ``(name, plugin)`` pairs registered last (tests use
    it to register a plugin object without installing a package).
    """
    pm = PluginManager()
    for name in _blocked():
        pm.set_blocked(name)
    for modname in DEFAULT_PLUGINS:
        if pm.is_blocked(modname):
            continue
        try:
            module = importlib.import_module(modname)
        except ModuleNotFoundError as exc:  # a builtin not written yet
            if exc.name != modname:
                raise
            continue
        pm.register(module, name=modname)
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get("HEADWATER_DISABLE_PLUGIN_AUTOLOAD")
    if load_entrypoints:
        pm.load_setuptools_entrypoints("headwater")
    for name, plugin in extra:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm
