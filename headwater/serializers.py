"""Plugin-facing API for event formats (``register_serializers``).

A :class:`Serializer` turns a batch of event bodies into rows (``decode``) and rows into
bodies (``encode``). ``name`` is the format in a job's input/output (``json``, ``csv``,
``avro``); ``content_types`` the MIME types it answers to; ``file_suffixes`` the file
names ``headwater query test`` reads with it. A body may hold several events (a JSON
array, CSV lines, an Avro container): ``decode`` returns every event of every body, and
reports bodies it cannot read through ``on_error`` instead of failing the batch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import orjson

__all__ = ["Serializer", "DecodeError", "decode_json_bodies"]


class DecodeError(ValueError):
    """A body that cannot be read (the event is dropped and counted)."""


class Serializer(ABC):
    name: str = ""
    aliases: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    file_suffixes: tuple[str, ...] = ()

    @abstractmethod
    def decode(self, bodies: list[bytes], content_type: str = "",
               on_error: Callable[[int, Exception], None] | None = None) -> list[dict[str, Any]]:
        """Rows of every event in ``bodies`` (in order)."""

    def decode_with_index(self, bodies: list[bytes], content_type: str = "",
                          on_error: Callable[[int, Exception], None] | None = None
                          ) -> tuple[list[dict[str, Any]], list[int]]:
        """Rows plus, for each row, the index of the body it came from."""
        rows: list[dict[str, Any]] = []
        index: list[int] = []
        for i, body in enumerate(bodies):
            got = self.decode([body], content_type, (lambda _j, exc, i=i: on_error(i, exc)) if on_error else None)
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
                       partition_ids: list | None = None) -> tuple[list[dict], list[int] | None, list | None]:
    """JSON bodies -> rows (a body holding an array gives one row per element), with each
    row's arrival time and partition carried over from its body.

    Bodies that are not JSON objects are dropped and counted as conversion errors.
    """
    rows: list[dict] = []
    arrivals: list[int] | None = [] if arrival_times is not None else None
    parts: list | None = [] if partition_ids is not None else None
    for i, body in enumerate(bodies):
        try:
            v = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            if counters is not None:
                counters.error(f"InputDeserializationError: {exc}")
            continue
        items = v if isinstance(v, list) else [v]
        for item in items:
            if not isinstance(item, dict):
                if counters is not None:
                    counters.error("InputDeserializationError: an event must be a JSON object")
                continue
            rows.append(item)
            if arrivals is not None:
                arrivals.append(arrival_times[i])
            if parts is not None:
                parts.append(partition_ids[i])
    return rows, arrivals, parts
