"""LIKE in linear time (issue 9 part 5), REGEXMATCH guarded, SUBSTRING's negative length,
PATINDEX: unit calls and the same through the engine (``headwater.services.processing.testing.run_query``)."""

from __future__ import annotations

import pytest

from headwater.errors import HeadwaterError
from headwater.plugins import functions as F
from headwater.services.processing.testing import run_query

# 14 KB of log text: Python's backtracking regex took seconds on this (issue 9); RE2 does not.
NOISE = "error timeout " * 1000  # every word but 'retry', many times


def test_like_on_a_14kb_value_with_many_wildcards_completes_and_is_correct() -> None:
    pattern = "%error%timeout%retry%"
    assert len(NOISE) >= 14_000
    assert F._like(NOISE, pattern) is False
    assert F._like(NOISE + " retry", pattern) is True
    assert F._like("x" * 14_000 + "ERROR, Timeout; RETRY!", pattern) is True  # case-insensitive


def test_like_stall_through_the_engine() -> None:
    events = [{"id": 1, "msg": NOISE}, {"id": 2, "msg": NOISE + "retry"}, {"id": 3, "msg": None}]
    out = run_query("SELECT id FROM Input WHERE msg LIKE '%error%timeout%retry%'", {"Input": events})
    assert out["output"] == [{"id": 2}]
    out = run_query("SELECT id FROM Input WHERE msg NOT LIKE '%error%timeout%retry%'", {"Input": events})
    assert out["output"] == [{"id": 1}]


@pytest.mark.parametrize("s,pattern,expected", [
    ("a\nb", "a%b", True), ("a[b", "a[b", True), ("a-c", "a[-x]c", True), ("abc", "[z-a]%", False),
    ("a.c", "a_c", True), ("a$c", "a$c", True), ("(x)", "(%)", True), ("a\\b", "a\\b", True),
    ("", "%", True), ("", "_", False),
])
def test_like_edges(s, pattern, expected) -> None:
    assert F._like(s, pattern) is expected


@pytest.mark.parametrize("s,pattern,expected", [
    ("ABC-123", "[0-9][0-9][0-9]", 5), ("Hello", "l+", 3), ("HELLO", "hel", 1), ("abc", "x", 0),
    ("abc", "(", 0), ("abc", "[", 0), ("abc", "a{2,1}", 0),  # invalid patterns give 0 (documented)
    ("abcabc", r"(bc)a\1", 2), ("xfoobar", "foo(?=bar)", 2), ("foobaz", "foo(?=bar)", 0),  # ECMAScript only
    ("a\nb", "a.b", 1), ("€€x", "x", 3), (None, "a", None), ("a", None, None),
])
def test_regexmatch(s, pattern, expected) -> None:
    assert F.regexmatch(s, pattern) == expected


def test_regexmatch_catastrophic_pattern_is_linear() -> None:
    # (a+)+$ backtracks exponentially in a backtracking engine; RE2 answers at once
    assert F.regexmatch("a" * 5000 + "!", "(a+)+$") == 0
    assert F.regexmatch("a" * 5000, "(a+)+$") == 1


def test_regexmatch_invalid_pattern_through_the_engine_gives_zero() -> None:
    out = run_query("SELECT REGEXMATCH(s, '(') AS bad, REGEXMATCH(s, '[0-9]+') AS good FROM Input",
                    {"Input": [{"s": "AB-42"}]})
    assert out["output"] == [{"bad": 0, "good": 4}]


def test_substring() -> None:
    assert F.substring("abcdef", 2, 3) == "bcd"
    assert F.substring("abcdef", 0, 2) == "a"
    assert F.substring("abc", 2, 0) == ""
    with pytest.raises(ValueError, match="length must not be negative"):
        F.substring("abc", 1, -1)


def test_substring_negative_length_fails_the_statement() -> None:
    with pytest.raises(HeadwaterError) as info:
        run_query("SELECT SUBSTRING(s, 1, -2) AS x FROM Input", {"Input": [{"s": "abc"}]})
    # the function named once (it was "SUBSTRING: SUBSTRING: ...")
    assert str(info.value).endswith(": SUBSTRING: the length must not be negative, got -2"), str(info.value)
    assert str(info.value).count("SUBSTRING") == 1


@pytest.mark.parametrize("pattern,s,expected", [
    ("%ter%", "interesting", 3), ("%en_%", "interesting", 0), ("%en_ing", "interesting", 0),
    ("%e_t%", "interesting", 6), ("in%", "interesting", 1), ("%ing", "interesting", 9),
    ("%[0-9]%", "ab12", 3), ("%zz%", "interesting", 0), ("%", "abc", 1), ("%ER%", "interesting", 4),
    (None, "x", None), ("%x%", None, None),
])
def test_patindex(pattern, s, expected) -> None:
    assert F.patindex(pattern, s) == expected


def test_patindex_through_the_engine() -> None:
    out = run_query("SELECT PATINDEX('%[0-9]%', plate) AS p FROM Input", {"Input": [{"plate": "ABC-123"}]})
    assert out["output"] == [{"p": 5}]


def test_like_fast_path_agrees_with_the_automaton() -> None:
    """``%``-only patterns take a literal-search path; it must agree with RE2 everywhere."""
    import random

    rng = random.Random(11)
    for _ in range(3000):
        pattern = "".join(rng.choice(["%", "a", "b", "A", "ab", "%%", "ba"]) for _ in range(rng.randrange(0, 6)))
        value = "".join(rng.choice("abAB") for _ in range(rng.randrange(0, 9)))
        want = F.like_regex(pattern).fullmatch(value) is not None
        assert F._like(value, pattern) is want, (value, pattern)
