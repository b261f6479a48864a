"""Builtin event formats: JSON (one object per body, JSON lines or a JSON array) and CSV.

Avro comes as its own plugin (``plugins/avro.py``).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any

import orjson

from headwater.hookspecs import hookimpl
from headwater.serializers import ContentTypes, DecodeError, Serializer, loads_json

__all__ = ["CsvSerializer", "JsonSerializer"]


def _json_default(v: Any) -> Any:
    from datetime import datetime

    if isinstance(v, datetime):
        from headwater.functions import format_datetime

        return format_datetime(v)
    raise TypeError(f"cannot encode {type(v).__name__}")


class JsonSerializer(Serializer):
    """A body is one JSON object, a JSON array of objects, or JSON lines."""

    name = "json"
    aliases = ("jsonlines", "ndjson")
    content_types = ("application/json", "application/x-ndjson", "application/jsonl")
    file_suffixes = (".json", ".jsonl", ".ndjson")

    def decode(self, bodies: list[bytes], content_type: ContentTypes = "",
               on_error: Callable[[int, Exception], None] | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for i, body in enumerate(bodies):
            try:
                rows.extend(self._one(body))
            except (orjson.JSONDecodeError, DecodeError) as exc:
                if on_error is None:
                    raise DecodeError(str(exc)) from None
                on_error(i, exc)
        return rows

    def _one(self, body: bytes) -> list[dict[str, Any]]:
        try:
            v = loads_json(body)
        except orjson.JSONDecodeError as exc:
            lines = [line for line in body.splitlines() if line.strip()]
            if len(lines) <= 1:  # not JSON lines either (one line is the body itself)
                raise DecodeError(f"not JSON: {exc}") from None
            out = []
            for n, line in enumerate(lines, 1):
                try:
                    out.extend(self._one(line))
                except DecodeError as line_exc:
                    raise DecodeError(f"JSON line {n}: {line_exc}") from None
            return out
        items = v if isinstance(v, list) else [v]
        for item in items:
            if not isinstance(item, dict):
                raise DecodeError("an event must be a JSON object")
        return items

    def encode(self, rows: list[dict[str, Any]]) -> list[bytes]:
        return [orjson.dumps(r, default=_json_default) for r in rows]


class CsvSerializer(Serializer):
    """CSV with a header line; every value is a string (as Stream Analytics reads CSV)."""

    name = "csv"
    content_types = ("text/csv",)
    file_suffixes = (".csv",)

    def decode(self, bodies: list[bytes], content_type: ContentTypes = "",
               on_error: Callable[[int, Exception], None] | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for i, body in enumerate(bodies):
            try:
                text = body.decode("utf-8-sig")
                rows.extend(dict(r) for r in csv.DictReader(io.StringIO(text)))
            except (UnicodeDecodeError, csv.Error) as exc:
                if on_error is None:
                    raise DecodeError(str(exc)) from None
                on_error(i, exc)
        return rows

    def encode(self, rows: list[dict[str, Any]]) -> list[bytes]:
        out = []
        for r in rows:
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(["Record" if isinstance(v, dict) else "Array" if isinstance(v, list) else
                        _json_default(v) if not isinstance(v, (str, int, float, type(None))) else v
                        for v in r.values()])
            out.append(buf.getvalue().rstrip("\r\n").encode())
        return out


@hookimpl
def register_serializers(register) -> None:
    register(JsonSerializer())
    register(CsvSerializer())
