"""numba kernels of the typed JSON decode (see :mod:`.jsondecode` for the contract).

``scan``: bodies (spans of one buffer) that are flat-enough JSON objects -> the values of
a few top-level fields in typed arrays: integers, floats and booleans parsed, strings
copied out. It validates every byte of every body as orjson would (grammar,
string escapes, UTF-8, nesting depth, numbers that would overflow to infinity) and
answers ``ROWS`` for anything whose decoded value it is not sure of, so the caller
decodes that batch event by event instead. Strings are copied (escapes decoded) into
one buffer per text field as they are read, while the bytes are in the cache.

One module on purpose: numba's cache is checked against the source file of each
function, so kernels that inline helpers from another file would keep stale code.
Imported through :data:`.jsondecode.KERNELS` only (numba is imported here, and compiling
takes a moment).
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros as _trailing_zeros

#: numba.njit, typed loosely: its stubs do not know ``_nrt`` (see :func:`scan` for why it is off)
_njit: Any = numba.njit
#: the count of trailing zero bits (LLVM's cttz), an intrinsic its stubs type as taking a context
trailing_zeros: Any = _trailing_zeros

__all__ = ["BOOL", "FLOAT", "INT", "MAX_DEPTH", "OK", "ROWS", "STR", "classify", "quotes", "scan", "warm_up"]

#: ``scan``'s answers: every body decoded, or decode this batch event by event
OK, ROWS = 0, 1
#: the kinds of a wanted field (its column type)
STR, INT, FLOAT, BOOL = 0, 1, 2, 3
#: nesting depth accepted (orjson's limit is 1024; deeper bodies go event by event)
MAX_DEPTH = 512
_ALL = np.uint64(0xFFFFFFFFFFFFFFFF)
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)
#: exact powers of ten as doubles (10**22 is the last one a double holds exactly)
_POW10 = np.array([10.0 ** k for k in range(23)], dtype=np.float64)


@_njit(cache=True, inline="always", _nrt=False)
def _ws(buf, p, end):
    while p < end:
        c = buf[p]
        if c == 32 or c == 10 or c == 13 or c == 9:
            p += 1
        else:
            break
    return p


@_njit(cache=True, inline="always", _nrt=False)
def _hex4(buf, p, end):
    """The value of 4 hex digits at ``p``; -1 when they are not there."""
    if p + 4 > end:
        return -1
    v = 0
    for k in range(4):
        c = buf[p + k]
        if 48 <= c <= 57:
            d = c - 48
        elif 97 <= c <= 102:
            d = c - 87
        elif 65 <= c <= 70:
            d = c - 55
        else:
            return -1
        v = v * 16 + d
    return v


@_njit(cache=True, inline="always", _nrt=False)
def _cont(buf, p, end, lo, hi):
    return p < end and lo <= buf[p] <= hi


@_njit(cache=True, inline="always", _nrt=False)
def _string(buf, p, end, plain, qbits):
    """A string whose opening quote is at ``p - 1``: (position of the closing quote, flags,
    decoded length in UTF-8 bytes); the position is -1 when the string is not valid JSON
    as orjson reads it (control characters, bad escapes or surrogates, invalid UTF-8,
    no closing quote). Flags: 1 = has escapes, 2 = has non-ASCII bytes (not told when
    ``plain``: the buffer has no backslash and no control character and is valid UTF-8,
    so the string ends at the next quote, found in ``qbits``, the bitmap of :func:`quotes`)."""
    if plain:
        q = _next_quote(qbits, p)
        return (q if q < end else -1), 0, q - p
    return _escaped_string(buf, p, end)


@_njit(cache=True, inline="always", _nrt=False)
def _next_quote(qbits, p):
    """The first quote at or after ``p`` (``qbits``: the quotes' bitmap, see :func:`quotes`);
    past the end when there is none."""
    w = p >> 6
    m = qbits[w] & (_ALL << np.uint64(p & 63))
    while m == 0:
        w += 1
        m = qbits[w]
    return (w << 6) + np.int64(trailing_zeros(m))


@_njit(cache=True, nogil=True)
def quotes(buf):
    """A bitmap of the quotes in ``buf`` (bit k of word k // 64 for byte k), ending with
    a word with every bit set so that a search always stops."""
    full = buf.shape[0] // 64
    out = np.zeros(full + 2, np.uint64)
    for w in range(full):
        m = np.uint64(0)
        base = w * 64
        for j in range(64):
            m |= np.uint64(buf[base + j] == 34) << np.uint64(j)
        out[w] = m
    for k in range(full * 64, buf.shape[0]):
        if buf[k] == 34:
            out[full] |= np.uint64(1) << np.uint64(k - full * 64)
    out[full + 1] = _ALL
    return out


@_njit(cache=True, _nrt=False)
def _escaped_string(buf, p, end):
    n = 0
    flags = 0
    while p < end:
        c = buf[p]
        if c == 34:
            return p, flags, n
        if c == 92:
            flags |= 1
            if p + 1 >= end:
                return -1, flags, n
            e = buf[p + 1]
            if e == 34 or e == 92 or e == 47 or e == 98 or e == 102 or e == 110 or e == 114 or e == 116:
                n += 1
                p += 2
                continue
            if e != 117:
                return -1, flags, n
            cp = _hex4(buf, p + 2, end)
            if cp < 0:
                return -1, flags, n
            p += 6
            if 0xD800 <= cp <= 0xDBFF:  # a high surrogate: a low one must follow
                if p + 1 < end and buf[p] == 92 and buf[p + 1] == 117:
                    lo = _hex4(buf, p + 2, end)
                    if 0xDC00 <= lo <= 0xDFFF:
                        p += 6
                        n += 4
                        continue
                return -1, flags, n
            if 0xDC00 <= cp <= 0xDFFF:
                return -1, flags, n
            n += 1 if cp < 0x80 else (2 if cp < 0x800 else 3)
            continue
        if c < 0x20:
            return -1, flags, n
        if c < 0x80:
            n += 1
            p += 1
            continue
        flags |= 2
        if 0xC2 <= c <= 0xDF:
            if not _cont(buf, p + 1, end, 0x80, 0xBF):
                return -1, flags, n
            k = 2
        elif 0xE0 <= c <= 0xEF:
            lo1 = 0xA0 if c == 0xE0 else 0x80
            hi1 = 0x9F if c == 0xED else 0xBF  # no UTF-16 surrogates
            if not (_cont(buf, p + 1, end, lo1, hi1) and _cont(buf, p + 2, end, 0x80, 0xBF)):
                return -1, flags, n
            k = 3
        elif 0xF0 <= c <= 0xF4:
            lo1 = 0x90 if c == 0xF0 else 0x80
            hi1 = 0x8F if c == 0xF4 else 0xBF
            if not (_cont(buf, p + 1, end, lo1, hi1) and _cont(buf, p + 2, end, 0x80, 0xBF)
                    and _cont(buf, p + 3, end, 0x80, 0xBF)):
                return -1, flags, n
            k = 4
        else:
            return -1, flags, n
        n += k
        p += k
    return -1, flags, n


@_njit(cache=True, inline="always", _nrt=False)
def _number(buf, p, end):
    """A JSON number at ``p``: (next position, kind, negative, mantissa, significant digits,
    decimal exponent, magnitude). kind: 1 integer, 2 float, -1 not a JSON number. The value
    is mantissa * 10**exponent while significant digits <= 19; magnitude is the position of
    the leading digit (about log10 of the value), to tell numbers orjson reads as infinity."""
    neg = False
    if p < end and buf[p] == 45:
        neg = True
        p += 1
    if p >= end:
        return -1, -1, neg, np.uint64(0), 0, 0, 0
    mant = np.uint64(0)
    sig = 0
    exp = 0
    mag = 0
    c = buf[p]
    if c == 48:
        p += 1
        if p < end and 48 <= buf[p] <= 57:
            return -1, -1, neg, mant, sig, exp, mag  # leading zero
    elif 49 <= c <= 57:
        while p < end and 48 <= buf[p] <= 57:
            if sig < 19:
                mant = mant * np.uint64(10) + np.uint64(buf[p] - 48)
            else:
                exp += 1
            sig += 1
            mag += 1
            p += 1
    else:
        return -1, -1, neg, mant, sig, exp, mag
    kind = 1
    if p < end and buf[p] == 46:
        kind = 2
        p += 1
        if p >= end or not (48 <= buf[p] <= 57):
            return -1, -1, neg, mant, sig, exp, mag
        while p < end and 48 <= buf[p] <= 57:
            d = buf[p] - 48
            if sig == 0 and d == 0:  # a leading zero of the fraction
                exp -= 1
                mag -= 1
            elif sig < 19:
                mant = mant * np.uint64(10) + np.uint64(d)
                sig += 1
                exp -= 1
            else:
                sig += 1
            p += 1
    if p < end and (buf[p] == 101 or buf[p] == 69):
        kind = 2
        p += 1
        eneg = False
        if p < end and (buf[p] == 43 or buf[p] == 45):
            eneg = buf[p] == 45
            p += 1
        if p >= end or not (48 <= buf[p] <= 57):
            return -1, -1, neg, mant, sig, exp, mag
        e = 0
        while p < end and 48 <= buf[p] <= 57:
            if e < 100000:
                e = e * 10 + (buf[p] - 48)
            p += 1
        if eneg:
            e = -e
        exp += e
        mag += e
    return p, kind, neg, mant, sig, exp, mag


@_njit(cache=True, inline="always", _nrt=False)
def _literal(buf, p, end):
    """true/false/null at ``p``: (next position, 1 true / 0 false / 2 null); -1 if none."""
    c = buf[p]
    if c == 116:
        if p + 4 <= end and buf[p + 1] == 114 and buf[p + 2] == 117 and buf[p + 3] == 101:
            return p + 4, 1
    elif c == 102:
        if p + 5 <= end and buf[p + 1] == 97 and buf[p + 2] == 108 and buf[p + 3] == 115 and buf[p + 4] == 101:
            return p + 5, 0
    elif c == 110:
        if p + 4 <= end and buf[p + 1] == 117 and buf[p + 2] == 108 and buf[p + 3] == 108:
            return p + 4, 2
    return -1, -1


@_njit(cache=True, inline="always", _nrt=False)
def _member_key(buf, p, end, plain, qbits):
    """Past a member's key at ``p`` and its colon; -1 when they are not there."""
    if p >= end or buf[p] != 34:
        return -1
    q, _f, _n = _string(buf, p + 1, end, plain, qbits)
    if q < 0:
        return -1
    p = _ws(buf, q + 1, end)
    if p >= end or buf[p] != 58:
        return -1
    return p + 1


@_njit(cache=True, _nrt=False)
def _skip(buf, p, end, stack, plain, qbits):
    """Past one JSON value at ``p`` (any nesting), validating it; -1 when it is not one
    orjson reads (or nests deeper than ``MAX_DEPTH``, or holds a number of infinite value)."""
    depth = 0
    while True:
        # a value starts at p (after whitespace)
        p = _ws(buf, p, end)
        if p >= end:
            return -1
        c = buf[p]
        done = True  # a whole value was read
        if c == 123 or c == 91:
            depth += 1
            if depth > MAX_DEPTH:
                return -1
            stack[depth] = c
            p = _ws(buf, p + 1, end)
            if p >= end:
                return -1
            if (c == 123 and buf[p] == 125) or (c == 91 and buf[p] == 93):
                p += 1
                depth -= 1
            elif c == 123:
                p = _member_key(buf, p, end, plain, qbits)
                if p < 0:
                    return -1
                done = False
            else:
                done = False
        elif c == 34:
            q, _f, _n = _string(buf, p + 1, end, plain, qbits)
            if q < 0:
                return -1
            p = q + 1
        elif c == 45 or 48 <= c <= 57:
            p, kind, _neg, _mant, _sig, _exp, mag = _number(buf, p, end)
            if kind < 0 or mag > 300:
                return -1
        else:
            p, _lit = _literal(buf, p, end)
            if p < 0:
                return -1
        if not done:
            continue
        # after a value: close containers, or a comma and the next value
        while depth > 0:
            p = _ws(buf, p, end)
            if p >= end:
                return -1
            c = buf[p]
            if c == 44:
                p = _ws(buf, p + 1, end)
                if stack[depth] == 123:
                    p = _member_key(buf, p, end, plain, qbits)
                    if p < 0:
                        return -1
                break
            if (c == 125 and stack[depth] == 123) or (c == 93 and stack[depth] == 91):
                p += 1
                depth -= 1
            else:
                return -1
        if depth == 0:
            return p


@_njit(cache=True, inline="always", _nrt=False)
def _same(buf, a, b, keys, k0, k1, lower):
    """buf[a:b] equals keys[k0:k1] (ASCII case-insensitively with ``lower``)."""
    if b - a != k1 - k0:
        return False
    for j in range(b - a):
        x = buf[a + j]
        if lower and 65 <= x <= 90:
            x += 32
        if x != keys[k0 + j]:
            return False
    return True


@_njit(cache=True, nogil=True, _nrt=False)
def scan(stack, seen, cursor, buf, qbits, lo, hi, starts, ends, keys, kofs, lows, lofs, kinds, star, plain, high, ints,
         floats, valid, texts, text_of, text_ends, iso, micros, micros_ok, hard, unusual):
    """Bodies ``lo`` to ``hi`` (body i is ``buf[starts[i]:ends[i]]``). Wanted field f is
    spelled ``keys[kofs[f]:kofs[f+1]]`` and has kind ``kinds[f]``; ``lows[lofs[g]:lofs[g+1]]``
    are the lower-case names of every field the query reads (a key spelled otherwise that
    lower-cases to one of them is read by the row decode). For each body i and field f:
    ``valid[f, i]`` 0 (absent or null) or 1; ``ints[f, i]`` an integer or boolean value;
    ``floats[f, i]`` a float value. A text field's strings go to ``texts[text_of[f]]``,
    escapes decoded, written from ``starts[lo]`` on (the decoded bytes of bodies ``lo``
    to ``hi`` fit in the room those bodies take, so ranges do not overlap), and
    ``text_ends[text_of[f], i]`` is where body i's string ends (or the previous one's, with
    none). The text field ``iso`` (-1 none) is also read as a time: ``micros[i]`` and
    ``micros_ok[i]`` (see :func:`_iso`). ``star``: the fields are the whole event (each
    present, none NULL, no other). ``plain`` and ``qbits``: see :func:`_string`; ``high``:
    the buffer may have non-ASCII bytes.

    Returns (status, end of hard floats, end of unusual keys): a float the kernel does
    not convert exactly is listed in ``hard[lo * len(kinds):]`` as (f, i, start, end) for
    the caller; a top-level key that has escapes or non-ASCII bytes and is not spelled as
    a wanted one is listed in ``unusual[4 * lo:4 * hi]`` as (start, end) (the caller
    decodes it and checks it case-insensitively, as the row decode reads keys; more of
    them than that room: ROWS). Status ROWS: a body that is not valid
    JSON or not one object (an array of events), a wanted field of another type, nested,
    duplicated or spelled in another case, an integer of 19 digits or more: the caller
    decodes that batch event by event. Bodies of one call are independent of another's
    (``nogil``: callers run ranges in threads, each with its own ``stack`` of at least
    ``MAX_DEPTH + 2`` bytes, ``seen`` of ``len(kinds)`` and ``cursor`` of ``len(texts)``
    integers).

    Compiled without numba's reference counting (``_nrt=False``, as the helpers): passing
    arrays to helpers otherwise costs an atomic increment and decrement each, which was
    about half of the time; nothing here allocates."""
    nf = kinds.shape[0]
    for k in range(nf):
        seen[k] = -1
    nh = lo * nf
    nu = 4 * lo
    nt = cursor.shape[0]
    if hi > lo:
        for t in range(nt):
            cursor[t] = starts[lo]
    for i in range(lo, hi):
        end = ends[i]
        if iso >= 0:
            micros_ok[i] = 0
        p = _ws(buf, starts[i], end)
        if p >= end or buf[p] != 123:
            return ROWS, nh, nu
        p = _ws(buf, p + 1, end)
        if p < end and buf[p] == 125:
            p += 1
        else:
            while True:
                if p >= end or buf[p] != 34:
                    return ROWS, nh, nu
                a = p + 1
                q, flags, _ = _string(buf, a, end, plain, qbits)
                if q < 0:
                    return ROWS, nh, nu
                p = _ws(buf, q + 1, end)
                if p >= end or buf[p] != 58:
                    return ROWS, nh, nu
                p = _ws(buf, p + 1, end)
                if p >= end:
                    return ROWS, nh, nu
                f = -1
                if flags & 1 == 0:
                    for k in range(nf):
                        if _same(buf, a, q, keys, kofs[k], kofs[k + 1], False):
                            f = k
                            break
                if f < 0:
                    if star:
                        return ROWS, nh, nu
                    if plain and high:
                        for j in range(a, q):
                            if buf[j] >= 0x80:
                                flags |= 2
                                break
                    if flags != 0:
                        if nu >= 4 * hi:
                            return ROWS, nh, nu
                        unusual[nu, 0] = a
                        unusual[nu, 1] = q
                        nu += 1
                    else:
                        for k in range(lofs.shape[0] - 1):
                            if _same(buf, a, q, lows, lofs[k], lofs[k + 1], True):
                                return ROWS, nh, nu  # another spelling of a field the query reads
                    c = buf[p]
                    if c == 34:  # the common values inline; records and arrays through _skip
                        p, _f, _n = _string(buf, p + 1, end, plain, qbits)
                        if p < 0:
                            return ROWS, nh, nu
                        p += 1
                    elif c == 45 or 48 <= c <= 57:
                        p, nkind, _neg, _mant, _sig, _exp, mag = _number(buf, p, end)
                        if nkind < 0 or mag > 300:
                            return ROWS, nh, nu
                    else:
                        p = _skip(buf, p, end, stack, plain, qbits)
                        if p < 0:
                            return ROWS, nh, nu
                else:
                    if seen[f] == i:
                        return ROWS, nh, nu  # a duplicated key
                    seen[f] = i
                    kind = kinds[f]
                    c = buf[p]
                    if c == 34:
                        if kind != STR:
                            return ROWS, nh, nu
                        s, sflags, dlen = _string(buf, p + 1, end, plain, qbits)
                        if s < 0:
                            return ROWS, nh, nu
                        t = text_of[f]
                        cursor[t] = _copy_string(buf, p + 1, s, sflags & 1, texts[t], cursor[t])
                        if f == iso and sflags & 1 == 0:
                            ok, us = _iso(buf, p + 1, s - p - 1)
                            micros_ok[i] = ok
                            micros[i] = us
                        valid[f, i] = 1
                        p = s + 1
                    elif c == 45 or 48 <= c <= 57:
                        s = p
                        p, nkind, neg, mant, sig, exp, mag = _number(buf, p, end)
                        if nkind < 0:
                            return ROWS, nh, nu
                        if nkind == 1:
                            if sig >= 19 or (kind != INT and kind != FLOAT):
                                return ROWS, nh, nu
                            v = np.int64(mant)
                            if neg:
                                v = -v
                            if kind == INT:
                                ints[f, i] = v
                            else:
                                floats[f, i] = np.float64(v)
                        else:
                            if kind != FLOAT or mag > 300:
                                return ROWS, nh, nu
                            if mant == 0:
                                floats[f, i] = -0.0 if neg else 0.0
                            elif sig <= 19 and mant < np.uint64(1 << 53) and -22 <= exp <= 22:
                                x = np.float64(mant)  # exact; one rounding below (Clinger's fast path)
                                x = x * _POW10[exp] if exp >= 0 else x / _POW10[-exp]
                                floats[f, i] = -x if neg else x
                            else:
                                hard[nh, 0] = f
                                hard[nh, 1] = i
                                hard[nh, 2] = s
                                hard[nh, 3] = p
                                nh += 1
                        valid[f, i] = 1
                    else:
                        if c == 123 or c == 91:
                            return ROWS, nh, nu  # a record or an array: the row decode keeps it
                        p, lit = _literal(buf, p, end)
                        if p < 0:
                            return ROWS, nh, nu
                        if lit == 2:
                            if star:
                                return ROWS, nh, nu
                            valid[f, i] = 0
                        elif kind != BOOL:
                            return ROWS, nh, nu
                        else:
                            ints[f, i] = lit
                            valid[f, i] = 1
                p = _ws(buf, p, end)
                if p >= end:
                    return ROWS, nh, nu
                if buf[p] == 44:
                    p = _ws(buf, p + 1, end)
                    continue
                if buf[p] == 125:
                    p += 1
                    break
                return ROWS, nh, nu
        if _ws(buf, p, end) != end:
            return ROWS, nh, nu
        for k in range(nf):
            if seen[k] != i:
                if star:
                    return ROWS, nh, nu
                valid[k, i] = 0
        for t in range(nt):
            text_ends[t, i] = cursor[t]
    return OK, nh, nu


@_njit(cache=True, nogil=True)
def classify(buf):
    """(has a backslash or a control character, has non-ASCII bytes): one vectorised pass."""
    special = False
    high = False
    for k in range(buf.shape[0]):
        c = buf[k]
        special |= (c == 92) | (c < 32)
        high |= c >= 128
    return special, high


@_njit(cache=True, inline="always", _nrt=False)
def _put_utf8(out, q, cp):
    if cp < 0x80:
        out[q] = cp
        return q + 1
    if cp < 0x800:
        out[q] = 0xC0 | (cp >> 6)
        out[q + 1] = 0x80 | (cp & 0x3F)
        return q + 2
    if cp < 0x10000:
        out[q] = 0xE0 | (cp >> 12)
        out[q + 1] = 0x80 | ((cp >> 6) & 0x3F)
        out[q + 2] = 0x80 | (cp & 0x3F)
        return q + 3
    out[q] = 0xF0 | (cp >> 18)
    out[q + 1] = 0x80 | ((cp >> 12) & 0x3F)
    out[q + 2] = 0x80 | ((cp >> 6) & 0x3F)
    out[q + 3] = 0x80 | (cp & 0x3F)
    return q + 4


@_njit(cache=True, inline="always", _nrt=False)
def _copy_string(buf, a, b, escaped, out, q):
    """A string's bytes ``buf[a:b]`` (validated by :func:`_string`) into ``out`` at ``q``,
    escapes decoded; returns the position after them."""
    if not escaped:  # a copy through views, which LLVM vectorises (indexing with q + k is ~6x slower)
        o = out[q:q + (b - a)]
        s = buf[a:b]
        for k in range(b - a):
            o[k] = s[k]
        return q + (b - a)
    p = a
    while p < b:
        c = buf[p]
        if c != 92:
            out[q] = c
            q += 1
            p += 1
            continue
        e = buf[p + 1]
        if e == 117:
            cp = _hex4(buf, p + 2, b)
            p += 6
            if 0xD800 <= cp <= 0xDBFF:
                lo = _hex4(buf, p + 2, b)
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                p += 6
            q = _put_utf8(out, q, cp)
            continue
        if e == 98:
            out[q] = 8
        elif e == 102:
            out[q] = 12
        elif e == 110:
            out[q] = 10
        elif e == 114:
            out[q] = 13
        elif e == 116:
            out[q] = 9
        else:  # " \ /
            out[q] = e
        q += 1
        p += 2
    return q


@_njit(cache=True, inline="always", _nrt=False)
def _digits(buf, p, k):
    """The value of ``k`` ASCII digits at ``p``; -1 when one is not a digit."""
    v = 0
    for j in range(k):
        c = buf[p + j]
        if c < 48 or c > 57:
            return -1
        v = v * 10 + (c - 48)
    return v


@_njit(cache=True, inline="always", _nrt=False)
def _iso(buf, a, m):
    """(1, microseconds since 1970) for text ``buf[a:a+m]`` of the form
    ``YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z`` (a real date, not a leap second), fractions past
    microseconds cut off as Polars' ``%Y-%m-%dT%H:%M:%S%.fZ`` does; (0, 0) for any other
    text, which the caller reads another way."""
    if m < 20 or m == 21 or m > 30 or buf[a + 4] != 45 or buf[a + 7] != 45 or buf[a + 10] != 84 \
            or buf[a + 13] != 58 or buf[a + 16] != 58 or buf[a + m - 1] != 90:
        return 0, 0
    year = _digits(buf, a, 4)
    month = _digits(buf, a + 5, 2)
    day = _digits(buf, a + 8, 2)
    hour = _digits(buf, a + 11, 2)
    minute = _digits(buf, a + 14, 2)
    sec = _digits(buf, a + 17, 2)
    if year < 1 or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23 or minute < 0 or minute > 59 \
            or sec < 0 or sec > 59:
        return 0, 0
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    mdays = 29 if month == 2 and leap else _MONTH_DAYS[month - 1]
    if day > mdays:
        return 0, 0
    frac = 0
    if m > 20:
        if buf[a + 19] != 46:
            return 0, 0
        k = m - 21
        f = _digits(buf, a + 20, k)
        if f < 0:
            return 0, 0
        for _ in range(k, 6):
            f *= 10
        for _ in range(6, k):
            f //= 10
        frac = f
    # days since 1970-01-01 (Howard Hinnant's days_from_civil)
    y = year - 1 if month <= 2 else year
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (month - 3 if month > 2 else month + 9) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    days = era * 146097 + doe - 719468
    return 1, ((days * 24 + hour) * 60 + minute) * 60_000_000 + sec * 1_000_000 + frac


def warm_up() -> None:
    """Compile (or load from the cache) for the argument types the callers pass."""
    z = np.zeros(1, np.int64)
    ro_z, ro_end = np.frombuffer(z.tobytes(), np.int64), np.frombuffer(np.array([9]).tobytes(), np.int64)
    # bytes and Arrow buffers are read-only: a type of their own, for the bodies and their bounds
    for buf, starts, ends in ((np.frombuffer(b'{"a":"1"}', np.uint8), ro_z, ro_end),
                              (np.frombuffer(b'{"a":"1"}', np.uint8), z, np.array([9])),
                              (np.zeros(9, np.uint8), ro_z, ro_end), (np.zeros(9, np.uint8), z, np.array([9]))):
        key = np.frombuffer(b"a", np.uint8)
        classify(buf)
        scan(np.zeros(MAX_DEPTH + 2, np.uint8), z.copy(), z.copy(), buf, quotes(buf), 0, 1, starts, ends, key,
             np.array([0, 1]), key, np.array([0, 1]), np.array([0], np.int8), False, False, False,
             np.zeros((1, 1), np.int64), np.zeros((1, 1)), np.zeros((1, 1), np.uint8), np.zeros((1, 9), np.uint8),
             z.copy(), np.zeros((1, 1), np.int64), 0, z.copy(), np.zeros(1, np.uint8), np.zeros((1, 4), np.int64),
             np.zeros((4, 2), np.int64))
