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
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeAlias, TypeVar

import pluggy

from headwater import hookspecs
from headwater.errors import PluginError

if TYPE_CHECKING:  # the registries' item types; importing them would load every plugin API
    from headwater.functions import AggregateFunction, Operator, ScalarFunction
    from headwater.serializers import Serializer
    from headwater.sinks import SinkKind
    from headwater.windows import WindowKind

    Function: TypeAlias = ScalarFunction | AggregateFunction | Operator

__all__ = [
    "DEFAULT_PLUGINS",
    "REGISTRATION_HOOKS",
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

#: The registration hooks, each with the PluginManager registry it fills.
REGISTRATION_HOOKS: tuple[tuple[str, str], ...] = (
    ("register_windows", "windows"),
    ("register_functions", "functions"),
    ("register_sinks", "sinks"),
    ("register_serializers", "serializers"),
)

class Registrable(Protocol):
    """What a registry holds: ``name`` (its SQL or configuration name), optionally
    ``aliases`` and (functions) a ``namespace``."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Registrable)


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
            name: str = getattr(item, "name")  # noqa: B009 - every registered item has a name
            namespace: str = getattr(item, "namespace", "") or ""
            out.setdefault(self.owners[self.key(name, namespace)], []).append(
                (f"{namespace}." if namespace else "") + name
            )
        return out


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus the registries the hooks fill."""

    def __init__(self) -> None:
        super().__init__("headwater")
        self.add_hookspecs(hookspecs)
        self.windows: NamedRegistry[WindowKind] = NamedRegistry("window kind")
        self.functions: NamedRegistry[Function] = NamedRegistry("function")
        self.sinks: NamedRegistry[SinkKind] = NamedRegistry("sink kind")
        self.serializers: NamedRegistry[Serializer] = NamedRegistry("serializer")
        #: builtin plugin module -> the missing library that kept it out (install headwater[server])
        self.unavailable: dict[str, str] = {}
        self._collected = False

    def collect(self) -> PluginManager:
        """Fill the registries: call each registration hook through pluggy, once per plugin
        that implements it, so a duplicate name names both plugins.

        Every call goes through the hook caller (``subset_hook_caller`` leaves the other
        implementing plugins out of that call), so implementations under another name
        (``@hookimpl(specname=...)``), ``tryfirst``/``trylast``, hook wrappers and pluggy's
        tracing all apply. Plugins are called in pluggy's order: ``tryfirst`` first, then the
        last registered first (entry points before the builtins).
        """
        if self._collected:
            return self
        for hook_name, attr in REGISTRATION_HOOKS:
            registry: NamedRegistry[Any] = getattr(self, attr)
            caller: pluggy.HookCaller = getattr(self.hook, hook_name)
            impls = [i for i in caller.get_hookimpls() if not (i.hookwrapper or i.wrapper)]
            plugins = list({id(i.plugin): i.plugin for i in impls}.values())  # one may implement it twice
            for plugin in reversed(plugins):  # get_hookimpls() lists them in reverse call order
                one = self.subset_hook_caller(hook_name, remove_plugins=[p for p in plugins if p is not plugin])
                name = self.get_name(plugin) or repr(plugin)
                one(register=registry.bind(name))
        self._collected = True
        return self

    def provides(self) -> dict[str, dict[str, list[str]]]:
        """For each plugin name: what it registered, by registry."""
        self.collect()
        out: dict[str, dict[str, list[str]]] = {}
        for name, _ in self.list_name_plugin():
            out.setdefault(name, {})
        for _, what in REGISTRATION_HOOKS:
            reg: NamedRegistry[Any] = getattr(self, what)
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
        except ModuleNotFoundError as exc:
            if exc.name == modname:  # a builtin not written yet
                continue
            if exc.name and not exc.name.startswith("headwater"):
                # A bare `pip install headwater` (the SDK and CLI) has none of the engine's
                # libraries: the builtins that need them come with headwater[server].
                pm.unavailable[modname] = exc.name
                continue
            raise
        pm.register(module, name=modname)
    if load_entrypoints is None:
        load_entrypoints = not os.environ.get("HEADWATER_DISABLE_PLUGIN_AUTOLOAD")
    if load_entrypoints:
        pm.load_setuptools_entrypoints("headwater")
    for name, plugin in extra:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm
