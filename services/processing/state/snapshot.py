"""Checkpoint blobs of a running query: a versioned header plus the pickled state.

The state is the engine's own objects (sources' ordering clocks and buffers, window
logic snapshots, partial aggregates, join buffers); a blob is only read back by the
same query text, which :func:`loads` checks through a fingerprint.
"""

from __future__ import annotations

import hashlib
import pickle
from typing import Any

__all__ = ["dumps", "loads", "SnapshotError", "VERSION"]

MAGIC = b"HWQS"
VERSION = 1


class SnapshotError(ValueError):
    """A blob that is not a snapshot of this query (or of this engine version)."""


def _fingerprint(query_text: str) -> bytes:
    return hashlib.sha256(query_text.encode()).digest()[:8]


def dumps(state: Any, query_text: str) -> bytes:
    return MAGIC + bytes([VERSION]) + _fingerprint(query_text) + pickle.dumps(state, protocol=5)


def loads(blob: bytes, query_text: str) -> Any:
    if blob[:4] != MAGIC:
        raise SnapshotError("not a query snapshot")
    if blob[4] != VERSION:
        raise SnapshotError(f"snapshot version {blob[4]} is not {VERSION}")
    if blob[5:13] != _fingerprint(query_text):
        raise SnapshotError("the snapshot belongs to a different query")
    return pickle.loads(blob[13:])
