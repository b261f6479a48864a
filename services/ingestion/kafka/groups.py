"""The Kafka group coordinator: the classic (JoinGroup/SyncGroup) rebalance protocol.

A group's state is worked on in memory and, each time an assignment is in place or the
group empties, stored (:meth:`Group.to_record`) in the consumer group records of its hubs
in the metadata store, where gRPC consumer groups live; a coordinator that does not know a
group (after a restart) takes it back from there (:meth:`Group.from_record`), so members
carry on with their member id and generation, as after a Kafka coordinator failover.
Committed offsets are Headwater checkpoints (see
:mod:`headwater.services.ingestion.kafka.broker`). A group moves through
Empty -> PreparingRebalance -> CompletingRebalance -> Stable:

- a JoinGroup from a new member, or a member leaving or timing out, starts a
  rebalance; it completes when every known member has rejoined (or after the
  rebalance timeout, dropping those that did not), or for a new group a short
  moment after the first join so that members starting together land in one
  generation;
- the leader (first member) gets every member's subscription, computes the
  assignment client side and sends it in its SyncGroup; the others' SyncGroups
  wait for it;
- heartbeats answer REBALANCE_IN_PROGRESS while a rebalance runs, which is how
  members learn to rejoin.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from headwater.services.ingestion.kafka.protocol import ERR

__all__ = ["Group", "GroupCoordinator", "Member"]

EMPTY, PREPARING, COMPLETING, STABLE, DEAD = "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"
#: How long a new group waits for more members after the first join (group.initial.rebalance.delay.ms).
INITIAL_DELAY_S = 0.3


@dataclass(eq=False)
class Member:
    """One group member."""

    member_id: str
    client_id: str
    client_host: str
    session_timeout_s: float
    rebalance_timeout_s: float
    protocol_type: str
    protocols: list[tuple[str, bytes]]
    group_instance_id: str | None = None
    assignment: bytes = b""
    last_seen: float = field(default_factory=time.monotonic)
    join: asyncio.Future | None = None
    sync: asyncio.Future | None = None

    def metadata(self, protocol: str) -> bytes:
        for name, meta in self.protocols:
            if name == protocol:
                return meta
        return b""


@dataclass(eq=False)
class JoinResult:
    error: int
    generation: int = -1
    protocol_type: str | None = None
    protocol: str | None = None
    leader: str = ""
    member_id: str = ""
    members: list[tuple[str, str | None, bytes]] = field(default_factory=list)


class Group:
    """One consumer group's membership and generation."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.state = EMPTY
        self.generation = 0
        self.protocol_type: str | None = None
        self.protocol: str | None = None
        self.leader = ""
        self.members: dict[str, Member] = {}
        self._complete: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        #: awaited with the group when an assignment is in place
        self.on_stable: Callable[[Group], Awaitable[None]] | None = None
        #: called with the group when its last member is gone
        self.on_empty: Callable[[Group], None] | None = None

    # -- the stored form ---------------------------------------------------------------

    def to_record(self) -> dict:
        """The group as stored in the metadata store (JSON: byte strings in base64)."""
        def b64(data: bytes) -> str:
            return base64.b64encode(data).decode()

        return {"generation": self.generation, "state": self.state, "protocol_type": self.protocol_type,
                "protocol": self.protocol, "leader": self.leader,
                "members": [{"member_id": m.member_id, "client_id": m.client_id, "client_host": m.client_host,
                             "session_timeout_s": m.session_timeout_s,
                             "rebalance_timeout_s": m.rebalance_timeout_s, "protocol_type": m.protocol_type,
                             "protocols": [[name, b64(meta)] for name, meta in m.protocols],
                             "group_instance_id": m.group_instance_id, "assignment": b64(m.assignment)}
                            for m in self.members.values()] if self.state == STABLE else []}

    @classmethod
    def from_record(cls, group_id: str, record: dict) -> Group:
        """A group taken back from its stored form: Stable with its members, each given a full
        session timeout from now to show up, or Empty."""
        group = cls(group_id)
        group.generation = int(record.get("generation", 0))
        members = record.get("members") or []
        if record.get("state") != STABLE or not members:
            return group
        group.state, group.protocol_type = STABLE, record.get("protocol_type")
        group.protocol, group.leader = record.get("protocol"), record.get("leader", "")
        for m in members:
            group.members[m["member_id"]] = Member(
                m["member_id"], m.get("client_id", ""), m.get("client_host", ""), float(m["session_timeout_s"]),
                float(m["rebalance_timeout_s"]), m.get("protocol_type", ""),
                [(name, base64.b64decode(meta)) for name, meta in m.get("protocols", [])],
                m.get("group_instance_id"), base64.b64decode(m.get("assignment", "")))
        return group

    # -- rebalance ---------------------------------------------------------------

    def _prepare(self, delay: float | None = None) -> None:
        """Start (or keep) a rebalance; members learn of it at their next heartbeat."""
        loop = asyncio.get_running_loop()
        if self.state != PREPARING:
            self.state = PREPARING
            for m in self.members.values():
                if m.sync is not None and not m.sync.done():
                    m.sync.set_result(ERR.REBALANCE_IN_PROGRESS)
                m.sync = None
            timeout = max((m.rebalance_timeout_s for m in self.members.values()), default=30.0)
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = loop.call_later(timeout, self._complete_rebalance, True)
        if delay is not None:
            if self._complete is not None:
                self._complete.cancel()
            self._complete = loop.call_later(delay, self._maybe_complete)
        else:
            self._maybe_complete()

    def _maybe_complete(self) -> None:
        if self.state == PREPARING and self.members and all(
                m.join is not None and not m.join.done() for m in self.members.values()):
            if self._complete is not None and asyncio.get_running_loop().time() < self._complete.when():
                return  # the initial delay of a new group is still running
            self._complete_rebalance(False)

    def _complete_rebalance(self, expired: bool) -> None:
        if self.state != PREPARING:
            return
        for handle in (self._complete, self._deadline):
            if handle is not None:
                handle.cancel()
        self._complete = self._deadline = None
        if expired:  # members that did not rejoin in time are out
            for mid in [mid for mid, m in self.members.items() if m.join is None or m.join.done()]:
                del self.members[mid]
        if not self.members:
            self._emptied()
            return
        members = list(self.members.values())
        if self.leader not in self.members:
            self.leader = members[0].member_id
        leader = self.members[self.leader]
        common = [name for name, _ in leader.protocols
                  if all(any(n == name for n, _ in m.protocols) for m in members)]
        self.protocol = common[0] if common else leader.protocols[0][0]
        self.protocol_type = leader.protocol_type
        self.generation += 1
        self.state = COMPLETING
        roster = [(m.member_id, m.group_instance_id, m.metadata(self.protocol)) for m in members]
        for m in members:
            m.last_seen = time.monotonic()
            m.assignment = b""
            if m.join is not None and not m.join.done():
                m.join.set_result(JoinResult(ERR.NONE, self.generation, self.protocol_type, self.protocol,
                                             self.leader, m.member_id,
                                             roster if m.member_id == self.leader else []))
            m.join = None

    # -- requests ----------------------------------------------------------------

    async def join(self, member_id: str, client_id: str, client_host: str, session_timeout_ms: int,
                   rebalance_timeout_ms: int, protocol_type: str, protocols: list[tuple[str, bytes]],
                   group_instance_id: str | None) -> JoinResult:
        if not protocols:
            return JoinResult(ERR.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
        if self.members and self.protocol_type and protocol_type != self.protocol_type:
            return JoinResult(ERR.INCONSISTENT_GROUP_PROTOCOL, member_id=member_id)
        if member_id and member_id not in self.members:
            return JoinResult(ERR.UNKNOWN_MEMBER_ID, member_id=member_id)
        new_group = not self.members
        if not member_id:
            member_id = f"{client_id or 'member'}-{uuid.uuid4()}"
            member = Member(member_id, client_id, client_host, session_timeout_ms / 1000.0,
                            (rebalance_timeout_ms if rebalance_timeout_ms > 0 else session_timeout_ms) / 1000.0,
                            protocol_type, protocols, group_instance_id)
            self.members[member_id] = member
            changed = True
        else:
            member = self.members[member_id]
            changed = member.protocols != protocols
            member.protocols = protocols
            member.last_seen = time.monotonic()
        loop = asyncio.get_running_loop()
        if member.join is not None and not member.join.done():
            member.join.set_result(JoinResult(ERR.UNKNOWN_MEMBER_ID, member_id=member_id))  # superseded
        member.join = loop.create_future()
        fut = member.join
        if self.state == STABLE and not changed and member_id != self.leader:
            # A follower rejoining with the same subscription: answer with the current generation.
            member.join = None
            return JoinResult(ERR.NONE, self.generation, self.protocol_type, self.protocol, self.leader, member_id)
        self._prepare(INITIAL_DELAY_S if new_group else None)
        return await fut

    async def sync(self, member_id: str, generation: int, assignments: dict[str, bytes]) -> tuple[int, bytes]:
        member = self.members.get(member_id)
        if member is None:
            return ERR.UNKNOWN_MEMBER_ID, b""
        if generation != self.generation:
            return ERR.ILLEGAL_GENERATION, b""
        if self.state == PREPARING:
            return ERR.REBALANCE_IN_PROGRESS, b""
        member.last_seen = time.monotonic()
        if self.state == STABLE:
            return ERR.NONE, member.assignment
        if member_id == self.leader:
            for mid, m in self.members.items():
                m.assignment = assignments.get(mid, b"")
            self.state = STABLE
            if self.on_stable is not None:
                # Claims and the stored group are in place before any member learns its partitions.
                await self.on_stable(self)
            for m in self.members.values():
                if m.sync is not None and not m.sync.done():
                    m.sync.set_result(ERR.NONE if self.state == STABLE else ERR.REBALANCE_IN_PROGRESS)
                m.sync = None
            if self.state != STABLE or self.generation != generation:
                return ERR.REBALANCE_IN_PROGRESS, b""
            return ERR.NONE, member.assignment
        member.sync = asyncio.get_running_loop().create_future()
        err = await member.sync
        if err != ERR.NONE:
            return err, b""
        return ERR.NONE, member.assignment

    def heartbeat(self, member_id: str, generation: int) -> int:
        member = self.members.get(member_id)
        if member is None:
            return ERR.UNKNOWN_MEMBER_ID
        member.last_seen = time.monotonic()
        if self.state == PREPARING:
            return ERR.REBALANCE_IN_PROGRESS
        if generation != self.generation:
            return ERR.ILLEGAL_GENERATION
        return ERR.NONE

    def leave(self, member_id: str) -> int:
        member = self.members.pop(member_id, None)
        if member is None:
            return ERR.UNKNOWN_MEMBER_ID
        for fut, value in ((member.join, JoinResult(ERR.UNKNOWN_MEMBER_ID)), (member.sync, ERR.UNKNOWN_MEMBER_ID)):
            if fut is not None and not fut.done():
                fut.set_result(value)
        self._member_gone()
        return ERR.NONE

    def _member_gone(self) -> None:
        if self.members:
            self._prepare()
        elif self.state != PREPARING:
            self._emptied()
        else:
            self._complete_rebalance(False)

    def _emptied(self) -> None:
        self.state, self.leader, self.protocol = EMPTY, "", None
        self.generation += 1
        if self.on_empty is not None:
            self.on_empty(self)

    def expire(self, now: float) -> list[str]:
        """Drop members whose session timed out (not those waiting in a join)."""
        gone = [mid for mid, m in self.members.items()
                if (m.join is None or m.join.done()) and now - m.last_seen > m.session_timeout_s]
        for mid in gone:
            member = self.members.pop(mid)
            if member.sync is not None and not member.sync.done():
                member.sync.set_result(ERR.UNKNOWN_MEMBER_ID)
        if gone:
            self._member_gone()
        return gone

    def check_commit(self, member_id: str, generation: int) -> int:
        """Whether a commit from this member and generation is accepted."""
        if generation < 0 and not member_id:
            return ERR.NONE  # a consumer with manual assignment
        if member_id not in self.members:
            return ERR.UNKNOWN_MEMBER_ID
        if generation != self.generation:
            return ERR.ILLEGAL_GENERATION
        if self.state == COMPLETING:
            return ERR.REBALANCE_IN_PROGRESS
        return ERR.NONE


class GroupCoordinator:
    """Every Kafka group of the endpoint, with session expiry."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self._task: asyncio.Task | None = None
        self.on_stable: Callable[[Group], Awaitable[None]] | None = None
        self.on_empty: Callable[[Group], None] | None = None

    def get(self, group_id: str, create: bool = True) -> Group | None:
        group = self.groups.get(group_id)
        if group is None and create:
            group = self.adopt(Group(group_id))
        return group

    def adopt(self, group: Group) -> Group:
        """Take a group in (a new one, or one read back from the store)."""
        group.on_stable, group.on_empty = self.on_stable, self.on_empty
        self.groups[group.group_id] = group
        return group

    def start(self) -> None:
        self._task = asyncio.create_task(self._expiry_loop())

    async def _expiry_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.monotonic()
            for group in list(self.groups.values()):
                group.expire(now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
