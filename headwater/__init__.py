"""Headwater: the client SDK, the error model, the plugin API and the generated contracts.

Plugin authors need only ``headwater.hookimpl``; clients use
``headwater.eventhub`` and ``headwater.schemaregistry``.
"""

from __future__ import annotations

from headwater.errors import HeadwaterError, PluginError, QueryCompileError, Reason
from headwater.hookspecs import hookimpl

__all__ = ["HeadwaterError", "PluginError", "QueryCompileError", "Reason", "hookimpl"]
__version__ = "0.1.0"
