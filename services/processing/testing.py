"""Helpers for tests and plugin authors: :func:`run_query` runs a query over in-memory events
exactly as ``headwater query test`` does, with no services.

It lives with the processing service, not in the ``headwater`` SDK, because it runs the engine
(the SDK imports no service: pyproject's import-linter contracts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from headwater.services.processing.engine import format_rows
from headwater.services.processing.local import run_local

__all__ = ["run_query"]


# -- query engine ----------------------------------------------------------------------
def run_query(sql: str, events_by_input: dict[str, list[dict]], *,
              references: dict[str, list[dict]] | None = None,
              late_arrival_tolerance: float | None = None, out_of_order_tolerance: float | None = None,
              out_of_order_action: str = "adjust", arrival_time_field: str | None = None,
              udfs: dict[str, Callable[..., Any]] | None = None, pm: Any = None,
              raw: bool = False) -> dict[str, list[dict]]:
    """Rows per output alias (JSON-ready: datetimes as ``2021-12-10T10:00:00.0000000Z``,
    unless ``raw``). Raises QueryCompileError or QueryRuntimeError like a job would."""
    out = run_local(sql, events_by_input, references, late=late_arrival_tolerance, ooo=out_of_order_tolerance,
                    action=out_of_order_action, arrival_field=arrival_time_field, udfs=udfs, pm=pm)
    return out if raw else {k: format_rows(v) for k, v in out.items()}
