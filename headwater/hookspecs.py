"""Hook specifications for Headwater plugins (pluggy project ``headwater``).

Builtin windows, functions, sinks and serializers are registered through these
same hooks; see :data:`headwater.pluginmanager.DEFAULT_PLUGINS`. A third-party
package exposes a module under the ``headwater`` entry-point group and
implements any of these hooks with :data:`headwater.hookimpl`.

Every registration hook receives a ``register`` callable bound to one registry
of the plugin manager. Registering a name twice raises
:class:`headwater.errors.PluginError` naming both plugins: pluggy calls
implementations last-registered-first, so a silent override would depend on
install order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    from headwater.functions import AggregateFunction, Operator, ScalarFunction
    from headwater.serializers import Serializer
    from headwater.sinks import SinkKind
    from headwater.windows import WindowKind

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("headwater")
hookimpl = pluggy.HookimplMarker("headwater")


@hookspec
def register_windows(register: Callable[[WindowKind], None]) -> None:
    """Register window kinds usable in ``GROUP BY``.

    Call ``register(kind)`` once per :class:`headwater.windows.WindowKind`;
    ``kind.name`` is the SQL name (``TumblingWindow``) and ``kind.aliases`` the
    short names (``Tumbling``). Names are case-insensitive.

    :param register: adds one window kind to this plugin manager's window registry.

    .. versionadded:: 0.1
    """


@hookspec
def register_functions(register: Callable[[ScalarFunction | AggregateFunction | Operator], None]) -> None:
    """Register scalar functions, aggregates and operators usable in queries.

    Call ``register(fn)`` once per :class:`headwater.functions.ScalarFunction`,
    :class:`headwater.functions.AggregateFunction` or
    :class:`headwater.functions.Operator`. ``fn.name`` is the SQL name, matched
    case-insensitively; a user-defined function is registered with
    ``namespace="UDF"`` (aggregates ``"UDA"``) and called as ``UDF.name(...)``.

    :param register: adds one function to this plugin manager's function registry.

    .. versionadded:: 0.1
    """


@hookspec
def register_sinks(register: Callable[[SinkKind], None]) -> None:
    """Register output kinds for jobs and the sink service.

    Call ``register(kind)`` once per :class:`headwater.sinks.SinkKind`;
    ``kind.name`` is the output type used in a sink's configuration
    (``memory``, ``postgres``, ``delta``, ...).

    :param register: adds one sink kind to this plugin manager's sink registry.

    .. versionadded:: 0.1
    """


@hookspec
def register_serializers(register: Callable[[Serializer], None]) -> None:
    """Register event formats for job inputs and outputs.

    Call ``register(serializer)`` once per
    :class:`headwater.serializers.Serializer`; ``serializer.name`` is the format
    name in a job's input or output (``json``, ``csv``, ``avro``).

    :param register: adds one serializer to this plugin manager's serializer registry.

    .. versionadded:: 0.1
    """


@hookspec
def register_commands(cli: argparse._SubParsersAction[Any]) -> None:
    """Add subcommands to the ``headwater`` command line.

    ``cli`` is the top-level subparsers object: call ``cli.add_parser(...)`` and
    set ``func`` with ``set_defaults(func=...)``; the function receives the
    parsed arguments and returns an exit code.

    :param cli: the ``headwater`` command's subparsers.

    .. versionadded:: 0.1
    """
