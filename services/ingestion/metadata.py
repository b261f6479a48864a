"""Where the ingestion service keeps its metadata: one interface, two stores.

The metadata is every hub's settings and consumer groups (one record per hub,
with a revision a change must present), and per hub, consumer group and
partition a checkpoint and an ownership claim (whose etag a claim must present).

- :class:`FileMetadata` (``log_backend: embedded``): ``hub.json`` per hub folder
  and the ``checkpoints.jsonl`` journal of :mod:`.checkpoints`, in a data folder
  that one process holds with an exclusive lock (:class:`DataFolderLock`).
- ``KvMetadata`` (``log_backend: nats``, in :mod:`.metadata_nats`): JetStream
  key-value buckets shared by every ingestion instance; revisions and etags are
  the KV revisions.

:class:`~headwater.services.ingestion.hubs.HubStore` talks to this interface
only; nothing else in the service knows which store it runs on.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from headwater.config import ConfigError
from headwater.services.ingestion.checkpoints import CheckpointRecord, CheckpointStore, OwnershipRecord
from headwater.services.ingestion.faults import FaultRules
from headwater.services.ingestion.quotas import HubQuota
from headwater.storage import write_atomic

__all__ = ["DataFolderLock", "FileMetadata", "MetadataStore", "Revisioned"]

#: (hub settings as a dict, revision); revision 0 means "not stored yet".
Revisioned = tuple[dict, int]


class MetadataStore(ABC):
    """Hub records (with revisions), checkpoints and ownership claims."""

    #: True when other service instances share this store (the cached view may be stale).
    shared = False

    async def open(self) -> None:
        """Connect / lock; called once before anything else."""

    async def close(self) -> None:
        """Release what :meth:`open` took."""

    def watch(self, on_change: Callable[[str, Revisioned | None], None]) -> None:
        """Call ``on_change(hub_id, record or None when deleted)`` for changes made by
        other instances (a shared store only)."""

    # -- state the servicer keeps per instance unless the store is shared ----------

    def fault_rules(self) -> FaultRules:
        """The fault rules (``*_async`` methods); in memory here."""
        return FaultRules()

    async def take_quota(self, hub_id: str, quota: HubQuota, direction: str, events: int, nbytes: int,
                         on_inflate) -> None:
        """Take from a hub's throughput buckets (QUOTA_EXCEEDED when empty); in memory here."""
        quota._take(direction, events, nbytes, on_inflate)

    #: Called with (key, reader_id, owner_level, opened) when a reader opens or ends on another instance.
    on_reader: Callable[[tuple[str, str, str], str, int, bool], None] | None = None

    async def announce_reader(self, key: tuple[str, str, str], reader_id: str, owner_level: int,
                              opened: bool) -> None:
        """Tell other instances that a reader of ``key`` (hub, group, partition) opened or ended."""

    # -- hubs ---------------------------------------------------------------------

    @abstractmethod
    async def list_hubs(self) -> dict[str, Revisioned]:
        """Every hub record."""

    @abstractmethod
    async def get_hub(self, hub_id: str) -> Revisioned | None:
        """One hub record, or None."""

    @abstractmethod
    async def create_hub(self, hub_id: str, record: dict) -> int | None:
        """Store a new hub record; its revision, or None when the hub exists."""

    @abstractmethod
    async def update_hub(self, hub_id: str, record: dict, revision: int) -> int | None:
        """Replace a hub record stored at ``revision``; the new revision, or None
        when someone changed it since (re-read and retry)."""

    @abstractmethod
    async def delete_hub(self, hub_id: str) -> None:
        """Remove a hub record with its checkpoints and claims."""

    # -- checkpoints and ownership ---------------------------------------------

    @abstractmethod
    async def update_checkpoint(self, hub_id: str, group: str, partition_id: str, offset: int,
                                sequence_number: int) -> CheckpointRecord:
        """Store a checkpoint (last writer wins, as a blob checkpoint)."""

    @abstractmethod
    async def list_checkpoints(self, hub_id: str, group: str) -> list[CheckpointRecord]:
        """Checkpoints of a consumer group, by partition."""

    @abstractmethod
    async def list_ownership(self, hub_id: str, group: str) -> list[OwnershipRecord]:
        """Ownership claims of a consumer group, by partition."""

    @abstractmethod
    async def claim(self, hub_id: str, group: str, partition_id: str, owner_id: str,
                    etag: str) -> OwnershipRecord | None:
        """Claim a partition presenting the current etag (empty: never claimed);
        the new claim, or None when the etag is not the current one."""

    @abstractmethod
    async def delete_group(self, hub_id: str, group: str) -> None:
        """Remove a consumer group's checkpoints and claims."""


def sort_by_partition(records: list) -> list:
    return sorted(records, key=lambda r: int(r.partition_id) if r.partition_id.isdigit() else 0)


class DataFolderLock:
    """An exclusive ``flock`` on ``<folder>/.lock`` holding the owner's pid.

    A second process (or a second service in one process) on the same folder
    gets a ConfigError naming the folder and the holder's pid. The kernel drops
    the lock when the holder exits, kill -9 included.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / ".lock"
        self._fd: int | None = None

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(
                f"the data folder {self.folder} is in use by another ingestion process (pid {holder}); "
                "stop it, or give this one its own data_dir (the embedded log has one writer per folder; "
                "run several instances with log_backend: nats)", setting="data_dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


class FileMetadata(MetadataStore):
    """The embedded store: ``hubs/<hub>/hub.json`` and ``hubs/<hub>/checkpoints.jsonl``."""

    def __init__(self, root: Path, ownership_expiry_s: float = 30.0, lock: bool = True) -> None:
        self.root = Path(root)
        self.expiry_s = ownership_expiry_s
        self.records: dict[str, Revisioned] = {}
        self.journals: dict[str, CheckpointStore] = {}
        self.lock = DataFolderLock(self.root.parent) if lock else None

    def open_sync(self) -> None:
        if self.lock is not None and self.lock._fd is None:
            self.lock.acquire()
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in sorted(self.root.iterdir()):
            meta_path = folder / "hub.json"
            if folder.name.startswith(".") or not meta_path.exists():
                if folder.name.startswith(".deleted-"):
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            record = json.loads(meta_path.read_text())
            self.records[record["name"]] = (record, 1)

    async def open(self) -> None:
        self.open_sync()

    async def close(self) -> None:
        self.close_sync()

    def close_sync(self) -> None:
        for journal in self.journals.values():
            journal.close()
        self.journals.clear()
        if self.lock is not None:
            self.lock.release()

    def _journal(self, hub_id: str) -> CheckpointStore:
        journal = self.journals.get(hub_id)
        if journal is None:
            journal = self.journals[hub_id] = CheckpointStore(self.root / hub_id / "checkpoints.jsonl",
                                                              self.expiry_s).open()
        return journal

    # -- hubs ---------------------------------------------------------------------

    async def list_hubs(self) -> dict[str, Revisioned]:
        return dict(self.records)

    async def get_hub(self, hub_id: str) -> Revisioned | None:
        return self.records.get(hub_id)

    def create_sync(self, hub_id: str, record: dict) -> int | None:
        if hub_id in self.records:
            return None
        folder = self.root / hub_id
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        _write_json(folder / "hub.json", record)
        self.records[hub_id] = (record, 1)
        return 1

    async def create_hub(self, hub_id: str, record: dict) -> int | None:
        return self.create_sync(hub_id, record)

    def update_sync(self, hub_id: str, record: dict, revision: int) -> int | None:
        current = self.records.get(hub_id)
        if current is None or current[1] != revision:
            return None
        _write_json(self.root / hub_id / "hub.json", record)
        self.records[hub_id] = (record, revision + 1)
        return revision + 1

    async def update_hub(self, hub_id: str, record: dict, revision: int) -> int | None:
        return self.update_sync(hub_id, record, revision)

    def delete_sync(self, hub_id: str) -> None:
        self.records.pop(hub_id, None)
        journal = self.journals.pop(hub_id, None)
        if journal is not None:
            journal.close()
        folder = self.root / hub_id
        if folder.exists():
            graveyard = self.root / f".deleted-{hub_id}-{time.time_ns()}"
            os.replace(folder, graveyard)
            shutil.rmtree(graveyard, ignore_errors=True)

    async def delete_hub(self, hub_id: str) -> None:
        self.delete_sync(hub_id)

    # -- checkpoints and ownership ---------------------------------------------

    async def update_checkpoint(self, hub_id, group, partition_id, offset, sequence_number):
        return self._journal(hub_id).update_checkpoint(group, partition_id, offset, sequence_number)

    async def list_checkpoints(self, hub_id, group):
        return self._journal(hub_id).list_checkpoints(group)

    async def list_ownership(self, hub_id, group):
        return self._journal(hub_id).list_ownership(group)

    async def claim(self, hub_id, group, partition_id, owner_id, etag):
        return self._journal(hub_id).claim(group, partition_id, owner_id, etag)

    async def delete_group(self, hub_id, group):
        self._journal(hub_id).delete_group(group)


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data).encode())
