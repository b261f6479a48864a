"""Hubs: metadata, consumer groups and the partition logs of each hub.

Where the metadata lives is the metadata store's business (:mod:`.metadata`:
files in the data folder, or NATS KV); where the events live is the log's
(segment files, or JetStream streams). Embedded layout under the data folder::

    .lock                               held by the one process using the folder
    hubs/<hub>/hub.json                 settings, consumer groups (atomic replace)
    hubs/<hub>/partitions/<id>/*.seg    the partition logs
    hubs/<hub>/checkpoints.jsonl        checkpoints and ownership (journal)
"""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from headwater.errors import HeadwaterError, Reason
from headwater.names import check_name
from headwater.routing import partition_for_key
from headwater.services.ingestion.log.embedded import FsyncPolicy, PartitionLog
from headwater.services.ingestion.metadata import FileMetadata, MetadataStore

__all__ = ["DEFAULT_CONSUMER_GROUP", "HubMeta", "HubStore", "group_id_from_name", "group_name", "hub_id_from_name",
           "partition_for_key"]

DEFAULT_CONSUMER_GROUP = "$Default"



def hub_id_from_name(name: str, field_name: str = "name") -> str:
    """``hubs/x`` or ``x`` -> ``x``; INVALID_ARGUMENT when empty or malformed."""
    hub = name.removeprefix("hubs/")
    hub = hub.split("/", 1)[0]
    if not hub:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field_name} is empty: name a hub (hubs/<hub>)",
                             metadata={"field": field_name})
    return check_name("hub", hub, field_name)


def group_id_from_name(hub_id: str, name: str, field_name: str = "consumer_group") -> str:
    """``hubs/{hub}/consumerGroups/{group}`` (of ``hub_id``) or ``{group}`` -> ``{group}``;
    empty -> ``$Default``; INVALID_ARGUMENT when it names another hub or is malformed."""
    if not name.startswith("hubs/"):
        return name or DEFAULT_CONSUMER_GROUP
    parts = name.split("/")
    if len(parts) != 4 or parts[2] != "consumerGroups" or not parts[3]:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"{field_name}: {name!r} is not hubs/{{hub}}/consumerGroups/{{consumer_group}} "
                             "or a consumer group id", metadata={"field": field_name})
    if parts[1] != hub_id:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"{field_name}: {name!r} is a consumer group of hub {parts[1]!r}, not of {hub_id!r}",
                             metadata={"field": field_name})
    return parts[3]


def group_name(hub_id: str, group: str) -> str:
    """The resource name of a hub's consumer group."""
    return f"hubs/{hub_id}/consumerGroups/{group}"


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
    """An open hub: metadata, its revision in the metadata store, and partition logs."""

    def __init__(self, meta: HubMeta, folder: Path, partitions: list, revision: int = 0) -> None:
        self.meta = meta
        self.folder = folder
        self.partitions = partitions
        self.revision = revision
        self._next = 0

    @property
    def name(self) -> str:
        return self.meta.name

    def partition(self, partition_id: str, field_name: str = "partition_id"):
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

    def route(self, partition_id: str, partition_key: str):
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


def _not_found(hub_id: str) -> HeadwaterError:
    return HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"hub {hub_id!r} does not exist",
                          metadata={"resource": f"hubs/{hub_id}"})


class HubStore:
    """Every hub of the service: a cache of the metadata store's hub records with
    their open partition logs.

    The servicer uses the ``*_async`` methods and :meth:`lookup`. On a shared
    metadata store (NATS KV), :meth:`lookup` with ``fresh=True`` re-reads the
    record, so any instance answers with the same view; hot paths use the cache,
    which the store's watch keeps current and a miss refreshes.
    """

    def __init__(self, root: Path, *, fsync_policy: str = "interval", segment_max_bytes: int = 64 << 20,
                 segment_max_age_s: float = 3600.0, max_partitions: int = 32, max_consumer_groups: int = 20,
                 metadata: MetadataStore | None = None, ownership_expiry_s: float = 30.0) -> None:
        self.root = Path(root) / "hubs"
        self.fsync_policy = FsyncPolicy(fsync_policy)
        self.segment_max_bytes = segment_max_bytes
        self.segment_max_age_s = segment_max_age_s
        self.max_partitions = max_partitions
        self.max_consumer_groups = max_consumer_groups
        self.metadata = metadata if metadata is not None else FileMetadata(self.root, ownership_expiry_s)
        self.hubs: dict[str, Hub] = {}
        self._adopting = asyncio.Lock()

    # -- partition logs (a backend overrides these two) -------------------------

    async def _open_partitions(self, meta: HubMeta, first: int = 0) -> list:
        """The logs of partitions ``first`` .. ``partition_count - 1``."""
        folder = self.root / meta.name
        return [PartitionLog(folder / "partitions" / str(i), str(i), segment_max_bytes=self.segment_max_bytes,
                             segment_max_age_s=self.segment_max_age_s, fsync_policy=self.fsync_policy).open()
                for i in range(first, meta.partition_count)]

    async def _destroy_partitions(self, hub: Hub) -> None:
        for part in hub.partitions:
            part.close(sync=False)

    # -- cache ---------------------------------------------------------------------

    async def _adopt(self, record: dict, revision: int) -> Hub:
        """Bring the cached hub to ``record`` (opening its logs when new; one opening at a time,
        so concurrent first requests for a hub share one set of logs)."""
        async with self._adopting:
            return await self._adopt_now(record, revision)

    async def _adopt_now(self, record: dict, revision: int) -> Hub:
        meta = HubMeta.from_json(record)
        hub = self.hubs.get(meta.name)
        if hub is not None and hub.meta.create_time != meta.create_time:
            self._forget(meta.name)  # deleted and created again elsewhere
            hub = None
        if hub is None:
            hub = Hub(meta, self.root / meta.name, await self._open_partitions(meta), revision)
            self.hubs[meta.name] = hub
        elif revision >= hub.revision:
            hub.meta, hub.revision = meta, revision
        if len(hub.partitions) < meta.partition_count:  # partitions added (UpdateHub, here or elsewhere)
            hub.partitions = hub.partitions + await self._open_partitions(meta, len(hub.partitions))
        return hub

    def _forget(self, hub_id: str) -> Hub | None:
        hub = self.hubs.pop(hub_id, None)
        if hub is not None:
            for part in hub.partitions:
                part.close(sync=False)
        return hub

    def _on_change(self, hub_id: str, item) -> None:
        """A change another instance made (the store's watch)."""
        if item is None:
            self._forget(hub_id)
            return
        hub = self.hubs.get(hub_id)
        record, revision = item
        if hub is not None and hub.meta.create_time == record.get("create_time") and revision > hub.revision:
            hub.meta, hub.revision = HubMeta.from_json(record), revision
        elif hub is not None and hub.meta.create_time != record.get("create_time"):
            self._forget(hub_id)

    # -- open / close ----------------------------------------------------------------

    async def open_async(self) -> HubStore:
        await self.metadata.open()
        for record, revision in (await self.metadata.list_hubs()).values():
            await self._adopt(record, revision)
        self.metadata.watch(self._on_change)
        return self

    async def close_async(self) -> None:
        self.close()
        await self.metadata.close()

    def close(self) -> None:
        for hub in self.hubs.values():
            for part in hub.partitions:
                part.close(sync=True)

    # -- hubs ------------------------------------------------------------------------

    def get(self, hub_id: str) -> Hub:
        """The cached hub (no round trip)."""
        hub = self.hubs.get(hub_id)
        if hub is None:
            raise _not_found(hub_id)
        return hub

    def list(self) -> list[Hub]:
        """The cached hubs, by name."""
        return [self.hubs[k] for k in sorted(self.hubs)]

    async def lookup(self, hub_id: str, fresh: bool = False) -> Hub:
        """A hub: from the cache, or from the store on a miss or when ``fresh``."""
        hub = self.hubs.get(hub_id)
        if hub is not None and not (fresh and self.metadata.shared):
            return hub
        item = await self.metadata.get_hub(hub_id)
        if item is None:
            self._forget(hub_id)
            raise _not_found(hub_id)
        return await self._adopt(*item)

    async def list_async(self) -> builtins.list[Hub]:
        """Every hub, as the store has them now."""
        if self.metadata.shared:
            items = await self.metadata.list_hubs()
            for gone in set(self.hubs) - set(items):
                self._forget(gone)
            for record, revision in items.values():
                await self._adopt(record, revision)
        return self.list()

    def _validate(self, hub_id: str, partition_count: int, retention_s: float, throughput_units: int,
                  auto_inflate: bool, maximum_units: int) -> None:
        check_name("hub", hub_id, "hub_id")
        if not 1 <= partition_count <= self.max_partitions:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"partition_count {partition_count} is out of range: 1 to {self.max_partitions}",
                                 metadata={"field": "hub.partition_count"})
        if retention_s <= 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "message_retention must be positive",
                                 metadata={"field": "hub.message_retention"})
        _check_throughput(throughput_units, auto_inflate, maximum_units)

    async def create_async(self, hub_id: str, partition_count: int, retention_s: float, *,
                           throughput_units: int = 0, auto_inflate: bool = False, maximum_units: int = 0,
                           capture: dict | None = None, request_id: str = "") -> tuple[Hub, bool]:
        """Create a hub; returns (hub, created). A retry with the same request id returns the hub."""
        check_name("hub", hub_id, "hub_id")
        existing = await self.metadata.get_hub(hub_id)
        if existing is not None:
            hub = await self._adopt(*existing)
            if request_id and hub.meta.request_id == request_id:
                return hub, False
            raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS, f"hub {hub_id!r} already exists",
                                 metadata={"resource": f"hubs/{hub_id}"})
        self._validate(hub_id, partition_count, retention_s, throughput_units, auto_inflate, maximum_units)
        now = time.time()
        meta = HubMeta(hub_id, partition_count, retention_s, now,
                       consumer_groups={DEFAULT_CONSUMER_GROUP: {"user_metadata": "", "create_time": now}},
                       throughput_units=throughput_units, auto_inflate=auto_inflate, maximum_units=maximum_units,
                       capture=capture or {}, request_id=request_id)
        revision = await self.metadata.create_hub(hub_id, meta.to_json())
        if revision is None:  # created elsewhere in between
            return await self.create_async(hub_id, partition_count, retention_s, throughput_units=throughput_units,
                                           auto_inflate=auto_inflate, maximum_units=maximum_units,
                                           capture=capture, request_id=request_id)
        self._forget(hub_id)
        return await self._adopt(meta.to_json(), revision), True

    async def delete_async(self, hub_id: str) -> Hub:
        hub = await self.lookup(hub_id, fresh=True)
        self.hubs.pop(hub_id, None)
        await self._destroy_partitions(hub)
        await self.metadata.delete_hub(hub_id)
        for part in hub.partitions:
            part.closed = True
        return hub

    async def update_async(self, hub_id: str, change: Callable[[HubMeta], object]) -> Hub:
        """Apply ``change`` to the hub's settings and store them (compare-and-set on
        the revision: a concurrent change elsewhere is re-read and ``change`` applied
        again). ``change`` validates and raises before anything is stored."""
        hub = await self.lookup(hub_id, fresh=True)
        for _ in range(100):
            meta = HubMeta.from_json(json.loads(json.dumps(hub.meta.to_json())))
            change(meta)
            revision = await self.metadata.update_hub(hub_id, meta.to_json(), hub.revision)
            if revision is not None:
                if meta.partition_count > len(hub.partitions):
                    return await self._adopt(meta.to_json(), revision)
                hub.meta, hub.revision = meta, revision
                return hub
            hub = await self.lookup(hub_id, fresh=True)
        raise HeadwaterError(Reason.SERVICE_BUSY, f"hub {hub_id!r} is changing too often; retry", retry_after=0.1)

    # -- consumer groups ------------------------------------------------------

    def _group_adder(self, hub_id: str, group: str, user_metadata: str, request_id: str):
        """The change adding a consumer group, and the list a retried request's group lands in."""
        check_name("consumer group", group, "consumer_group_id")
        retried: list[dict] = []

        def add(meta: HubMeta) -> None:
            groups = meta.consumer_groups
            if group in groups:
                if request_id and groups[group].get("request_id") == request_id:
                    retried.append(groups[group])
                    return
                raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS,
                                     f"consumer group {group!r} already exists in hub {hub_id!r}",
                                     metadata={"resource": f"hubs/{hub_id}/consumerGroups/{group}"})
            if len(groups) >= self.max_consumer_groups:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"hub {hub_id!r} has {len(groups)} consumer groups, the limit "
                                     f"(setting max_consumer_groups); delete one first",
                                     metadata={"field": "consumer_group_id", "limit": self.max_consumer_groups})
            groups[group] = {"user_metadata": user_metadata, "create_time": time.time(), "request_id": request_id}

        return add, retried

    async def create_group_async(self, hub_id: str, group: str, user_metadata: str = "",
                                 request_id: str = "") -> dict:
        add, retried = self._group_adder(hub_id, group, user_metadata, request_id)
        hub = await self.update_async(hub_id, add)
        return retried[0] if retried else hub.meta.consumer_groups[group]

    def create_group(self, hub_id: str, group: str, user_metadata: str = "", request_id: str = "") -> dict:
        """:meth:`create_group_async` without awaiting, for the embedded store only (its
        metadata is this process's files; callers on a shared store use the async one)."""
        if not isinstance(self.metadata, FileMetadata):
            raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                 "create_group needs the embedded metadata store; use create_group_async")
        hub = self.get(hub_id)
        add, retried = self._group_adder(hub_id, group, user_metadata, request_id)
        meta = HubMeta.from_json(json.loads(json.dumps(hub.meta.to_json())))
        add(meta)
        hub.revision = self.metadata.update_sync(hub_id, meta.to_json(), hub.revision) or hub.revision
        hub.meta = meta
        return retried[0] if retried else meta.consumer_groups[group]

    def group(self, hub_id: str, group: str) -> dict:
        """A consumer group of a cached hub."""
        hub = self.get(hub_id)
        info = hub.meta.consumer_groups.get(group or DEFAULT_CONSUMER_GROUP)
        if info is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND,
                                 f"consumer group {group!r} does not exist in hub {hub_id!r}",
                                 metadata={"resource": f"hubs/{hub_id}/consumerGroups/{group}"})
        return info

    async def group_async(self, hub_id: str, group: str, fresh: bool = False) -> dict:
        """A consumer group; re-read from the store when ``fresh`` or missing from the cache."""
        hub = await self.lookup(hub_id, fresh=fresh)
        if (group or DEFAULT_CONSUMER_GROUP) not in hub.meta.consumer_groups and not fresh:
            await self.lookup(hub_id, fresh=True)
        return self.group(hub_id, group)

    async def delete_group_async(self, hub_id: str, group: str) -> None:
        if group == DEFAULT_CONSUMER_GROUP:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "the $Default consumer group cannot be deleted",
                                 metadata={"field": "name"})

        def drop(meta: HubMeta) -> None:
            if group not in meta.consumer_groups:
                raise HeadwaterError(Reason.RESOURCE_NOT_FOUND,
                                     f"consumer group {group!r} does not exist in hub {hub_id!r}",
                                     metadata={"resource": f"hubs/{hub_id}/consumerGroups/{group}"})
            del meta.consumer_groups[group]

        await self.update_async(hub_id, drop)
        await self.metadata.delete_group(hub_id, group)


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
