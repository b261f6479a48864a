"""The Kafka endpoint: one asyncio TCP (or TLS) listener acting as a one-node cluster.

Each connection reads size-prefixed requests and answers them in order, one
at a time, as a Kafka broker does. The handlers map Kafka onto the ingestion
service: topic = hub, partition = hub partition, offset = sequence number,
consumer group = consumer group, committed offset = checkpoint (sequence
number + 1); publishing and reading go through the servicer's batch paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from kafka.protocol.admin import CreateTopicsResponse, DeleteTopicsResponse
from kafka.protocol.admin.groups import DescribeGroupsResponse, ListGroupsResponse
from kafka.protocol.api_header import ResponseClassRegistry
from kafka.protocol.consumer import (
    FetchResponse,
    HeartbeatResponse,
    JoinGroupResponse,
    LeaveGroupResponse,
    ListOffsetsResponse,
    OffsetCommitResponse,
    OffsetFetchResponse,
    SyncGroupResponse,
)
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment
from kafka.protocol.metadata import ApiVersionsResponse, FindCoordinatorResponse, MetadataResponse
from kafka.protocol.producer import InitProducerIdResponse, ProduceResponse
from kafka.protocol.sasl import SaslAuthenticateResponse, SaslHandshakeResponse

from headwater.auth import RefusalLog, Right
from headwater.errors import HeadwaterError, Reason
from headwater.names import RULES
from headwater.server import authenticator
from headwater.services.ingestion import metrics as m
from headwater.services.ingestion.kafka.groups import STABLE, Group, GroupCoordinator
from headwater.services.ingestion.kafka.protocol import API, ERR, SUPPORTED, error_code, parse_request_header
from headwater.services.ingestion.kafka.records import decode_batches, encode_fetch
from headwater.services.ingestion.log.jit import KERNELS
from headwater.services.ingestion.log.segment import PackedEvents, varint
from headwater.v1 import ingestion_pb2

__all__ = ["KafkaListener"]

log = logging.getLogger("headwater.ingestion.kafka")

_SIZE = struct.Struct(">i")
_NODE_ID = 0
_CLUSTER_ID = "headwater"
_MAX_REQUEST_BYTES = 100 << 20  # socket.request.max.bytes
_FETCH_MAX_EVENTS = 20_000
_FRAME_OVERHEAD = 16  # as the servicer counts a batch's size
_JOIN_BELOW = 256 << 10  # responses below this are joined and written at once
_TRANSIENT = (Reason.QUOTA_EXCEEDED, Reason.SERVICE_BUSY)
_GROUP_KEY = "kafka"  # where a Kafka group's state sits in a hub's consumer group record


@dataclass(eq=False)
class Session:
    """One client connection."""

    host: str
    sock_host: str
    authenticated: bool = False
    rights: frozenset = frozenset()
    entity: str = ""
    mechanism: str = ""
    raw_sasl: bool = False
    client_id: str = ""


class KafkaListener:
    """The Kafka protocol endpoint of one ingestion service."""

    def __init__(self, servicer, config) -> None:
        self.servicer = servicer
        self.config = config
        self.hubs = servicer.hubs
        self.auth = authenticator(config)  # the checks gRPC makes (namespace, both keys, hub policies)
        self.refusals = RefusalLog(log, config.auth_refusal_log_interval_s)
        self.metadata = servicer.metadata  # checkpoints, claims and groups: the gRPC consumer groups' store
        self.coordinator = GroupCoordinator()
        self.coordinator.on_stable = self._on_stable
        self.coordinator.on_empty = self._on_empty
        self.servers: list[asyncio.Server] = []
        self.port = -1
        self._conns: set[asyncio.StreamWriter] = set()
        self._producer_ids = time.time_ns() // 1000  # unique across restarts while the clock moves on
        self._owned: dict[tuple[str, str], list[tuple[str, str]]] = {}  # (group, member) -> [(hub, partition)]
        self._renewed: dict[tuple[str, str], float] = {}
        self._stored: dict[str, set[str]] = {}  # group -> hubs whose consumer group record holds it
        self._store_locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task] = set()

    # -- lifecycle -------------------------------------------------------------------

    async def serve(self, sockets: list[socket.socket], ssl_context: ssl.SSLContext | None = None) -> int:
        """Serve on listening sockets bound already (the service binds them at start and hands them
        over at the first connection, see :class:`headwater.listeners.DeferredListener`); returns
        the port (the first socket's)."""
        self.servers = [await asyncio.start_server(self._connection, sock=s, ssl=ssl_context, limit=1 << 20)
                        for s in sockets]
        self.port = sockets[0].getsockname()[1]
        self.coordinator.start()
        return self.port

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for writer in list(self._conns):
            writer.close()
        await self.coordinator.stop()
        for task in list(self._tasks):  # stored group states being written: let them land
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 2)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    def _advertised(self, session: Session) -> str:
        host = getattr(self.config, "kafka_advertised_host", "") or self.config.host
        if host in ("", "0.0.0.0", "::"):
            host = session.sock_host
        return host

    # -- connection ------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("?", 0)
        sock = writer.get_extra_info("sockname") or (self.config.host, 0)
        session = Session(host=str(peer[0]), sock_host=str(sock[0]), authenticated=self.auth is None)
        KERNELS.get()  # a Kafka client: start loading the record codec before its batches come
        if self.auth is None:
            session.rights = frozenset(Right)
        self._conns.add(writer)
        try:
            while True:
                size = _SIZE.unpack(await reader.readexactly(4))[0]
                if size < 0 or size > _MAX_REQUEST_BYTES:
                    log.warning("kafka: closing %s: request of %d bytes", session.host, size)
                    return
                data = await reader.readexactly(size)
                if session.raw_sasl:  # after SaslHandshake v0: the token comes unframed
                    session.raw_sasl = False
                    err, _ = self._authenticate(session, data)
                    if err != ERR.NONE:
                        return  # as Kafka: a failed v0 exchange closes the connection
                    writer.write(_SIZE.pack(0))
                    await writer.drain()
                    continue
                out = await self._dispatch(session, data)
                if out is not None:
                    _write(writer, out)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        except Exception:  # noqa: BLE001 - one bad connection must not take the listener down
            log.exception("kafka connection from %s failed", session.host)
        finally:
            self._conns.discard(writer)
            writer.close()

    async def _dispatch(self, session: Session, data: bytes) -> list | None:
        frame = parse_request_header(data)
        key, version = frame.api_key, frame.api_version
        spec = SUPPORTED.get(key)
        if spec is None or not spec[1] <= version <= spec[2]:
            if key == API.API_VERSIONS:  # KIP-511: answer v0 with the versions we have
                return self._frame(frame.correlation_id, API.API_VERSIONS, 0,
                                   self._api_versions(0, ERR.UNSUPPORTED_VERSION).encode(version=0))
            return self._unsupported(frame)
        try:
            req = frame.decode(spec[0])
        except Exception as exc:  # noqa: BLE001 - undecodable body: answer, do not drop the socket
            log.warning("kafka: cannot decode api %d v%d from %s: %s", key, version, session.host, exc)
            return self._unsupported(frame, ERR.INVALID_REQUEST)
        session.client_id = frame.client_id
        handler = self._handlers[key]
        resp = await handler(self, session, req, version)
        if resp is None:
            return None
        return self._frame(frame.correlation_id, key, version, resp.encode(version=version))

    @staticmethod
    def _frame(correlation_id: int, key: int, version: int, body: bytes | list) -> list:
        """[size + response header, body pieces...]: written one after the other, the body never copied here."""
        cls = ResponseClassRegistry._response_class_registry[key]
        flexible = cls.flexible_version_q(version) and key != API.API_VERSIONS
        head = _SIZE.pack(correlation_id) + (b"\x00" if flexible else b"")
        if isinstance(body, list):
            return [_SIZE.pack(len(head) + sum(map(len, body))) + head, *body]
        return [_SIZE.pack(len(head) + len(body)) + head, body]

    def _unsupported(self, frame, code: int = ERR.UNSUPPORTED_VERSION) -> list:
        """A response of the request's own type carrying an error code, when the library knows it."""
        cls = ResponseClassRegistry._response_class_registry.get(frame.api_key)
        if cls is None or frame.api_version > cls.max_version:
            log.warning("kafka: api %d v%d is unknown; closing the connection", frame.api_key, frame.api_version)
            raise ConnectionError("unknown api")
        resp = cls(version=frame.api_version)
        if "error_code" in cls._struct.fields:
            resp.error_code = code
        return self._frame(frame.correlation_id, frame.api_key, frame.api_version,
                           resp.encode(version=frame.api_version))

    # -- authorisation -----------------------------------------------------------------

    def _authenticate(self, session: Session, token: bytes) -> tuple[int, str]:
        """SASL PLAIN as Event Hubs: user ``$ConnectionString``, password the connection string."""
        parts = bytes(token).split(b"\x00")
        if len(parts) != 3:
            return ERR.SASL_AUTHENTICATION_FAILED, "SASL PLAIN token is not authzid\\0user\\0password"
        user, password = parts[1].decode("utf-8", "replace"), parts[2].decode("utf-8", "replace")
        if self.auth is None:
            session.authenticated = True
            return ERR.NONE, ""
        if user != "$ConnectionString":
            return ERR.SASL_AUTHENTICATION_FAILED, ("the SASL username must be $ConnectionString and the "
                                                    "password a connection string (as for Event Hubs)")
        try:
            caller = self.auth.authenticate_connection_string(password)
        except HeadwaterError as exc:
            self.refusals.note(session.host, "kafka SASL", getattr(exc, "detail", exc.message))
            return ERR.SASL_AUTHENTICATION_FAILED, exc.message
        rights = set(caller.policy.rights)
        if Right.MANAGE in rights:
            rights |= {Right.SEND, Right.LISTEN}
        entity = caller.entity
        session.authenticated = True
        session.rights = frozenset(rights)
        session.entity = entity
        return ERR.NONE, ""

    @staticmethod
    def _may(session: Session, right: Right, topic: str | None = None) -> bool:
        if right not in session.rights:
            return False
        return topic is None or not session.entity or session.entity == topic

    # -- handlers: connection, metadata ------------------------------------------------

    def _api_versions(self, version: int, error: int = ERR.NONE):
        keys = [ApiVersionsResponse.ApiVersion(api_key=k, min_version=lo, max_version=hi)
                for k, (_, lo, hi) in sorted(SUPPORTED.items())]
        return ApiVersionsResponse(version=version, error_code=error, api_keys=keys, throttle_time_ms=0)

    async def _h_api_versions(self, session, req, version):
        return self._api_versions(version)

    async def _h_sasl_handshake(self, session, req, version):
        if req.mechanism != "PLAIN":
            return SaslHandshakeResponse(version=version, error_code=ERR.UNSUPPORTED_SASL_MECHANISM,
                                         mechanisms=["PLAIN"])
        session.mechanism = "PLAIN"
        session.raw_sasl = version == 0
        return SaslHandshakeResponse(version=version, error_code=ERR.NONE, mechanisms=["PLAIN"])

    async def _h_sasl_authenticate(self, session, req, version):
        if session.mechanism != "PLAIN":
            return SaslAuthenticateResponse(version=version, error_code=ERR.ILLEGAL_SASL_STATE,
                                            error_message="send SaslHandshake with mechanism PLAIN first",
                                            auth_bytes=b"")
        err, message = self._authenticate(session, req.auth_bytes)
        return SaslAuthenticateResponse(version=version, error_code=err, error_message=message or None,
                                        auth_bytes=b"", session_lifetime_ms=0)

    def _hub(self, name: str):
        try:
            return self.hubs.get(name)
        except HeadwaterError:
            return None

    async def _h_metadata(self, session, req, version):
        R = MetadataResponse  # noqa: N806
        host = self._advertised(session)
        brokers = [R.MetadataResponseBroker(node_id=_NODE_ID, host=host, port=self.port, rack=None)]
        if req.topics is None or (version == 0 and not req.topics):
            names = [h.name for h in self.hubs.list() if not session.entity or h.name == session.entity]
        else:
            names = [t.name for t in req.topics]
        topics = []
        allowed = bool(session.rights)
        for name in names:
            hub = self._hub(name)
            if not allowed or (session.entity and session.entity != name):
                topics.append(R.MetadataResponseTopic(error_code=ERR.TOPIC_AUTHORIZATION_FAILED, name=name,
                                                      partitions=[]))
                continue
            if hub is None:
                topics.append(R.MetadataResponseTopic(error_code=ERR.UNKNOWN_TOPIC_OR_PARTITION, name=name,
                                                      partitions=[]))
                continue
            parts = [R.MetadataResponseTopic.MetadataResponsePartition(
                error_code=ERR.NONE, partition_index=i, leader_id=_NODE_ID, leader_epoch=-1, replica_nodes=[_NODE_ID],
                isr_nodes=[_NODE_ID], offline_replicas=[]) for i in range(len(hub.partitions))]
            topics.append(R.MetadataResponseTopic(error_code=ERR.NONE, name=name, is_internal=False,
                                                  partitions=parts))
        return R(version=version, throttle_time_ms=0, brokers=brokers, cluster_id=_CLUSTER_ID,
                 controller_id=_NODE_ID, topics=topics)

    async def _h_find_coordinator(self, session, req, version):
        host = self._advertised(session)
        if version >= 4:
            coords = [FindCoordinatorResponse.Coordinator(key=k, node_id=_NODE_ID, host=host, port=self.port,
                                                          error_code=ERR.NONE, error_message=None)
                      for k in req.coordinator_keys]
            return FindCoordinatorResponse(version=version, throttle_time_ms=0, coordinators=coords)
        return FindCoordinatorResponse(version=version, throttle_time_ms=0, error_code=ERR.NONE, error_message=None,
                                       node_id=_NODE_ID, host=host, port=self.port)

    # -- handlers: produce -------------------------------------------------------------

    async def _h_init_producer_id(self, session, req, version):
        if req.transactional_id is not None:
            return InitProducerIdResponse(version=version, throttle_time_ms=0,
                                          error_code=ERR.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                                          producer_id=-1, producer_epoch=-1)
        if not self._may(session, Right.SEND):
            return InitProducerIdResponse(version=version, throttle_time_ms=0,
                                          error_code=ERR.CLUSTER_AUTHORIZATION_FAILED, producer_id=-1,
                                          producer_epoch=-1)
        if version >= 3 and req.producer_id >= 0:  # a producer bumping its epoch after an error
            pid, epoch = req.producer_id, (req.producer_epoch + 1) & 0x7FFF
        else:
            self._producer_ids += 1
            pid, epoch = self._producer_ids, 0
        return InitProducerIdResponse(version=version, throttle_time_ms=0, error_code=ERR.NONE, producer_id=pid,
                                      producer_epoch=epoch)

    async def _publish(self, hub: str, partition: int, batch, deadline: float):
        """One Kafka batch, in as few publishes as the size limit allows; returns (first, last, ts_ns)."""
        chunks = _chunks(batch.events, self.config.max_message_bytes)
        first = last = ts = -1
        pid = str(partition)
        for at, events in chunks:
            seq = batch.producer_sequence + at if batch.producer_id else 0
            while True:
                try:
                    resp = await self.servicer.publish_events(hub, events, pid, "", batch.producer_id, seq)
                    break
                except HeadwaterError as exc:
                    if exc.reason not in _TRANSIENT or time.monotonic() + (exc.retry_after or 0.05) > deadline:
                        raise
                    await asyncio.sleep(exc.retry_after or 0.05)
            if first < 0:
                first = resp.first_sequence_number
            last, ts = resp.last_sequence_number, resp.enqueued_time.ToNanoseconds()
        return first, last, ts

    async def _produce_partition(self, session, topic: str, pdata, deadline: float):
        R = ProduceResponse.TopicProduceResponse.PartitionProduceResponse  # noqa: N806
        index = pdata.index
        if not self._may(session, Right.SEND, topic):
            return R(index=index, error_code=ERR.TOPIC_AUTHORIZATION_FAILED, base_offset=-1,
                     error_message="this connection's policy has no Send right on the topic")
        hub = self._hub(topic)
        if hub is None or not 0 <= index < len(hub.partitions):
            return R(index=index, error_code=ERR.UNKNOWN_TOPIC_OR_PARTITION, base_offset=-1)
        try:
            batches = decode_batches(pdata.records)
            first, ts = -1, -1
            for batch in batches:
                if not batch.count:
                    continue
                f, _, ts = await self._publish(topic, index, batch, deadline)
                if first < 0:
                    first = f
        except HeadwaterError as exc:
            code = error_code(exc)
            if exc.reason is Reason.INVALID_ARGUMENT and "record batch" in exc.message:
                code = ERR.CORRUPT_MESSAGE
            elif exc.reason in _TRANSIENT:
                code = ERR.REQUEST_TIMED_OUT
            return R(index=index, error_code=code, base_offset=-1, error_message=exc.message)
        part = hub.partitions[index]
        return R(index=index, error_code=ERR.NONE, base_offset=first,
                 log_append_time_ms=ts // 1_000_000 if ts >= 0 else -1, log_start_offset=part.beginning_sequence)

    async def _h_produce(self, session, req, version):
        deadline = time.monotonic() + max(req.timeout_ms, 1000) / 1000.0
        jobs, where = [], []
        for t in req.topic_data:
            for p in t.partition_data:
                jobs.append(self._produce_partition(session, t.name, p, deadline))
                where.append(t.name)
        results = await asyncio.gather(*jobs)
        if req.acks == 0:
            return None
        by_topic: dict[str, list] = {}
        for name, res in zip(where, results):
            by_topic.setdefault(name, []).append(res)
        T = ProduceResponse.TopicProduceResponse  # noqa: N806
        return ProduceResponse(version=version, throttle_time_ms=0, responses=[
            T(name=name, partition_responses=parts) for name, parts in by_topic.items()])

    # -- handlers: fetch, offsets ----------------------------------------------------

    async def _h_fetch(self, session, req, version):
        P = FetchResponse.FetchableTopicResponse.PartitionData  # noqa: N806
        deadline = time.monotonic() + max(req.max_wait_ms, 0) / 1000.0
        wanted = []  # (topic, partition index, part or None, fetch offset, max bytes)
        for t in req.topics:
            hub = self._hub(t.topic) if self._may(session, Right.LISTEN, t.topic) else None
            for p in t.partitions:
                part = hub.partitions[p.partition] if hub is not None and 0 <= p.partition < len(hub.partitions) \
                    else None
                wanted.append([t.topic, p.partition, part, p.fetch_offset, p.partition_max_bytes, None])
        budget = req.max_bytes if version >= 3 else 1 << 30
        while True:
            waits = []
            total = 0
            for w in wanted:
                topic, index, part, offset, max_bytes, got = w
                if got is not None or part is None:
                    continue
                waits.append(part.changed())
                if offset < part.beginning_sequence or offset > part.next_sequence:
                    w[5] = (ERR.OFFSET_OUT_OF_RANGE, b"")
                    continue
                if offset == part.next_sequence or budget <= 0:
                    continue
                pieces, count, _ = await part.fetch(offset, _FETCH_MAX_EVENTS, max(min(max_bytes, budget), 1))
                if count:
                    records, _ = encode_fetch(pieces, count)
                    size = sum(map(len, records))
                    budget -= size
                    total += size
                    m.OUT_MESSAGES.labels(topic, part.partition_id).inc(count)
                    m.OUT_BYTES.labels(topic, part.partition_id).inc(size)
                    w[5] = (ERR.NONE, records)
            got_bytes = sum(sum(map(len, w[5][1])) for w in wanted if w[5] is not None and w[5][1])
            remaining = deadline - time.monotonic()
            if (got_bytes >= max(req.min_bytes, 1) or remaining <= 0 or not waits or self.servicer.drain.is_set()
                    or any(w[5] is not None and w[5][0] != ERR.NONE for w in wanted)):
                break
            drain = asyncio.ensure_future(self.servicer.drain.wait())
            futs = [asyncio.ensure_future(e.wait()) for e in waits] + [drain]
            try:
                await asyncio.wait(futs, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for f in futs:
                    f.cancel()
        by_topic: dict[str, list] = {}
        spliced = _Spliced()
        for topic, index, part, _, _, got in wanted:
            if part is None:
                code = ERR.TOPIC_AUTHORIZATION_FAILED if not self._may(session, Right.LISTEN, topic) \
                    else ERR.UNKNOWN_TOPIC_OR_PARTITION
                by_topic.setdefault(topic, []).append(P(partition_index=index, error_code=code, high_watermark=-1,
                                                        records=b""))
                continue
            code, records = got if got is not None else (ERR.NONE, [])
            hw = part.next_sequence
            by_topic.setdefault(topic, []).append(P(
                partition_index=index, error_code=code, high_watermark=hw, last_stable_offset=hw,
                log_start_offset=part.beginning_sequence, aborted_transactions=None, preferred_read_replica=-1,
                records=spliced.add(records) if records else b""))
        T = FetchResponse.FetchableTopicResponse  # noqa: N806
        spliced.resp = FetchResponse(version=version, throttle_time_ms=0, error_code=ERR.NONE, session_id=0,
                                     responses=[T(topic=t, partitions=ps) for t, ps in by_topic.items()])
        return spliced

    async def _h_list_offsets(self, session, req, version):
        T = ListOffsetsResponse.ListOffsetsTopicResponse  # noqa: N806
        P = T.ListOffsetsPartitionResponse  # noqa: N806
        topics = []
        for t in req.topics:
            hub = self._hub(t.name) if self._may(session, Right.LISTEN, t.name) else None
            parts = []
            for p in t.partitions:
                if hub is None or not 0 <= p.partition_index < len(hub.partitions):
                    code = ERR.TOPIC_AUTHORIZATION_FAILED if not self._may(session, Right.LISTEN, t.name) \
                        else ERR.UNKNOWN_TOPIC_OR_PARTITION
                    parts.append(P(partition_index=p.partition_index, error_code=code, timestamp=-1, offset=-1))
                    continue
                part = hub.partitions[p.partition_index]
                offset, ts = await self._offset_for(part, p.timestamp)
                parts.append(P(partition_index=p.partition_index, error_code=ERR.NONE, timestamp=ts, offset=offset,
                               leader_epoch=-1))
            topics.append(T(name=t.name, partitions=parts))
        return ListOffsetsResponse(version=version, throttle_time_ms=0, topics=topics)

    @staticmethod
    async def _offset_for(part, timestamp: int) -> tuple[int, int]:
        if timestamp == -1:  # latest
            return part.next_sequence, -1
        if timestamp == -2:  # earliest
            return part.beginning_sequence, -1
        if timestamp == -3:  # the record with the largest timestamp: the last one
            if part.is_empty:
                return -1, -1
            seq = part.next_sequence - 1
        else:
            seq = await part.locate_time(timestamp * 1_000_000)
            if seq >= part.next_sequence:
                return -1, -1
        pieces, count, _ = await part.fetch(seq, 1)
        if not count:
            return -1, -1
        ev = ingestion_pb2.ReadEventsResponse.FromString(b"".join(pieces)).events[0]
        return ev.sequence_number, ev.enqueued_time.ToMilliseconds()

    # -- handlers: topics -----------------------------------------------------------------

    def _manage_check(self, session, doing: str) -> tuple[int, str | None]:
        if self._may(session, Right.MANAGE):
            return ERR.NONE, None
        return ERR.TOPIC_AUTHORIZATION_FAILED, f"{doing} a topic needs the Manage right"

    async def _h_create_topics(self, session, req, version):
        R = CreateTopicsResponse.CreatableTopicResult  # noqa: N806
        results = []
        for t in req.topics:
            code, message = self._manage_check(session, "creating")
            if code == ERR.NONE:
                retention = None
                for c in t.configs or []:
                    if c.name == "retention.ms" and c.value:
                        retention = int(c.value) / 1000.0
                hub = ingestion_pb2.Hub(partition_count=max(t.num_partitions, 0))
                if retention:
                    hub.message_retention.FromNanoseconds(int(retention * 1e9))
                try:
                    if req.validate_only:
                        if self._hub(t.name) is not None:
                            raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS, f"topic {t.name!r} exists")
                    else:
                        await self.servicer.CreateHub(ingestion_pb2.CreateHubRequest(hub_id=t.name, hub=hub), None)
                except HeadwaterError as exc:
                    code, message = error_code(exc), exc.message
                    field_name = str(exc.metadata.get("field", ""))
                    if "partition" in field_name:
                        code = ERR.INVALID_PARTITIONS
                    elif field_name == "hub_id":
                        code = ERR.INVALID_TOPIC_EXCEPTION
            created = self._hub(t.name)
            results.append(R(name=t.name, error_code=code, error_message=message,
                             num_partitions=len(created.partitions) if created and code == ERR.NONE else -1,
                             replication_factor=1 if code == ERR.NONE else -1, configs=[]))
        return CreateTopicsResponse(version=version, throttle_time_ms=0, topics=results)

    async def _h_delete_topics(self, session, req, version):
        R = DeleteTopicsResponse.DeletableTopicResult  # noqa: N806
        results = []
        for name in req.topic_names:
            code, message = self._manage_check(session, "deleting")
            if code == ERR.NONE:
                try:
                    await self.servicer.DeleteHub(ingestion_pb2.DeleteHubRequest(name=f"hubs/{name}"), None)
                except HeadwaterError as exc:
                    code, message = error_code(exc), exc.message
            results.append(R(name=name, error_code=code, error_message=message))
        return DeleteTopicsResponse(version=version, throttle_time_ms=0, responses=results)

    # -- handlers: groups -----------------------------------------------------------------

    def _group_error(self, session, group_id: str) -> int:
        if not self._may(session, Right.LISTEN):
            return ERR.GROUP_AUTHORIZATION_FAILED
        rule = RULES["consumer group"]
        if not group_id or len(group_id) > rule.max_len or not rule.pattern.fullmatch(group_id):
            return ERR.INVALID_GROUP_ID
        return ERR.NONE

    async def _h_join_group(self, session, req, version):
        R = JoinGroupResponse  # noqa: N806
        err = self._group_error(session, req.group_id)
        if err:
            return R(version=version, error_code=err, generation_id=-1, protocol_name=None, leader="",
                     member_id=req.member_id, members=[])
        group = await self._group(req.group_id, create=True)
        res = await group.join(req.member_id, session.client_id, session.host, req.session_timeout_ms,
                               req.rebalance_timeout_ms if version >= 1 else req.session_timeout_ms,
                               req.protocol_type, [(p.name, bytes(p.metadata)) for p in req.protocols],
                               req.group_instance_id if version >= 5 else None)
        return R(version=version, throttle_time_ms=0, error_code=res.error, generation_id=res.generation,
                 protocol_type=res.protocol_type, protocol_name=res.protocol if res.error == ERR.NONE else None,
                 leader=res.leader, member_id=res.member_id or req.member_id,
                 members=[R.JoinGroupResponseMember(member_id=mid, group_instance_id=gid, metadata=meta)
                          for mid, gid, meta in res.members])

    async def _h_sync_group(self, session, req, version):
        R = SyncGroupResponse  # noqa: N806
        err = self._group_error(session, req.group_id)
        if err:
            return R(version=version, error_code=err, assignment=b"")
        group = await self._group(req.group_id)
        if group is None:
            return R(version=version, error_code=ERR.UNKNOWN_MEMBER_ID, assignment=b"")
        code, assignment = await group.sync(req.member_id, req.generation_id,
                                            {a.member_id: bytes(a.assignment) for a in req.assignments})
        return R(version=version, throttle_time_ms=0, error_code=code, protocol_type=group.protocol_type,
                 protocol_name=group.protocol, assignment=assignment)

    async def _h_heartbeat(self, session, req, version):
        err = self._group_error(session, req.group_id)
        if not err:
            group = await self._group(req.group_id)
            err = ERR.UNKNOWN_MEMBER_ID if group is None else group.heartbeat(req.member_id, req.generation_id)
            if err == ERR.NONE:
                await self._renew(req.group_id, req.member_id)
        return HeartbeatResponse(version=version, throttle_time_ms=0, error_code=err)

    async def _h_leave_group(self, session, req, version):
        R = LeaveGroupResponse  # noqa: N806
        err = self._group_error(session, req.group_id)
        ids = [req.member_id] if version < 3 else [mm.member_id for mm in req.members]
        results = []
        group = await self._group(req.group_id) if not err else None
        for mid in ids:
            code = err or (ERR.UNKNOWN_MEMBER_ID if group is None else group.leave(mid))
            if code == ERR.NONE:
                await self._release(req.group_id, mid)
            results.append(R.MemberResponse(member_id=mid, group_instance_id=None, error_code=code))
        top = err or (results[0].error_code if version < 3 and results else ERR.NONE)
        return R(version=version, throttle_time_ms=0, error_code=top, members=results)

    async def _ensure_group(self, hub_name: str, group: str) -> None:
        """The hub's consumer group, created on first use (as a Kafka broker creates groups)."""
        hub = self.hubs.get(hub_name)
        if group in hub.meta.consumer_groups:
            return
        try:
            await self.hubs.create_group_async(hub_name, group, user_metadata="created by a Kafka client")
        except HeadwaterError as exc:
            if exc.reason is not Reason.RESOURCE_ALREADY_EXISTS:  # another request or instance made it
                raise

    async def _h_offset_commit(self, session, req, version):
        T = OffsetCommitResponse.OffsetCommitResponseTopic  # noqa: N806
        P = T.OffsetCommitResponsePartition  # noqa: N806
        err = self._group_error(session, req.group_id)
        if not err:
            group = await self._group(req.group_id)
            generation = req.generation_id_or_member_epoch
            if group is None:
                err = ERR.NONE if generation < 0 else ERR.ILLEGAL_GENERATION
            else:
                err = group.check_commit(req.member_id, generation)
        topics = []
        for t in req.topics:
            parts = []
            for p in t.partitions:
                code = err
                if not code:
                    code = await self._commit(session, req.group_id, t.name, p.partition_index,
                                              p.committed_offset)
                parts.append(P(partition_index=p.partition_index, error_code=code))
            topics.append(T(name=t.name, partitions=parts))
        return OffsetCommitResponse(version=version, throttle_time_ms=0, topics=topics)

    async def _commit(self, session, group: str, topic: str, index: int, offset: int) -> int:
        if not self._may(session, Right.LISTEN, topic):
            return ERR.TOPIC_AUTHORIZATION_FAILED
        hub = self._hub(topic)
        if hub is None or not 0 <= index < len(hub.partitions):
            return ERR.UNKNOWN_TOPIC_OR_PARTITION
        seq = offset - 1  # Kafka commits the next offset to read; a checkpoint names the last one processed
        try:
            await self._ensure_group(topic, group)
            await self.metadata.update_checkpoint(topic, group, str(index),
                                                  await _byte_offset(hub.partitions[index], seq), seq)
        except HeadwaterError as exc:
            return ERR.INVALID_GROUP_ID if exc.reason is Reason.INVALID_ARGUMENT else error_code(exc)
        return ERR.NONE

    async def _h_offset_fetch(self, session, req, version):
        T = OffsetFetchResponse.OffsetFetchResponseTopic  # noqa: N806
        P = T.OffsetFetchResponsePartition  # noqa: N806
        err = self._group_error(session, req.group_id)
        if err:
            return OffsetFetchResponse(version=version, throttle_time_ms=0, error_code=err, topics=[])
        wanted: list[tuple[str, list[int] | None]]
        if req.topics is None:
            wanted = [(h.name, None) for h in self.hubs.list() if self._may(session, Right.LISTEN, h.name)]
        else:
            wanted = [(t.name, list(t.partition_indexes)) for t in req.topics]
        topics = []
        for name, indexes in wanted:
            hub = self._hub(name)
            checkpoints = {}
            if hub is not None and self._may(session, Right.LISTEN, name):
                checkpoints = {c.partition_id: c for c in await self.metadata.list_checkpoints(name, req.group_id)}
            if indexes is None:
                indexes = sorted(int(p) for p in checkpoints if p.isdigit())
                if not indexes:
                    continue
            parts = []
            for i in indexes:
                cp = checkpoints.get(str(i))
                code = ERR.NONE
                if hub is None:
                    code = ERR.UNKNOWN_TOPIC_OR_PARTITION
                elif not self._may(session, Right.LISTEN, name):
                    code = ERR.TOPIC_AUTHORIZATION_FAILED
                parts.append(P(partition_index=i, committed_offset=cp.sequence_number + 1 if cp else -1,
                               committed_leader_epoch=-1, metadata="", error_code=code))
            topics.append(T(name=name, partitions=parts))
        return OffsetFetchResponse(version=version, throttle_time_ms=0, error_code=ERR.NONE, topics=topics)

    async def _h_describe_groups(self, session, req, version):
        G = DescribeGroupsResponse.DescribedGroup  # noqa: N806
        out = []
        for gid in req.groups:
            err = self._group_error(session, gid)
            group = await self._group(gid) if not err else None
            if group is None:
                known = not err and any(gid in h.meta.consumer_groups for h in self.hubs.list())
                out.append(G(error_code=err, group_id=gid, group_state="" if err else "Empty" if known else "Dead",
                             protocol_type="", protocol_data="", members=[]))
                continue
            members = [G.DescribedGroupMember(member_id=mm.member_id, group_instance_id=mm.group_instance_id,
                                              client_id=mm.client_id, client_host=mm.client_host,
                                              member_metadata=mm.metadata(group.protocol or ""),
                                              member_assignment=mm.assignment)
                       for mm in group.members.values()]
            out.append(G(error_code=ERR.NONE, group_id=gid, group_state=group.state,
                         protocol_type=group.protocol_type or "", protocol_data=group.protocol or "",
                         members=members))
        return DescribeGroupsResponse(version=version, throttle_time_ms=0, groups=out)

    async def _h_list_groups(self, session, req, version):
        L = ListGroupsResponse.ListedGroup  # noqa: N806
        if not self._may(session, Right.LISTEN):
            return ListGroupsResponse(version=version, error_code=ERR.CLUSTER_AUTHORIZATION_FAILED, groups=[])
        listed = {gid: (g.protocol_type or "consumer", g.state) for gid, g in self.coordinator.groups.items()}
        for hub in self.hubs.list():  # the gRPC consumer groups are groups too (the same store)
            if not session.entity or session.entity == hub.name:
                for gid in hub.meta.consumer_groups:
                    listed.setdefault(gid, ("", "Empty"))
        states = set(req.states_filter or []) if version >= 4 else set()
        return ListGroupsResponse(version=version, throttle_time_ms=0, error_code=ERR.NONE, groups=[
            L(group_id=gid, protocol_type=ptype, group_state=state)
            for gid, (ptype, state) in sorted(listed.items()) if not states or state in states])

    # -- groups in the store: claims seen by EventProcessors, membership across restarts -------------

    async def _group(self, group_id: str, create: bool = False):
        """The coordinator's group; one it does not know is taken back from the metadata store
        (after a restart: its members carry on with their member ids and generation)."""
        group = self.coordinator.get(group_id, create=False)
        if group is None:
            stored = self._stored_record(group_id)
            if stored is not None:
                group = self.coordinator.adopt(Group.from_record(group_id, stored[0]))
                self._stored[group_id] = stored[1]
                for mid, member in group.members.items():
                    self._owned[(group_id, mid)] = self._assigned(member.assignment)
                    self._renewed[(group_id, mid)] = time.monotonic()
                if group.members:
                    log.info("kafka: group %s taken back from the store (generation %d, %d members)", group_id,
                             group.generation, len(group.members))
            elif create:
                group = self.coordinator.get(group_id)
        return group

    def _stored_record(self, group_id: str) -> tuple[dict, set[str]] | None:
        """The newest stored state of a Kafka group over the consumer group records of every hub,
        with the hubs holding one."""
        best, hubs = None, set()
        for hub in self.hubs.list():
            record = hub.meta.consumer_groups.get(group_id, {}).get(_GROUP_KEY)
            if record:
                hubs.add(hub.name)
                if best is None or record.get("generation", 0) > best.get("generation", 0):
                    best = record
        return (best, hubs) if best is not None else None

    def _assigned(self, assignment: bytes) -> list[tuple[str, str]]:
        """(hub, partition) pairs of a consumer-protocol assignment (none for other protocols)."""
        try:
            assigned = ConsumerProtocolAssignment.decode(assignment, header=True) if assignment else None
        except Exception:  # noqa: BLE001 - a non-consumer protocol (connect, streams): no claims
            return []
        if assigned is None:
            return []
        return [(tp.topic, str(p)) for tp in assigned.assigned_partitions if self._hub(tp.topic) is not None
                for p in tp.partitions]

    async def _on_stable(self, group) -> None:
        """An assignment is in place: each member claims its partitions in the group's ownership
        table, and the group is stored with its hubs' consumer groups."""
        for mid, member in group.members.items():
            await self._release(group.group_id, mid)
            owned = self._assigned(member.assignment)
            self._owned[(group.group_id, mid)] = owned
            await self._claim(group.group_id, mid, owned)
        await self._store_group(group)

    def _on_empty(self, group) -> None:
        task = asyncio.ensure_future(self._store_group(group))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _store_group(self, group) -> None:
        """Write the group's state (members, generation, assignments) into the consumer group record
        of every hub it is assigned, and remove it from hubs it no longer is; an older generation
        never overwrites a newer one (another instance may have taken the group on)."""
        lock = self._store_locks.setdefault(group.group_id, asyncio.Lock())
        async with lock:
            record = group.to_record()
            hubs = {hub for m in group.members.values() for hub, _ in self._assigned(m.assignment)} \
                if group.state == STABLE else set()
            gid = group.group_id

            def put(meta) -> None:
                info = meta.consumer_groups.get(gid)
                if info is not None and info.get(_GROUP_KEY, {}).get("generation", -1) <= record["generation"]:
                    info[_GROUP_KEY] = record

            def drop(meta) -> None:
                info = meta.consumer_groups.get(gid)
                if info is not None and info.get(_GROUP_KEY, {}).get("generation", -1) <= record["generation"]:
                    info.pop(_GROUP_KEY, None)

            for hub in sorted(hubs | self._stored.get(gid, set())):
                try:
                    if hub in hubs:
                        await self._ensure_group(hub, gid)
                        await self.hubs.update_async(hub, put)
                    else:
                        await self.hubs.update_async(hub, drop)
                except HeadwaterError as exc:  # a hub deleted meanwhile: nothing to keep there
                    log.info("kafka: group %s not stored in hub %s: %s", gid, hub, exc.message)
            self._stored[gid] = hubs

    async def _claim(self, group: str, member: str, owned: list[tuple[str, str]]) -> None:
        by_hub: dict[str, list[str]] = {}
        for hub, pid in owned:
            by_hub.setdefault(hub, []).append(pid)
        for hub, pids in by_hub.items():
            try:
                await self._ensure_group(hub, group)
                current = {o.partition_id: o for o in await self.metadata.list_ownership(hub, group)}
                for pid in pids:
                    claim = current.get(pid)
                    await self.metadata.claim(hub, group, pid, member, claim.etag if claim else "")
            except HeadwaterError as exc:
                log.info("kafka: claims of group %s in hub %s not made: %s", group, hub, exc.message)
        self._renewed[(group, member)] = time.monotonic()

    async def _renew(self, group: str, member: str) -> None:
        owned = self._owned.get((group, member))
        if owned and time.monotonic() - self._renewed.get((group, member), 0) > self.config.ownership_expiry_s / 3:
            self._renewed[(group, member)] = time.monotonic()
            await self._claim(group, member, owned)

    async def _release(self, group: str, member: str) -> None:
        by_hub: dict[str, list[str]] = {}
        for hub, pid in self._owned.pop((group, member), []):
            by_hub.setdefault(hub, []).append(pid)
        self._renewed.pop((group, member), None)
        for hub, pids in by_hub.items():
            try:
                current = {o.partition_id: o for o in await self.metadata.list_ownership(hub, group)}
                for pid in pids:
                    claim = current.get(pid)
                    if claim is not None and claim.owner_id == member:
                        await self.metadata.claim(hub, group, pid, "", claim.etag)
            except HeadwaterError as exc:
                log.info("kafka: claims of group %s in hub %s not released: %s", group, hub, exc.message)

    _handlers = {
        API.API_VERSIONS: _h_api_versions,
        API.SASL_HANDSHAKE: _h_sasl_handshake,
        API.SASL_AUTHENTICATE: _h_sasl_authenticate,
        API.METADATA: _h_metadata,
        API.FIND_COORDINATOR: _h_find_coordinator,
        API.INIT_PRODUCER_ID: _h_init_producer_id,
        API.PRODUCE: _h_produce,
        API.FETCH: _h_fetch,
        API.LIST_OFFSETS: _h_list_offsets,
        API.CREATE_TOPICS: _h_create_topics,
        API.DELETE_TOPICS: _h_delete_topics,
        API.JOIN_GROUP: _h_join_group,
        API.SYNC_GROUP: _h_sync_group,
        API.HEARTBEAT: _h_heartbeat,
        API.LEAVE_GROUP: _h_leave_group,
        API.OFFSET_COMMIT: _h_offset_commit,
        API.OFFSET_FETCH: _h_offset_fetch,
        API.DESCRIBE_GROUPS: _h_describe_groups,
        API.LIST_GROUPS: _h_list_groups,
    }


def _write(writer: asyncio.StreamWriter, pieces: list) -> None:
    """A response: small ones in one write; large ones piece by piece, so that the record sets
    are not joined into one more copy (writelines joins; a write sends what the socket takes and
    buffers only the rest)."""
    if len(pieces) <= 2 or sum(map(len, pieces)) < _JOIN_BELOW:
        writer.write(b"".join(pieces))
        return
    for piece in pieces:
        writer.write(memoryview(piece))


class _Spliced:
    """A Fetch response whose record sets go to the socket as they are.

    kafka-python's encoder copies a ``records`` field into its buffer and copies the buffer
    out again; for megabytes of records a fetch that is most of the cost. So each record
    set is encoded as a 16-byte marker, and after encoding each marker and its length
    prefix (int32, or an unsigned varint of length + 1 in flexible versions) are replaced
    by the real prefix and the record set's pieces.
    """

    __slots__ = ("resp", "sets", "token")

    def __init__(self) -> None:
        self.resp: Any = None  # the FetchResponse (kafka-python, untyped), set once the sets are added
        self.sets: list[tuple[bytes, list]] = []
        self.token = os.urandom(12)

    def add(self, pieces: list) -> bytes:
        marker = self.token + _SIZE.pack(len(self.sets))
        self.sets.append((marker, pieces))
        return marker

    def encode(self, version: int) -> list:
        body = self.resp.encode(version=version)
        flexible = FetchResponse.flexible_version_q(version)
        expect = bytes([17]) if flexible else _SIZE.pack(16)  # the prefix of a 16-byte record set
        out = []
        at = 0
        for marker, pieces in self.sets:
            k = body.find(marker, at)
            if k < len(expect) or body[k - len(expect):k] != expect:
                raise RuntimeError("a record set's marker is missing from the encoded Fetch response")
            size = sum(map(len, pieces))
            out.append(body[at:k - len(expect)])
            out.append(varint(size + 1) if flexible else _SIZE.pack(size))
            out.extend(pieces)
            at = k + len(marker)
        out.append(body[at:])
        return out


def _chunks(events: list[bytes] | PackedEvents, limit: int) -> list[tuple[int, list[bytes] | PackedEvents]]:
    """(first index, events) parts of a batch, each within the publish size limit (C-level sums)."""
    n = len(events)
    if isinstance(events, PackedEvents):
        if events.nbytes + _FRAME_OVERHEAD * n <= limit:
            return [(0, events)]
        ends = events.ends.tolist()
    else:
        ends = list(accumulate(map(len, events)))
        if ends[-1] + _FRAME_OVERHEAD * n <= limit:
            return [(0, events)]
    out = []
    start = 0
    while start < n:
        base = ends[start - 1] if start else 0
        # the largest stop with ends[stop-1] - base + overhead * (stop - start) <= limit, at least one event
        lo, hi = start + 1, n
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ends[mid - 1] - base + _FRAME_OVERHEAD * (mid - start) <= limit:
                lo = mid
            else:
                hi = mid - 1
        out.append((start, events[start:lo]))
        start = lo
    return out


async def _byte_offset(part, seq: int) -> int:
    """The Event Hubs offset (byte position) of event ``seq``, or -1."""
    if seq < part.beginning_sequence or seq >= part.next_sequence:
        return -1
    try:
        if hasattr(part, "segment_for"):  # the embedded log: from the segment's index
            return part.segment_for(seq).offset_of(seq)
        pieces, count, _ = await part.fetch(seq, 1)  # JetStream: the event's stamped offset
        if not count:
            return -1
        return ingestion_pb2.ReadEventsResponse.FromString(b"".join(pieces)).events[0].offset
    except (OSError, ValueError, IndexError, AttributeError, HeadwaterError):
        return -1
