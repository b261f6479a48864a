"""Resource names, validated one way by every service.

A name is matched whole (``re.fullmatch``: a trailing newline is refused, as is
anything ``$`` would have let through) and kept short enough for every backend
it reaches: a file or folder name (255 bytes), a NATS subject or stream name
(names are mapped to ``[A-Za-z0-9_-]``), a PostgreSQL identifier (63 bytes) with
a prefix. Every refusal is INVALID_ARGUMENT naming the field, the value and the
rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headwater.errors import HeadwaterError, Reason

__all__ = ["NameRule", "RULES", "check_name"]


@dataclass(frozen=True)
class NameRule:
    """What one kind of name may be: ``pattern`` (matched whole) and ``max_len``."""

    kind: str
    pattern: re.Pattern[str]
    max_len: int
    allowed: str

    def check(self, value: str, field: str) -> str:
        if not value:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field} is empty: name a {self.kind}",
                                 metadata={"field": field})
        if len(value) > self.max_len:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"{field}: a {self.kind} name is at most {self.max_len} characters, "
                                 f"this one has {len(value)}", metadata={"field": field})
        if not self.pattern.fullmatch(value):
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"{field}: {value[:80]!r} is not a valid {self.kind} name: {self.allowed}",
                                 metadata={"field": field})
        return value


_WORD = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_DESC = ("letters, digits, '.', '_' and '-', starting with a letter or digit, "
         "at most {n} characters")


def _rule(kind: str, pattern: str, max_len: int, allowed: str | None = None) -> NameRule:
    return NameRule(kind, re.compile(pattern), max_len, allowed or _DESC.format(n=max_len))


#: Every kind of name, by kind.
RULES: dict[str, NameRule] = {
    # Event Hubs allows 256; 50 keeps hub/partition file paths, NATS stream names
    # (HW_<hub>_<partition>) and PostgreSQL identifiers with a prefix inside their limits.
    "hub": _rule("hub", _WORD, 50),
    "consumer group": _rule("consumer group", r"[A-Za-z0-9$][A-Za-z0-9$._-]*", 50,
                            "letters, digits, '$', '.', '_' and '-', at most 50 characters"),
    "policy": _rule("policy", _WORD, 64),
    "job": _rule("job", _WORD, 63),
    "alert rule": _rule("alert rule", _WORD, 63),
    "sink": _rule("sink", _WORD, 63),
    "schema group": _rule("schema group", _WORD, 50),
    "schema": _rule("schema", r"[A-Za-z0-9_][A-Za-z0-9._-]*", 100,
                    "letters, digits, '.', '_' and '-', starting with a letter, digit or '_', "
                    "at most 100 characters"),
    "secret": _rule("secret", _WORD, 63),
}


def check_name(kind: str, value: str, field: str = "name") -> str:
    """``value`` when it is a valid ``kind`` name; INVALID_ARGUMENT otherwise."""
    return RULES[kind].check(value, field)
