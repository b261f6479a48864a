"""Regular expressions for REGEXMATCH without catastrophic backtracking.

The reference interprets REGEXMATCH's pattern as a single-line, case-insensitive,
ECMAScript-compatible regular expression. Patterns go to RE2 (``google-re2``: a finite
automaton, linear in the value's length whatever the pattern) when RE2 accepts them, which
is all of ECMAScript except backreferences and lookaround. Those few go to the ECMAScript
engine of the JavaScript sandbox (:mod:`headwater.plugins.javascript`) under its time
budget per call, so one hostile pattern costs at most that budget, never the service. An
invalid pattern gives 0, as documented.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

__all__ = ["re2", "re2_compile", "regex_search"]

_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False
_OPTIONS.dot_nl = True  # "single-line": '.' matches a newline too
_OPTIONS.max_mem = 8 << 20
_OPTIONS.log_errors = False
_JS = object()  # marker: RE2 refused the pattern; ECMAScript decides


_LIKE_OPTIONS = re2.Options()
_LIKE_OPTIONS.case_sensitive = False
_LIKE_OPTIONS.dot_nl = True
_LIKE_OPTIONS.log_errors = False
_NEVER = re2.compile(r"[^\x00-\x{10FFFF}]", _LIKE_OPTIONS)


def re2_compile(pattern: str) -> Any:
    """``pattern`` for RE2, case-insensitive with '.' matching newlines; a pattern RE2 refuses
    (a LIKE set such as ``[z-a]``) matches nothing, as in T-SQL."""
    try:
        return re2.compile(pattern, _LIKE_OPTIONS)
    except re2.error:
        return _NEVER


@lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error:
        return _JS


def regex_search(pattern: str, text: str) -> int:
    """1-based position of the first match of ``pattern`` in ``text``; 0 when none or invalid."""
    r = _compiled(pattern)
    if r is not _JS:
        m = r.search(text)
        return m.start() + 1 if m else 0
    from headwater.plugins.javascript import js_regex_search

    return int(js_regex_search(pattern, text) or 0)
