"""Plugin-facing API for event formats (``register_serializers``).

A :class:`Serializer` turns a batch of event bodies into rows (``decode``) and rows into
bodies (``encode``). ``name`` is the format in a job's input/output (``json``, ``csv``,
``avro``); ``content_types`` the MIME types it answers to; ``file_suffixes`` the file
names ``headwater query test`` reads with it. A body may hold several events (a JSON
array, CSV lines, an Avro container): ``decode`` returns every event of every body, and
reports bodies it cannot read through ``on_error`` instead of failing the batch.

Everything the engine and the CLI call on a serializer is declared on :class:`Serializer`
(docs/plugin_hooks.md): no format is special-cased by name. A format whose events
name a schema in the schema registry sets ``uses_registry`` and returns a bound copy
from :meth:`Serializer.configured`; a format with self-describing files sets ``magic``.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from headwater.functions import BIGINT_MAX, BIGINT_MIN

__all__ = ["ContentTypes", "DecodeError", "Serializer", "decode_json_bodies", "loads_json", "per_body"]


class DecodeError(ValueError):
    """A body that cannot be read (the event is dropped and counted)."""


_LONG_DIGITS = re.compile(rb"\d{19}")


class _PastBigint(str):
    """An integer literal outside bigint, as the checking parse marks it."""


def _bigint(text: str) -> int | _PastBigint:
    v = int(text)
    return v if BIGINT_MIN <= v <= BIGINT_MAX else _PastBigint(text)


def _past_bigint(value: Any) -> _PastBigint | None:
    """The first integer outside bigint in ``value``, in document order (a loop, not a
    recursion: events may nest as deep as orjson reads them)."""
    todo = [value]
    while todo:
        v = todo.pop()
        if isinstance(v, _PastBigint):
            return v
        if isinstance(v, dict):
            todo.extend(reversed(list(v.values())))
        elif isinstance(v, list):
            todo.extend(reversed(v))
    return None


def loads_json(body: bytes | str, fields: set[str] | None = None) -> Any:
    """``orjson.loads``, except that a JSON integer outside bigint's 64 bits is an error
    (``DecodeError``), as the data types reference says Stream Analytics fails to deserialize
    such an event (orjson would give a float past 2**64 and a Python int below it). Only the
    top-level ``fields`` (lower case) an event's query reads are checked when given, as the
    engine's typed decode reads only those; None checks the whole event. Bodies with a run
    of 19 digits, where such an integer can be, are parsed again to check."""
    v = orjson.loads(body)
    raw = body.encode() if isinstance(body, str) else body
    if _LONG_DIGITS.search(raw) is None:
        return v
    try:
        marked = json.loads(raw, parse_int=_bigint)
    except RecursionError:
        raise DecodeError("the event nests too deeply to check its integers against the bigint range") from None
    for event in marked if isinstance(marked, list) else [marked]:
        if isinstance(event, dict) and fields is not None:
            event = [x for k, x in event.items() if k.lower() in fields]
        bad = _past_bigint(event)
        if bad is not None:
            raise DecodeError(f"the integer {bad} is outside the bigint range {BIGINT_MIN}..{BIGINT_MAX}")
    return v


#: The content type of a batch's bodies: one for all, or one per body.
ContentTypes = str | Sequence[str]


def per_body(content_type: ContentTypes, n: int) -> Sequence[str]:
    """``content_type`` as one type per body."""
    return [content_type] * n if isinstance(content_type, str) else content_type


class Serializer(ABC):
    """An event format. Subclasses set ``name`` and implement :meth:`decode` and :meth:`encode`."""

    #: the format name in a job's input or output (``json``)
    name: str = ""
    aliases: tuple[str, ...] = ()
    #: MIME types this format answers to
    content_types: tuple[str, ...] = ()
    #: file name suffixes ``headwater query test`` reads with it (``.json``)
    file_suffixes: tuple[str, ...] = ()
    #: leading bytes of this format's files, recognised whatever the file's name (b"" for none)
    magic: bytes = b""
    #: events name their schema in the schema registry: the engine passes its registry
    #: client to :meth:`configured` and decodes with the copy it returns
    uses_registry: bool = False

    def configured(self, registry: Any = None, **options: Any) -> Serializer:
        """A copy bound to a schema registry client (``uses_registry`` formats) and to
        format options; this serializer itself when it has none."""
        return self

    @abstractmethod
    def decode(self, bodies: list[bytes], content_type: ContentTypes = "",
               on_error: Callable[[int, Exception], None] | None = None) -> list[dict[str, Any]]:
        """Rows of every event in ``bodies`` (in order). ``on_error(i, exc)`` reports body
        ``i`` that cannot be read (its events are skipped); without it the error is raised."""

    def decode_with_index(self, bodies: list[bytes], content_type: ContentTypes = "",
                          on_error: Callable[[int, Exception], None] | None = None
                          ) -> tuple[list[dict[str, Any]], list[int]]:
        """Rows plus, for each row, the index of the body it came from (the engine calls
        this one; override it when a batch decodes faster than body by body)."""
        types = per_body(content_type, len(bodies))
        rows: list[dict[str, Any]] = []
        index: list[int] = []
        for i, body in enumerate(bodies):
            one: Callable[[int, Exception], None] | None = None
            if on_error is not None:
                def one(_j: int, exc: Exception, i: int = i, on_error: Callable[..., Any] = on_error) -> None:
                    on_error(i, exc)
            got = self.decode([body], types[i], one)
            rows.extend(got)
            index.extend([i] * len(got))
        return rows, index

    @abstractmethod
    def encode(self, rows: list[dict[str, Any]]) -> list[bytes]:
        """One body per row."""

    def read_file(self, data: bytes) -> list[dict[str, Any]]:
        """All events of a whole file (for local testing)."""
        return self.decode([data])


def decode_json_bodies(bodies: list[bytes], arrival_times: list[int] | None, counters: Any = None,
                       partition_ids: list[Any] | None = None, fields: set[str] | None = None,
                       ) -> tuple[list[dict[str, Any]], list[int] | None, list[Any] | None]:
    """JSON bodies -> rows (a body holding an array gives one row per element), with each
    row's arrival time and partition carried over from its body.

    Bodies that are not JSON objects, or hold an integer past bigint in one of ``fields``
    (the fields the query reads; None: any), are dropped and counted as conversion errors.
    """
    rows: list[dict[str, Any]] = []
    arrivals: list[int] | None = [] if arrival_times is not None else None
    parts: list[Any] | None = [] if partition_ids is not None else None
    for i, body in enumerate(bodies):
        try:
            v = loads_json(body, fields)
        except (orjson.JSONDecodeError, DecodeError) as exc:
            if counters is not None:
                counters.error(f"InputDeserializationError: {exc}", index=i, body=True)
            continue
        items = v if isinstance(v, list) else [v]
        for item in items:
            if not isinstance(item, dict):
                if counters is not None:
                    counters.error("InputDeserializationError: an event must be a JSON object", index=i, body=True)
                continue
            rows.append(item)
            if arrivals is not None and arrival_times is not None:
                arrivals.append(arrival_times[i])
            if parts is not None and partition_ids is not None:
                parts.append(partition_ids[i])
    return rows, arrivals, parts
