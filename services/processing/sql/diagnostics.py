"""Compile diagnostics: positions and the one error type every compile failure raises."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from headwater.errors import QueryCompileError

__all__ = ["Pos", "error", "suggest"]

#: A 1-based (line, column) position in the query text.
Pos = tuple[int, int]


def error(message: str, pos: Pos | None) -> QueryCompileError:
    """A :class:`QueryCompileError` at ``pos`` (line 1, column 1 when unknown)."""
    line, column = pos if pos else (1, 1)
    return QueryCompileError(message, line=line, column=column)


def suggest(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'X'?)`` when a known name is close to ``name``, else ``''``."""
    lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(lower), n=1, cutoff=0.75)
    return f" (did you mean {lower[close[0]]!r}?)" if close else ""
