"""The checkpoint store kept in the service: checkpoints and ownership claims.

This is the store the Event Hubs processor needs (BlobCheckpointStore's role):
per hub, consumer group and partition, the last processed offset and sequence
number, and an ownership claim (owner id, etag, expiry) that a claim replaces
only by presenting the current etag. Both live in a journal of JSON lines per
hub (``checkpoints.jsonl``), appended with one write per change (survives kill
-9) and compacted when it grows.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from headwater.storage import write_atomic

__all__ = ["CheckpointRecord", "CheckpointStore", "OwnershipRecord"]


@dataclass
class CheckpointRecord:
    """How far a consumer group processed a partition."""

    consumer_group: str
    partition_id: str
    offset: int
    sequence_number: int
    update_time: float


@dataclass
class OwnershipRecord:
    """A partition's owner within a consumer group."""

    consumer_group: str
    partition_id: str
    owner_id: str
    etag: str
    last_modified_time: float
    expire_time: float


class CheckpointStore:
    """Checkpoints and ownership of one hub."""

    def __init__(self, path: Path, ownership_expiry_s: float = 30.0) -> None:
        self.path = Path(path)
        self.expiry_s = ownership_expiry_s
        self.checkpoints: dict[tuple[str, str], CheckpointRecord] = {}
        self.ownership: dict[tuple[str, str], OwnershipRecord] = {}
        self._lines = 0
        self._fd: int | None = None

    def open(self) -> CheckpointStore:
        if self.path.exists():
            for line in self.path.read_bytes().splitlines():
                try:
                    self._apply(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after kill -9
                self._lines += 1
        self._compact()
        return self

    def _apply(self, e: dict) -> None:
        key = (e["g"], e["p"])
        if e["k"] == "c":
            self.checkpoints[key] = CheckpointRecord(e["g"], e["p"], e["o"], e["s"], e["t"])
        elif e["k"] == "o":
            self.ownership[key] = OwnershipRecord(e["g"], e["p"], e["w"], e["e"], e["t"], e["x"])
        elif e["k"] == "dg":
            for d in (self.checkpoints, self.ownership):
                for k in [k for k in d if k[0] == e["g"]]:
                    del d[k]

    def _entries(self) -> list[dict]:
        out = [{"k": "c", "g": c.consumer_group, "p": c.partition_id, "o": c.offset, "s": c.sequence_number,
                "t": c.update_time} for c in self.checkpoints.values()]
        out += [{"k": "o", "g": o.consumer_group, "p": o.partition_id, "w": o.owner_id, "e": o.etag,
                 "t": o.last_modified_time, "x": o.expire_time} for o in self.ownership.values()]
        return out

    def _compact(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        entries = self._entries()
        write_atomic(self.path, b"".join(json.dumps(e).encode() + b"\n" for e in entries))
        self._lines = len(entries)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _write(self, entry: dict) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(self._fd, json.dumps(entry).encode() + b"\n")
        self._lines += 1
        if self._lines > 1000 and self._lines > 4 * (len(self.checkpoints) + len(self.ownership)):
            self._compact()

    # -- checkpoints ------------------------------------------------------------

    def update_checkpoint(self, group: str, partition_id: str, offset: int, sequence_number: int) -> CheckpointRecord:
        rec = CheckpointRecord(group, partition_id, offset, sequence_number, time.time())
        self.checkpoints[(group, partition_id)] = rec
        self._write({"k": "c", "g": group, "p": partition_id, "o": offset, "s": sequence_number,
                     "t": rec.update_time})
        return rec

    def list_checkpoints(self, group: str) -> list[CheckpointRecord]:
        return sorted((c for c in self.checkpoints.values() if c.consumer_group == group),
                      key=lambda c: int(c.partition_id) if c.partition_id.isdigit() else 0)

    # -- ownership ----------------------------------------------------------------

    def list_ownership(self, group: str) -> list[OwnershipRecord]:
        return sorted((o for o in self.ownership.values() if o.consumer_group == group),
                      key=lambda o: int(o.partition_id) if o.partition_id.isdigit() else 0)

    def claim(self, group: str, partition_id: str, owner_id: str, etag: str) -> OwnershipRecord | None:
        """Claim a partition: succeeds when ``etag`` is the stored one, or when the
        partition was never claimed (empty etag). Returns the new claim or None."""
        current = self.ownership.get((group, partition_id))
        if current is not None and current.etag != etag:
            return None
        if current is None and etag:
            return None
        now = time.time()
        rec = OwnershipRecord(group, partition_id, owner_id, uuid.uuid4().hex, now, now + self.expiry_s)
        self.ownership[(group, partition_id)] = rec
        self._write({"k": "o", "g": group, "p": partition_id, "w": owner_id, "e": rec.etag, "t": now,
                     "x": rec.expire_time})
        return rec

    def delete_group(self, group: str) -> None:
        self._apply({"k": "dg", "g": group, "p": ""})
        self._write({"k": "dg", "g": group, "p": ""})

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
