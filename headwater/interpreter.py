"""Process-wide interpreter settings, set once by an entry point, never by library code.

:func:`tune_interpreter` is called by what starts a process that runs the query engine or a
service: ``headwater.server.run`` (every service), the processing service's job workers and
query pool, and the ``headwater`` CLI (``query test`` and ``perf query`` run the engine in
process). Library code (the engine, the perf tools) reads these settings and never changes
them, so embedding Headwater in another program changes nothing global behind its back.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import sys

__all__ = ["GC_THRESHOLD0", "MMAP_THRESHOLD", "RECURSION_LIMIT", "return_freed_memory", "trim_freed_memory",
           "tune_interpreter"]

#: The parser and binder recurse per nesting level of a query; a query nested deeper than this
#: allows is a compile error ("the query is nested too deeply"), never a crash.
RECURSION_LIMIT = 3000
#: The engine's row path allocates a few short-lived objects per event: with the default
#: threshold (700) the cyclic collector runs every 700 allocations and costs ~20% of the time.
GC_THRESHOLD0 = 50_000
#: Allocations from this size up get their own mapping, given back to the system when freed.
MMAP_THRESHOLD = 256 * 1024


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


def return_freed_memory() -> None:
    """Make glibc's malloc give freed large buffers back to the system (for a process that
    handles batches of megabytes, such as a job's worker).

    By default glibc raises its mmap threshold each time a mapped buffer is freed (up to
    32 MiB), so a process that allocates and frees batch buffers ends up keeping them in
    its heap, fragmented across one arena per thread: a job worker's resident memory grew to
    several times its batches. A fixed threshold (:data:`MMAP_THRESHOLD`) maps each large
    buffer and unmaps it when freed, and two arenas bound the per-thread heaps. Costs a
    system call per large buffer, which a worker's batches amortise (the services with many
    small buffers keep the defaults). No-op where glibc's ``mallopt`` is not available."""
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, MMAP_THRESHOLD)  # M_MMAP_THRESHOLD (also fixes it: no dynamic raise)
        libc.mallopt(-8, 2)  # M_ARENA_MAX


def trim_freed_memory() -> None:
    """Give the free pages inside glibc's heaps back to the system (``malloc_trim``): what a
    batch freed in the middle of the heap otherwise stays resident. A few milliseconds; a job
    worker calls it after each epoch. No-op without glibc."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _libc() -> ctypes.CDLL | None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    return None
