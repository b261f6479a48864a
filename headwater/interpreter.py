"""Process-wide interpreter settings, set once by an entry point, never by library code.

:func:`tune_interpreter` is called by what starts a process that runs the query engine or a
service: ``headwater.server.run`` (every service), the processing service's job workers and
query pool, and the ``headwater`` CLI (``query test`` and ``perf query`` run the engine in
process). Library code (the engine, the perf tools) reads these settings and never changes
them, so embedding Headwater in another program changes nothing global behind its back.
"""

from __future__ import annotations

import gc
import sys

__all__ = ["GC_THRESHOLD0", "RECURSION_LIMIT", "tune_interpreter"]

#: The parser and binder recurse per nesting level of a query; a query nested deeper than this
#: allows is a compile error ("the query is nested too deeply"), never a crash.
RECURSION_LIMIT = 3000
#: The engine's row path allocates a few short-lived objects per event: with the default
#: threshold (700) the cyclic collector runs every 700 allocations and costs ~20% of the time.
GC_THRESHOLD0 = 50_000


def tune_interpreter() -> None:
    """Raise the recursion limit and the collector's first threshold (never lowers either);
    with ``HEADWATER_PROFILE_DIR`` set, sample this process's stacks (:mod:`headwater.profiling`).
    Idempotent; call it once from a process's entry point."""
    if sys.getrecursionlimit() < RECURSION_LIMIT:
        sys.setrecursionlimit(RECURSION_LIMIT)
    threshold = gc.get_threshold()
    if threshold[0] < GC_THRESHOLD0:
        gc.set_threshold(GC_THRESHOLD0, *threshold[1:])
    from headwater.profiling import start_from_env

    start_from_env()  # HEADWATER_PROFILE_DIR: a sampling profile of this process (docs/operations.md)
