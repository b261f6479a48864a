"""The metadata store on NATS JetStream key-value buckets (``log_backend: nats``).

Two buckets per deployment (``nats_prefix``, default ``HW``), each with
``nats_replicas`` replicas:

- ``<prefix>_hubs``: key ``<hub>``, value the hub's settings and consumer groups
  (JSON). A change presents the revision it read (compare-and-set), so two
  instances changing one hub never lose each other's change.
- ``<prefix>_ckpt``: ``c.<hub>.<group>.<partition>`` checkpoints and
  ``o.<hub>.<group>.<partition>`` ownership claims. A claim's etag is the KV
  revision of its key; a claim presenting another etag is refused by the server.
  Also ``q.<hub>.t``, the hub's throughput-unit buckets (each take is a
  compare-and-set, so the units hold for all instances together) and
  ``f.<hub>.<rule>``, fault rules (a ``count`` rule fires ``count`` times in all).

Readers with an owner level announce themselves on the core subject
``hw.<prefix>.readers``, so a reader with a higher level on one instance
disconnects lower ones on every instance, as a single service does.

Keys escape characters outside ``[A-Za-z0-9_-]`` as ``=xx`` (``$Default`` is
``=24Default``). Every instance watches the hubs bucket, so its cached view of
hub settings follows changes made elsewhere within milliseconds; management
calls read the bucket itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.services.ingestion.checkpoints import CheckpointRecord, OwnershipRecord
from headwater.services.ingestion.faults import FaultRule, fires, injected_error, matches, validate
from headwater.services.ingestion.metadata import MetadataStore, Revisioned, sort_by_partition

__all__ = ["KvMetadata"]

log = logging.getLogger("headwater.ingestion.nats")


@dataclasses.dataclass(frozen=True)
class _Entry:
    """One current key of a bucket, as :meth:`KvMetadata._scan` reads it."""

    key: str
    value: bytes
    revision: int


def _enc(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", lambda m: "".join(f"={b:02x}" for b in m.group().encode()), text)


def _dec(key: str) -> str:
    return re.sub(r"(=[0-9a-f]{2})+", lambda m: bytes.fromhex(m.group().replace("=", "")).decode(), key)


class KvMetadata(MetadataStore):
    """Hub records, checkpoints and claims in JetStream KV, shared by every instance."""

    shared = True

    def __init__(self, conn, ownership_expiry_s: float = 30.0) -> None:
        self.conn = conn
        self.expiry_s = ownership_expiry_s
        # nats.js.kv.KeyValue buckets once open() ran; nats-py has no type information.
        self.hubs_kv: Any = None
        self.ckpt_kv: Any = None
        self._watch_task: asyncio.Task | None = None
        self.instance_id = uuid.uuid4().hex
        self._readers_sub = None
        self.faults = KvFaults(self)

    async def open(self) -> None:
        # Patient: just after a NATS node died, the buckets' leaders may be in election.
        self.hubs_kv = await self.conn.patient(lambda: self._bucket(f"{self.conn.prefix}_hubs"), "opening the hubs bucket")
        self.ckpt_kv = await self.conn.patient(lambda: self._bucket(f"{self.conn.prefix}_ckpt"),
                                               "opening the checkpoints bucket")
        self._readers_sub = await self.conn.nc.subscribe(f"hw.{self.conn.prefix}.readers", cb=self._reader_msg)
        self.faults.start()

    async def _bucket(self, name: str):
        from nats.js.api import KeyValueConfig, StorageType
        from nats.js.errors import BadRequestError, BucketNotFoundError

        js = self.conn.js
        try:
            return await js.key_value(name)
        except BucketNotFoundError:
            pass
        with contextlib.suppress(BadRequestError):  # another instance may create it at the same moment
            return await js.create_key_value(KeyValueConfig(
                bucket=name, history=1, storage=StorageType.FILE, replicas=self.conn.replicas,
                direct=True))
        return await js.key_value(name)

    async def close(self) -> None:
        await self.faults.stop()
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._watch_task

    def watch(self, on_change: Callable[[str, Revisioned | None], None]) -> None:
        self._watch_task = asyncio.get_running_loop().create_task(self._watch(on_change))

    async def _watch(self, on_change) -> None:
        from nats.js.kv import KV_DEL, KV_PURGE

        while True:
            try:
                watcher = await self.hubs_kv.watchall()
                async for entry in watcher:
                    if entry is None:
                        continue
                    hub_id = _dec(entry.key)
                    if entry.operation in (KV_DEL, KV_PURGE):
                        on_change(hub_id, None)
                    else:
                        on_change(hub_id, (json.loads(entry.value), entry.revision))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reconnecting; watch again
                log.warning("hub watch interrupted; watching again", exc_info=True)
                await asyncio.sleep(0.5)

    async def _scan(self, bucket: str, pattern: str) -> list[_Entry]:
        """Current entries whose key matches ``pattern``: the keys from the bucket's
        stream info (``subjects_filter``), then each key's last message, read through
        the stream leader. No consumer is created: an ephemeral consumer is placed on
        one server, and for up to ~30 s after a node dies it may be placed on the dead
        one (its creation then times out); listing ownerships every few seconds also
        made one consumer per call."""
        from nats.js.errors import NotFoundError

        bucket = f"{self.conn.prefix}_{bucket}"
        stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
        info = await self.conn.js.stream_info(stream, subjects_filter=prefix + pattern)

        async def last(subject: str) -> _Entry | None:
            try:
                msg = await self.conn.js.get_msg(stream, subject=subject)
            except NotFoundError:  # purged meanwhile
                return None
            op = (msg.headers or {}).get("KV-Operation")
            if op in ("DEL", "PURGE"):
                return None
            return _Entry(subject[len(prefix):], msg.data or b"", msg.seq)

        found = await asyncio.gather(*(last(s) for s in sorted(info.state.subjects or {})))
        return [e for e in found if e is not None]

    # -- hubs ---------------------------------------------------------------------

    async def list_hubs(self) -> dict[str, Revisioned]:
        return {_dec(e.key): (json.loads(e.value), e.revision) for e in await self._scan("hubs", ">")}

    async def get_hub(self, hub_id: str) -> Revisioned | None:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.hubs_kv.get(_enc(hub_id))
        except KeyNotFoundError:  # KeyDeletedError is one too
            return None
        return json.loads(entry.value), entry.revision

    async def create_hub(self, hub_id: str, record: dict) -> int | None:
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            return await self.hubs_kv.create(_enc(hub_id), json.dumps(record).encode())
        except KeyWrongLastSequenceError:
            return None

    async def update_hub(self, hub_id: str, record: dict, revision: int) -> int | None:
        from nats.js.errors import KeyWrongLastSequenceError

        try:
            return await self.hubs_kv.update(_enc(hub_id), json.dumps(record).encode(), last=revision)
        except KeyWrongLastSequenceError:
            return None

    async def delete_hub(self, hub_id: str) -> None:
        await self.hubs_kv.delete(_enc(hub_id))
        await self._purge(f"*.{_enc(hub_id)}.>")

    async def _purge(self, pattern: str) -> None:
        for entry in await self._scan("ckpt", pattern):
            await self.ckpt_kv.purge(entry.key)

    # -- checkpoints and ownership ---------------------------------------------

    @staticmethod
    def _key(kind: str, hub_id: str, group: str, partition_id: str) -> str:
        return f"{kind}.{_enc(hub_id)}.{_enc(group)}.{_enc(partition_id)}"

    async def update_checkpoint(self, hub_id, group, partition_id, offset, sequence_number):
        rec = CheckpointRecord(group, partition_id, offset, sequence_number, time.time())
        await self.ckpt_kv.put(self._key("c", hub_id, group, partition_id),
                               json.dumps({"o": offset, "s": sequence_number, "t": rec.update_time}).encode())
        return rec

    async def list_checkpoints(self, hub_id, group):
        out = []
        for e in await self._scan("ckpt", f"c.{_enc(hub_id)}.{_enc(group)}.*"):
            v = json.loads(e.value)
            out.append(CheckpointRecord(group, _dec(e.key.rsplit(".", 1)[1]), v["o"], v["s"], v["t"]))
        return sort_by_partition(out)

    async def list_ownership(self, hub_id, group):
        out = []
        for e in await self._scan("ckpt", f"o.{_enc(hub_id)}.{_enc(group)}.*"):
            v = json.loads(e.value)
            out.append(OwnershipRecord(group, _dec(e.key.rsplit(".", 1)[1]), v["w"], str(e.revision), v["t"],
                                       v["x"]))
        return sort_by_partition(out)

    async def claim(self, hub_id, group, partition_id, owner_id, etag):
        from nats.js.errors import KeyWrongLastSequenceError

        key = self._key("o", hub_id, group, partition_id)
        now = time.time()
        value = json.dumps({"w": owner_id, "t": now, "x": now + self.expiry_s}).encode()
        try:
            if not etag:
                revision = await self.ckpt_kv.create(key, value)
            else:
                revision = await self.ckpt_kv.update(key, value, last=int(etag))
        except (KeyWrongLastSequenceError, ValueError):
            return None
        return OwnershipRecord(group, partition_id, owner_id, str(revision), now, now + self.expiry_s)

    async def delete_group(self, hub_id, group):
        await self._purge(f"*.{_enc(hub_id)}.{_enc(group)}.*")

    # -- quotas, readers, faults -------------------------------------------------

    async def take_quota(self, hub_id, quota, direction, events, nbytes, on_inflate) -> None:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        key = f"q.{_enc(hub_id)}.t"
        for attempt in range(100):
            try:
                entry = await self.ckpt_kv.get(key)
                state, revision = json.loads(entry.value), entry.revision
            except KeyNotFoundError:
                state, revision = None, 0
            if state is not None and state.get("created") == quota.create_time:
                # Units inflated elsewhere count until the hub's settings say otherwise.
                if state.get("meta_units") == quota.meta_units and state.get("units") != quota.units:
                    quota.set_units(state["units"])
                quota.load(state)
            quota._take(direction, events, nbytes, on_inflate)
            value = json.dumps({**quota.state(), "meta_units": quota.meta_units,
                                "created": quota.create_time}).encode()
            try:
                if revision:
                    await self.ckpt_kv.update(key, value, last=revision)
                else:
                    await self.ckpt_kv.create(key, value)
                return
            except KeyWrongLastSequenceError:
                await asyncio.sleep(random.uniform(0, 0.001 * min(attempt, 10)))
        raise HeadwaterError(Reason.SERVICE_BUSY, f"hub {hub_id!r}: throughput buckets contended; retry",
                             retry_after=0.05)

    async def announce_reader(self, key, reader_id, owner_level, opened) -> None:
        msg = {"k": list(key), "id": reader_id, "l": owner_level, "o": opened, "i": self.instance_id}
        with contextlib.suppress(Exception):
            await self.conn.nc.publish(f"hw.{self.conn.prefix}.readers", json.dumps(msg).encode())
            await self.conn.nc.flush(timeout=2)

    async def _reader_msg(self, msg) -> None:
        try:
            m = json.loads(msg.data)
            if m["i"] == self.instance_id or self.on_reader is None:
                return
            self.on_reader(tuple(m["k"]), m["id"], int(m["l"]), bool(m["o"]))
        except (ValueError, KeyError, TypeError):
            return

    def fault_rules(self):
        return self.faults


def _rule_json(rule: FaultRule) -> bytes:
    d = dataclasses.asdict(rule)
    d["reason"] = rule.reason.value
    return json.dumps(d).encode()


def _rule_of(value: bytes) -> FaultRule:
    d = json.loads(value)
    d["reason"] = Reason(d["reason"])
    return FaultRule(**d)


class KvFaults:
    """Fault rules in the shared bucket; a local copy (kept by a watch) answers
    "no rule here" on the hot path without a round trip."""

    def __init__(self, store: KvMetadata) -> None:
        self.store = store
        self.local: dict[str, dict[str, FaultRule]] = {}
        self._task: asyncio.Task | None = None
        self._seen = 0
        self._rng = random.Random()

    def start(self) -> None:
        """Follow the rules in the background (watching again after an interruption: a
        NATS node that died may hold the watch's consumer)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self._follow(await self.store.ckpt_kv.watch("f.>"))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - reconnecting; watch again
                log.warning("fault rule watch interrupted; watching again", exc_info=True)
                await asyncio.sleep(0.5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def _follow(self, watcher) -> None:
        from nats.js.kv import KV_DEL, KV_PURGE

        async for entry in watcher:
            if entry is None:
                continue
            _, hub, rule_id = entry.key.split(".", 2)
            hub, rule_id = _dec(hub), _dec(rule_id)
            if entry.operation in (KV_DEL, KV_PURGE):
                self.local.get(hub, {}).pop(rule_id, None)
            else:
                self.local.setdefault(hub, {})[rule_id] = _rule_of(entry.value)
            self._seen = max(self._seen, entry.revision)

    async def _until_seen(self, revision: int) -> None:
        """Until this instance's watch saw ``revision`` (so did every other's, about now)."""
        for _ in range(500):
            if self._seen >= revision:
                return
            await asyncio.sleep(0.002)

    @staticmethod
    def _key(hub: str, rule_id: str) -> str:
        return f"f.{_enc(hub)}.{_enc(rule_id)}"

    async def set_async(self, rule: FaultRule) -> FaultRule:
        validate(rule)
        await self._until_seen(await self.store.ckpt_kv.put(self._key(rule.hub, rule.rule_id), _rule_json(rule)))
        return rule

    async def list_async(self, hub: str) -> list[FaultRule]:
        entries = await self.store._scan("ckpt", f"f.{_enc(hub)}.*")
        return sorted((_rule_of(e.value) for e in entries), key=lambda r: r.rule_id)

    async def clear_async(self, hub: str, rule_id: str = "") -> int:
        pattern = self._key(hub, rule_id) if rule_id else f"f.{_enc(hub)}.*"
        entries = await self.store._scan("ckpt", pattern)
        for e in entries:
            await self.store.ckpt_kv.purge(e.key)
        self.local.pop(hub, None) if not rule_id else self.local.get(hub, {}).pop(rule_id, None)
        return len(entries)

    async def check_async(self, hub: str, operation: str, partition_id: str = "") -> None:
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        rules = self.local.get(hub)
        if not rules:
            return
        for rule_id, cached in list(rules.items()):
            if not matches(cached, operation, partition_id):
                continue
            key = self._key(hub, rule_id)
            for _ in range(100):  # count and injected are shared: compare-and-set
                try:
                    entry = await self.store.ckpt_kv.get(key)
                except KeyNotFoundError:
                    break
                rule = _rule_of(entry.value)
                if not fires(rule, self._rng):
                    break
                try:
                    await self.store.ckpt_kv.update(key, _rule_json(rule), last=entry.revision)
                except KeyWrongLastSequenceError:
                    continue
                raise injected_error(rule, hub, operation)
