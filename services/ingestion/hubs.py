"""Hubs: metadata, consumer groups and the partition logs of each hub.

Layout under the data folder::

    hubs/<hub>/hub.json                 settings, consumer groups (atomic replace)
    hubs/<hub>/partitions/<id>/*.seg    the partition logs
    hubs/<hub>/checkpoints.jsonl        checkpoints and ownership (journal)
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from headwater.errors import HeadwaterError, Reason
from headwater.names import check_name
from headwater.services.ingestion.log.embedded import FsyncPolicy, PartitionLog

__all__ = ["DEFAULT_CONSUMER_GROUP", "HubMeta", "HubStore", "hub_id_from_name", "partition_for_key"]

DEFAULT_CONSUMER_GROUP = "$Default"


def partition_for_key(key: str, partition_count: int) -> int:
    """The partition a key lands in: CRC-32 of its UTF-8 bytes, stable across restarts."""
    return zlib.crc32(key.encode()) % partition_count


def hub_id_from_name(name: str, field_name: str = "name") -> str:
    """``hubs/x`` or ``x`` -> ``x``; INVALID_ARGUMENT when empty or malformed."""
    hub = name.removeprefix("hubs/")
    hub = hub.split("/", 1)[0]
    if not hub:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field_name} is empty: name a hub (hubs/<hub>)",
                             metadata={"field": field_name})
    return check_name("hub", hub, field_name)


@dataclass
class HubMeta:
    """A hub's settings and consumer groups, as kept in hub.json."""

    name: str
    partition_count: int
    retention_s: float
    create_time: float
    consumer_groups: dict[str, dict] = field(default_factory=dict)
    throughput_units: int = 0
    auto_inflate: bool = False
    maximum_units: int = 0
    capture: dict = field(default_factory=dict)
    request_id: str = ""

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, data: dict) -> HubMeta:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


class Hub:
    """An open hub: metadata and partition logs."""

    def __init__(self, meta: HubMeta, folder: Path, partitions: list[PartitionLog]) -> None:
        self.meta = meta
        self.folder = folder
        self.partitions = partitions
        self._next = 0

    @property
    def name(self) -> str:
        return self.meta.name

    def partition(self, partition_id: str, field_name: str = "partition_id") -> PartitionLog:
        try:
            index = int(partition_id)
        except ValueError:
            index = -1
        if not 0 <= index < len(self.partitions) or str(index) != partition_id:
            raise HeadwaterError(
                Reason.RESOURCE_NOT_FOUND if partition_id else Reason.INVALID_ARGUMENT,
                f"hub {self.name!r} has no partition {partition_id!r}; partitions are "
                f"0..{len(self.partitions) - 1}",
                metadata={"resource": f"hubs/{self.name}/partitions/{partition_id}", "field": field_name})
        return self.partitions[index]

    def route(self, partition_id: str, partition_key: str) -> PartitionLog:
        if partition_id:
            return self.partition(partition_id)
        if partition_key:
            return self.partitions[partition_for_key(partition_key, len(self.partitions))]
        # Balanced: round robin over partitions that are not closing.
        for _ in range(len(self.partitions)):
            self._next = (self._next + 1) % len(self.partitions)
            part = self.partitions[self._next]
            if not part.closed:
                return part
        return self.partitions[self._next]

    def save(self) -> None:
        _write_json(self.folder / "hub.json", self.meta.to_json())


class HubStore:
    """Every hub of the service."""

    def __init__(self, root: Path, *, fsync_policy: str = "interval", segment_max_bytes: int = 64 << 20,
                 segment_max_age_s: float = 3600.0, max_partitions: int = 32, max_consumer_groups: int = 20) -> None:
        self.root = Path(root) / "hubs"
        self.fsync_policy = FsyncPolicy(fsync_policy)
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_s = segment_max_age_s
        self.max_partitions = max_partitions
        self.max_consumer_groups = max_consumer_groups
        self.hubs: dict[str, Hub] = {}

    def open(self) -> HubStore:
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in sorted(self.root.iterdir()):
            meta_path = folder / "hub.json"
            if folder.name.startswith(".") or not meta_path.exists():
                if folder.name.startswith(".deleted-"):
                    shutil.rmtree(folder, ignore_errors=True)
                continue
            meta = HubMeta.from_json(json.loads(meta_path.read_text()))
            self.hubs[meta.name] = self._open_hub(meta, folder)
        return self

    def _open_hub(self, meta: HubMeta, folder: Path) -> Hub:
        parts = [PartitionLog(folder / "partitions" / str(i), str(i), segment_max_bytes=self.segment_max_bytes,
                              segment_max_age_s=self.segment_max_age_s, fsync_policy=self.fsync_policy).open()
                 for i in range(meta.partition_count)]
        return Hub(meta, folder, parts)

    def get(self, hub_id: str) -> Hub:
        hub = self.hubs.get(hub_id)
        if hub is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"hub {hub_id!r} does not exist",
                                 metadata={"resource": f"hubs/{hub_id}"})
        return hub

    def _prepare(self, hub_id: str, partition_count: int, retention_s: float, *, throughput_units: int = 0,
                 auto_inflate: bool = False, maximum_units: int = 0, capture: dict | None = None,
                 request_id: str = "") -> tuple[Hub | None, HubMeta, Path]:
        """Validate a create; returns (existing hub for a retried request, meta, folder)."""
        check_name("hub", hub_id, "hub_id")
        if hub_id in self.hubs:
            existing = self.hubs[hub_id]
            if request_id and existing.meta.request_id == request_id:
                return existing, existing.meta, existing.folder
            raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS, f"hub {hub_id!r} already exists",
                                 metadata={"resource": f"hubs/{hub_id}"})
        if not 1 <= partition_count <= self.max_partitions:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"partition_count {partition_count} is out of range: 1 to {self.max_partitions}",
                                 metadata={"field": "hub.partition_count"})
        if retention_s <= 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "message_retention must be positive",
                                 metadata={"field": "hub.message_retention"})
        _check_throughput(throughput_units, auto_inflate, maximum_units)
        meta = HubMeta(hub_id, partition_count, retention_s, time.time(),
                       consumer_groups={DEFAULT_CONSUMER_GROUP: {"user_metadata": "", "create_time": time.time()}},
                       throughput_units=throughput_units, auto_inflate=auto_inflate, maximum_units=maximum_units,
                       capture=capture or {}, request_id=request_id)
        folder = self.root / hub_id
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        return None, meta, folder

    def create(self, hub_id: str, partition_count: int, retention_s: float, **kwargs) -> tuple[Hub, bool]:
        """Create a hub; returns (hub, created). A retry with the same request id returns the hub."""
        existing, meta, folder = self._prepare(hub_id, partition_count, retention_s, **kwargs)
        if existing is not None:
            return existing, False
        hub = self._open_hub(meta, folder)
        hub.save()
        self.hubs[hub_id] = hub
        return hub, True

    # The servicer calls these; a backend with an asynchronous log overrides them.
    async def open_async(self) -> HubStore:
        return self.open()

    async def create_async(self, hub_id: str, partition_count: int, retention_s: float, **kwargs) -> tuple[Hub, bool]:
        return self.create(hub_id, partition_count, retention_s, **kwargs)

    async def delete_async(self, hub_id: str) -> Hub:
        return self.delete(hub_id)

    async def close_async(self) -> None:
        self.close()

    def delete(self, hub_id: str) -> Hub:
        hub = self.get(hub_id)
        del self.hubs[hub_id]
        for part in hub.partitions:
            part.close(sync=False)
        graveyard = self.root / f".deleted-{hub_id}-{time.time_ns()}"
        os.replace(hub.folder, graveyard)
        shutil.rmtree(graveyard, ignore_errors=True)
        return hub

    def list(self) -> list[Hub]:
        return [self.hubs[k] for k in sorted(self.hubs)]

    # -- consumer groups ------------------------------------------------------

    def create_group(self, hub_id: str, group: str, user_metadata: str = "", request_id: str = "") -> dict:
        hub = self.get(hub_id)
        check_name("consumer group", group, "consumer_group_id")
        groups = hub.meta.consumer_groups
        if group in groups:
            if request_id and groups[group].get("request_id") == request_id:
                return groups[group]
            raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS,
                                 f"consumer group {group!r} already exists in hub {hub_id!r}",
                                 metadata={"resource": f"hubs/{hub_id}/consumerGroups/{group}"})
        if len(groups) >= self.max_consumer_groups:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"hub {hub_id!r} has {len(groups)} consumer groups, the limit "
                                 f"(setting max_consumer_groups); delete one first",
                                 metadata={"field": "consumer_group_id", "limit": self.max_consumer_groups})
        groups[group] = {"user_metadata": user_metadata, "create_time": time.time(), "request_id": request_id}
        hub.save()
        return groups[group]

    def group(self, hub_id: str, group: str) -> dict:
        hub = self.get(hub_id)
        info = hub.meta.consumer_groups.get(group or DEFAULT_CONSUMER_GROUP)
        if info is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND,
                                 f"consumer group {group!r} does not exist in hub {hub_id!r}",
                                 metadata={"resource": f"hubs/{hub_id}/consumerGroups/{group}"})
        return info

    def delete_group(self, hub_id: str, group: str) -> None:
        hub = self.get(hub_id)
        if group == DEFAULT_CONSUMER_GROUP:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "the $Default consumer group cannot be deleted",
                                 metadata={"field": "name"})
        self.group(hub_id, group)
        del hub.meta.consumer_groups[group]
        hub.save()

    def close(self) -> None:
        for hub in self.hubs.values():
            for part in hub.partitions:
                part.close(sync=True)


def _check_throughput(units: int, auto_inflate: bool, maximum: int) -> None:
    if units < 0 or units > 1000:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"throughput units {units} out of range 0..1000",
                             metadata={"field": "hub.throughput.units"})
    if auto_inflate and maximum < units:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"auto-inflate maximum_units {maximum} is below units {units}",
                             metadata={"field": "hub.throughput.maximum_units"})


def check_throughput(units: int, auto_inflate: bool, maximum: int) -> None:
    """Validate throughput settings (INVALID_ARGUMENT naming the field)."""
    _check_throughput(units, auto_inflate, maximum)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(data, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
