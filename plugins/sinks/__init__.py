"""Builtin output kinds, registered through the same ``register_sinks`` hook a
third-party plugin uses (module path ``headwater.plugins.sinks`` is in
:data:`headwater.pluginmanager.DEFAULT_PLUGINS`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.hookspecs import hookimpl

__all__ = ["builtin_kinds", "register_sinks"]


def builtin_kinds() -> list[Any]:
    """One instance of every builtin sink kind."""
    from headwater.plugins.sinks.delta import DeltaKind
    from headwater.plugins.sinks.files import FilesKind
    from headwater.plugins.sinks.hub import HubKind
    from headwater.plugins.sinks.memory import DashboardKind, MemoryKind
    from headwater.plugins.sinks.postgres import PostgresKind
    from headwater.plugins.sinks.webhook import WebhookKind

    return [MemoryKind(), DashboardKind(), PostgresKind(), FilesKind(), DeltaKind(), WebhookKind(), HubKind()]


@hookimpl
def register_sinks(register: Callable[[Any], None]) -> None:
    for kind in builtin_kinds():
        register(kind)
