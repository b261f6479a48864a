"""The string functions of the reference not in :mod:`headwater.plugins.functions`:
CONCAT_WS, LEFT, RIGHT, NCHAR, UNICODE, REPLICATE, REVERSE, SPACE, STUFF, TRANSLATE.

Positions are 1-based and counted in characters (code points). A NULL argument gives NULL,
except CONCAT_WS, which skips NULL values (all NULL gives ''). As the reference says, a
negative length fails the statement in LEFT, RIGHT and STUFF, and gives NULL in REPLICATE
and SPACE.
"""

from __future__ import annotations

from headwater.functions import ScalarFunction, cast
from headwater.hookspecs import hookimpl

__all__ = ["FUNCTIONS"]

#: Longest string REPLICATE / SPACE build (a bad count must not exhaust memory).
MAX_LENGTH = 1 << 20


def _s(v) -> str:
    return cast(v, "nvarchar(max)")


def _n(v, name: str, what: str) -> int:
    n = cast(v, "bigint")
    if n is None:
        raise ValueError(f"{name}: {what} must be a bigint")
    return n


def _length(name: str, n: int) -> int:
    if n < 0:
        raise ValueError(f"{name}: the length must not be negative, got {n}")
    return n


def concat_ws(sep, *values):
    if sep is None:
        return None
    return _s(sep).join(_s(v) for v in values if v is not None)


def left(s, n):
    if s is None or n is None:
        return None
    return _s(s)[:_length("LEFT", _n(n, "LEFT", "length"))]


def right(s, n):
    if s is None or n is None:
        return None
    k = _length("RIGHT", _n(n, "RIGHT", "length"))
    return _s(s)[-k:] if k else ""


def nchar(code):
    if code is None:
        return None
    c = _n(code, "NCHAR", "the code")
    return chr(c) if 0 <= c <= 0x10FFFF and not 0xD800 <= c <= 0xDFFF else None


def unicode(s):
    if s is None:
        return None
    t = _s(s)
    return ord(t[0]) if t else None


def _repeat(name: str, unit: str, n: int):
    if n < 0:
        return None
    if len(unit) * n > MAX_LENGTH:
        raise ValueError(f"{name}: the result would be longer than {MAX_LENGTH} characters")
    return unit * n


def replicate(s, n):
    if s is None or n is None:
        return None
    return _repeat("REPLICATE", _s(s), _n(n, "REPLICATE", "the count"))


def space(n):
    return None if n is None else _repeat("SPACE", " ", _n(n, "SPACE", "the count"))


def reverse(s):
    return None if s is None else _s(s)[::-1]


def stuff(s, start, length, inserted):
    """STUFF('abcdef', 2, 3, 'ijklmn') = 'aijklmnef'."""
    if s is None or start is None or length is None:
        return None
    t = _s(s)
    i = _n(start, "STUFF", "start")
    k = _length("STUFF", _n(length, "STUFF", "length"))
    if i > len(t):
        return ""
    i = max(i, 1) - 1
    return t[:i] + ("" if inserted is None else _s(inserted)) + t[i + k:]


def translate(s, chars, translations):
    """TRANSLATE('2*[3+4]/{7-2}', '[]{}', '()()') = '2*(3+4)/(7-2)'."""
    if s is None or chars is None or translations is None:
        return None
    a, b = _s(chars), _s(translations)
    if len(a) != len(b):
        raise ValueError("TRANSLATE: the characters and translations must have the same length")
    return _s(s).translate({ord(x): y for x, y in zip(a, b)})


FUNCTIONS = [
    ScalarFunction("CONCAT_WS", concat_ws, 2, None),
    ScalarFunction("LEFT", left, 2, 2),
    ScalarFunction("RIGHT", right, 2, 2),
    ScalarFunction("NCHAR", nchar, 1, 1),
    ScalarFunction("UNICODE", unicode, 1, 1),
    ScalarFunction("REPLICATE", replicate, 2, 2),
    ScalarFunction("REVERSE", reverse, 1, 1),
    ScalarFunction("SPACE", space, 1, 1),
    ScalarFunction("STUFF", stuff, 4, 4),
    ScalarFunction("TRANSLATE", translate, 3, 3),
]


@hookimpl
def register_functions(register) -> None:
    for fn in FUNCTIONS:
        register(fn)
