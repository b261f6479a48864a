"""Produce semantics on the wire: idempotent batches map onto Headwater's idempotent publishing
(a retried batch is stored once, a gap is refused), acks=0 gets no response but is stored,
compressed batches are read, ListOffsets finds earliest/latest/by time."""

from __future__ import annotations

import time

import pytest
from kafka.protocol.consumer import ListOffsetsRequest, ListOffsetsResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.producer import InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)
from kafka.record.default_records import DefaultRecordBatchBuilder

from tests.integration.ingestion_support import conn_str
from tests.integration.kafka_support import Raw, create_hub, kafka_port

OUT_OF_ORDER_SEQUENCE_NUMBER = 45


@pytest.fixture
def raw(service_process, tmp_path, root_policy):
    proc = service_process("ingestion", "--data-dir", str(tmp_path / "data"))
    create_hub(proc, root_policy, "p", 2)
    conn = Raw(kafka_port(proc))
    conn.call(SaslHandshakeRequest(mechanism="PLAIN"), SaslHandshakeResponse, 1)
    token = b"\x00$ConnectionString\x00" + conn_str(proc.address, root_policy).encode()
    assert conn.call(SaslAuthenticateRequest(auth_bytes=token), SaslAuthenticateResponse, 2).error_code == 0
    yield conn
    conn.close()


def _batch(n: int, producer_id: int = -1, epoch: int = -1, sequence: int = -1, codec: int = 0) -> bytes:
    b = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False, producer_id=producer_id,
                                  producer_epoch=epoch, base_sequence=sequence, batch_size=1 << 30)
    for i in range(n):
        b.append(i, int(time.time() * 1000), f"k{i}".encode(), f"v{i}".encode() * 20, [])
    return bytes(b.build())


def _produce(raw: Raw, records: bytes, acks: int = -1, partition: int = 0):
    req = ProduceRequest(transactional_id=None, acks=acks, timeout_ms=10000, topic_data=[
        ProduceRequest.TopicProduceData(name="p", partition_data=[
            ProduceRequest.TopicProduceData.PartitionProduceData(index=partition, records=records)])])
    if acks == 0:
        req.with_header(correlation_id=999, client_id="raw")
        raw.sock.sendall(req.encode(version=9, header=True, framed=True))
        return None
    return raw.call(req, ProduceResponse, 9).responses[0].partition_responses[0]


def _offsets(raw: Raw, timestamp: int, partition: int = 0) -> tuple[int, int]:
    req = ListOffsetsRequest(replica_id=-1, isolation_level=0, topics=[ListOffsetsRequest.ListOffsetsTopic(
        name="p", partitions=[ListOffsetsRequest.ListOffsetsTopic.ListOffsetsPartition(
            partition_index=partition, timestamp=timestamp)])])
    part = raw.call(req, ListOffsetsResponse, 7).topics[0].partitions[0]
    assert part.error_code == 0
    return part.offset, part.timestamp


def test_idempotent_batches_are_stored_once_and_gaps_refused(raw):
    init = raw.call(InitProducerIdRequest(transactional_id=None, transaction_timeout_ms=60000),
                    InitProducerIdResponse, 4)
    assert init.error_code == 0 and init.producer_id >= 0
    pid, epoch = init.producer_id, init.producer_epoch
    first = _produce(raw, _batch(10, pid, epoch, 0))
    assert (first.error_code, first.base_offset) == (0, 0)
    retry = _produce(raw, _batch(10, pid, epoch, 0))  # the same batch again, as after a lost response
    assert (retry.error_code, retry.base_offset) == (0, 0)
    second = _produce(raw, _batch(5, pid, epoch, 10))
    assert (second.error_code, second.base_offset) == (0, 10)
    gap = _produce(raw, _batch(5, pid, epoch, 40))
    assert gap.error_code == OUT_OF_ORDER_SEQUENCE_NUMBER
    assert _offsets(raw, -1) == (15, -1)  # 15 records stored, the retry not twice


def test_acks_zero_compression_and_list_offsets(raw):
    before_ms = int(time.time() * 1000)
    assert _produce(raw, _batch(7, codec=1), acks=0, partition=1) is None  # gzip, no response
    meta = raw.call(MetadataRequest(topics=[MetadataRequest.MetadataRequestTopic(name="p")]), MetadataResponse, 12)
    assert [p.partition_index for p in meta.topics[0].partitions] == [0, 1]  # answered after the acks=0 produce
    later = _produce(raw, _batch(3, codec=4), partition=1)  # zstd
    assert (later.error_code, later.base_offset) == (0, 7)
    assert _offsets(raw, -2, 1) == (0, -1)
    assert _offsets(raw, -1, 1) == (10, -1)
    offset, ts = _offsets(raw, before_ms, 1)
    assert offset == 0 and ts >= before_ms - 1
    offset, ts = _offsets(raw, -3, 1)  # the record with the largest timestamp: the last one
    assert offset == 9 and ts >= before_ms - 1
    assert _offsets(raw, int(time.time() * 1000) + 60_000, 1) == (-1, -1)


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4], ids=["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_compression_codec_is_stored_and_read_back(service_process, tmp_path, root_policy, codec):
    """A record batch of each codec (built by kafka-python) is stored record by record and read back
    by librdkafka with its keys and values."""
    from confluent_kafka import Consumer, TopicPartition

    from tests.integration.kafka_support import confluent_conf

    proc = service_process("ingestion", "--data-dir", str(tmp_path / "data"))
    create_hub(proc, root_policy, "p", 1)
    port = kafka_port(proc)
    conn = Raw(port)
    conn.call(SaslHandshakeRequest(mechanism="PLAIN"), SaslHandshakeResponse, 1)
    token = b"\x00$ConnectionString\x00" + conn_str(proc.address, root_policy).encode()
    assert conn.call(SaslAuthenticateRequest(auth_bytes=token), SaslAuthenticateResponse, 2).error_code == 0
    done = _produce(conn, _batch(100, codec=codec))
    conn.close()
    assert (done.error_code, done.base_offset) == (0, 0)
    consumer = Consumer(confluent_conf(port, proc, root_policy, **{"group.id": "codecs", "enable.auto.commit": False}))
    consumer.assign([TopicPartition("p", 0, 0)])
    msgs = []
    deadline = time.monotonic() + 30
    while len(msgs) < 100 and time.monotonic() < deadline:
        msgs += [m for m in consumer.consume(100, 1) if not m.error()]
    consumer.close()
    assert [(m.offset(), m.key(), m.value()) for m in msgs] == \
        [(i, f"k{i}".encode(), f"v{i}".encode() * 20) for i in range(100)]
