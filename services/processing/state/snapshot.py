"""Checkpoint blobs of a running query (temporary: replaced by the versioned Arrow format)."""

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


def dumps(rt: Any, compiled: Any) -> bytes:
    state = {"ops": [op.snapshot() if hasattr(op, "snapshot") else op.state() for op in rt.statements],
             "sources": {k: [s.snapshot() if hasattr(s, "snapshot") else s.state() for s in v]
                         for k, v in rt.sources.items()},
             "queues": rt.queues, "watermark": rt.watermark, "outputs": rt.outputs, "counters": rt.counters}
    return MAGIC + bytes([VERSION]) + _fingerprint(compiled.text) + pickle.dumps(state, protocol=5)


def loads(rt: Any, blob: bytes, compiled: Any) -> None:
    if blob[:4] != MAGIC:
        raise SnapshotError("not a query snapshot")
    if blob[4] != VERSION:
        raise SnapshotError(f"snapshot version {blob[4]} is not {VERSION}")
    if blob[5:13] != _fingerprint(compiled.text):
        raise SnapshotError("the snapshot belongs to a different query")
    state = pickle.loads(blob[13:])
    for op, st in zip(rt.statements, state["ops"]):
        op.restore(st) if hasattr(op, "restore") else op.load(*st)
    for k, v in state["sources"].items():
        for s, st in zip(rt.sources.get(k, []), v):
            s.restore(st) if hasattr(s, "restore") else s.load(*st)
    rt.queues, rt.watermark, rt.outputs, rt.counters = state["queues"], state["watermark"], state["outputs"], \
        state["counters"]
