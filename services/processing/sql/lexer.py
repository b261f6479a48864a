"""Tokens of the Stream Analytics query language, each with its line and column.

Identifiers may be bracketed (``[Count]``, ``[0]``); ``'text'`` is a string
literal (``''`` escapes a quote). Double-quoted text is also read as a string
literal: the query-pattern and JSON-parsing articles use ``"Make1"`` and
``"Alert : ..."`` as literals, while the SELECT reference calls it a field
name (SEMANTICS.md §15.4); the literal reading is the one the documented
examples need.
"""

from __future__ import annotations

from dataclasses import dataclass

from headwater.services.processing.sql.diagnostics import error

__all__ = ["Token", "tokenize", "KEYWORDS"]

#: Reserved words: never read as a bare alias.
KEYWORDS = frozenset(
    """select from where group by having into as with union all join inner left right outer full
    cross apply on and or not is null in between like case when then else end timestamp over
    partition cast try_cast distinct match_recognize order asc desc true false""".split()
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident, qident, number, string, op, eof
    value: str
    line: int
    col: int

    @property
    def pos(self) -> tuple[int, int]:
        return (self.line, self.col)

    def is_kw(self, *words: str) -> bool:
        return self.kind == "ident" and self.value.lower() in words


_OPS3 = ("!<", "!>", "<>", "!=", "<=", ">=", "||")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens; raises QueryCompileError on a malformed token."""
    tokens: list[Token] = []
    i, n, line, line_start = 0, len(text), 1, 0
    while i < n:
        c = text[i]
        col = i - line_start + 1
        if c == "\n":
            line += 1
            line_start = i + 1
            i += 1
        elif c in " \t\r\f\v\ufeff":
            i += 1
        elif c == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c == "/" and text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise error("unterminated comment", (line, col))
            for k in range(i, j):
                if text[k] == "\n":
                    line += 1
                    line_start = k + 1
            i = j + 2
        elif c.isalpha() or c == "_" or c == "@":
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] in "_@$"):
                j += 1
            tokens.append(Token("ident", text[i:j], line, col))
            i = j
        elif c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            j = i
            while j < n and text[j].isdigit():
                j += 1
            if j < n and text[j] == "." and (j + 1 >= n or text[j + 1].isdigit() or not text[j + 1].isalpha()):
                j += 1
                while j < n and text[j].isdigit():
                    j += 1
            if j < n and text[j] in "eE" and j + 1 < n and (text[j + 1].isdigit() or
                                                            (text[j + 1] in "+-" and j + 2 < n and text[j + 2].isdigit())):
                j += 2
                while j < n and text[j].isdigit():
                    j += 1
            tokens.append(Token("number", text[i:j], line, col))
            i = j
        elif c in "'\"":
            j = i + 1
            buf = []
            sline = line
            while True:
                if j >= n:
                    raise error("unterminated string literal", (sline, col))
                if text[j] == c:
                    if j + 1 < n and text[j + 1] == c:
                        buf.append(c)
                        j += 2
                        continue
                    break
                if text[j] == "\n":
                    line += 1
                    line_start = j + 1
                buf.append(text[j])
                j += 1
            tokens.append(Token("string", "".join(buf), sline, col))
            i = j + 1
        elif c == "[":
            j = text.find("]", i + 1)
            if j < 0 or "\n" in text[i:j]:
                raise error("unterminated bracketed identifier", (line, col))
            tokens.append(Token("qident", text[i + 1:j], line, col))
            i = j + 1
        else:
            two = text[i:i + 2]
            if two in _OPS3:
                tokens.append(Token("op", two, line, col))
                i += 2
            elif c in "(),.*+-/%=<>;~&|^{}?":
                tokens.append(Token("op", c, line, col))
                i += 1
            else:
                raise error(f"unexpected character {c!r}", (line, col))
    if tokens:  # point just after the last token, not at trailing blank lines
        last = tokens[-1]
        width = len(last.value) + (2 if last.kind in ("string", "qident") else 0)
        tokens.append(Token("eof", "", last.line, last.col + width))
    else:
        tokens.append(Token("eof", "", line, n - line_start + 1))
    return tokens
