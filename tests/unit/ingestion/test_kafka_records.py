"""The Kafka endpoint's record batch paths against kafka-python's reference reader and builder."""

from __future__ import annotations

import time

import pytest
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatchBuilder

from headwater.errors import HeadwaterError
from headwater.services.ingestion.kafka.records import KEY_B64_PROPERTY, decode_batches, encode_fetch
from headwater.services.ingestion.log.segment import encode_batch, slice_batches
from headwater.v1 import event_pb2

RECORDS = [
    (b"k0", b"v" * 300, [("a", b"1"), ("b", b"")]),
    (None, b"no key", []),
    (b"", b"", [("only", b"header")]),
    (b"\xff\xfebinary", b"binary key", [("bad", b"\xff")]),
]


def _batch(codec: int, producer=(-1, -1, -1)) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                        producer_id=producer[0], producer_epoch=producer[1],
                                        base_sequence=producer[2], batch_size=1 << 30)
    for i, (key, value, headers) in enumerate(RECORDS * 50):
        builder.append(i, 1_700_000_000_000 + i, key, value, headers)
    return bytes(builder.build())


@pytest.mark.parametrize("codec", [0, 1, 2, 3, 4], ids=["none", "gzip", "snappy", "lz4", "zstd"])
def test_produced_batches_become_event_data(codec):
    two = _batch(codec, (7, 1, 100)) + _batch(codec)
    batches = decode_batches(two)
    assert [(b.producer_id, b.producer_sequence, b.count) for b in batches] == [("kafka-7-1", 100, 200), ("", -1, 200)]
    events = [event_pb2.EventData.FromString(e) for e in batches[0].events[:4]]
    assert [(e.partition_key, e.body, dict(e.properties)) for e in events] == [
        ("k0", b"v" * 300, {"a": "1", "b": ""}),
        ("", b"no key", {}),
        ("", b"", {"only": "header"}),
        ("", b"binary key", {"bad": "\ufffd", KEY_B64_PROPERTY: "//5iaW5hcnk="}),
    ]


def test_corrupt_batches_are_refused():
    good = bytearray(_batch(0))
    good[-3] ^= 0xFF
    with pytest.raises(HeadwaterError, match="CRC"):
        decode_batches(bytes(good))
    with pytest.raises(HeadwaterError, match="truncated"):
        decode_batches(_batch(0)[:-10])


def test_fetched_batch_reads_back_with_kafka_python():
    stored = [event_pb2.EventData(body=f"body-{i}".encode(), partition_key=f"key-{i}" if i % 2 else "",
                                  properties={"i": str(i)} if i % 3 else {}).SerializeToString()
              for i in range(20)]
    stored.append(decode_batches(_batch(0))[0].events[3])  # the binary key comes back as it was
    ts = time.time_ns()
    batch = encode_batch(stored, "0", 40, 1000, ts)
    pieces, n = slice_batches(batch.data, 45, 100)
    data, first = encode_fetch(pieces, n)
    assert first == 45
    mem = MemoryRecords(b"".join(data))
    kbatch = mem.next_batch()
    assert kbatch.validate_crc() and kbatch.base_offset == 45
    records = list(kbatch)
    assert [r.offset for r in records] == list(range(45, 61))
    assert {r.timestamp for r in records} == {ts // 1_000_000}
    assert [r.value for r in records[:-1]] == [f"body-{i}".encode() for i in range(5, 20)]
    assert [r.key for r in records[:3]] == [b"key-5", None, b"key-7"]
    assert [r.headers for r in records[:3]] == [[("i", b"5")], [], [("i", b"7")]]
    assert records[-1].key == b"\xff\xfebinary" and records[-1].headers == [("bad", "\ufffd".encode())]


def test_a_batch_over_the_size_limit_is_published_in_parts():
    from headwater.services.ingestion.kafka.broker import _chunks

    events = [b"x" * 100] * 50
    assert _chunks(events, 1 << 20) == [(0, events)]
    parts = _chunks(events, 1000)  # 8 events of 100 + 16 bytes fit in 1,000
    assert [(start, len(p)) for start, p in parts] == [(i, min(8, 50 - i)) for i in range(0, 50, 8)]
    assert _chunks(events, 10) == [(i, [events[i]]) for i in range(50)]  # one event each, the log decides


def test_body_only_events_take_the_batch_path_and_read_back():
    plain = [event_pb2.EventData(body=f"plain-{i}".encode() * (i + 1)).SerializeToString() for i in range(300)]
    first = encode_batch(plain[:100], "0", 0, 0, 1_700_000_000_000_000_000)
    second = encode_batch(plain[100:] + [event_pb2.EventData(body=b"k", partition_key="key").SerializeToString()],
                          "0", 100, 10_000, 1_700_000_000_005_000_000)
    pieces, n = slice_batches(first.data + second.data, 0, 1000)
    data, _ = encode_fetch(pieces, n)
    records = list(MemoryRecords(b"".join(data)).next_batch())
    assert [r.offset for r in records] == list(range(301))
    assert [r.value for r in records[:300]] == [f"plain-{i}".encode() * (i + 1) for i in range(300)]
    assert {r.key for r in records[:300]} == {None} and records[300].key == b"key"
    assert [r.timestamp for r in (records[0], records[99], records[100])] == [1_700_000_000_000, 1_700_000_000_000,
                                                                              1_700_000_000_005]


def test_records_with_long_varints_decode():
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False, producer_id=-1,
                                        producer_epoch=-1, base_sequence=-1, batch_size=1 << 30)
    sizes = [0, 63, 64, 8191, 8192, 300_000]
    for i, n in enumerate(sizes):
        builder.append(i, 1_700_000_000_000, b"k" * n, b"v" * n, [("h" * n, b"x" * n)] if n else [])
    events = [event_pb2.EventData.FromString(e) for e in decode_batches(bytes(builder.build()))[0].events]
    assert [len(e.body) for e in events] == sizes
    assert [len(e.partition_key) for e in events] == sizes
    assert [sum(map(len, e.properties.values())) for e in events] == sizes
