"""The numba kernels (log/_kernels.py) against the Python paths they replace for large batches."""

from __future__ import annotations

import random
import time

import pytest
from kafka.record import MemoryRecords
from kafka.record.default_records import DefaultRecordBatchBuilder

from headwater.errors import HeadwaterError
from headwater.services.ingestion.kafka import records
from headwater.services.ingestion.log import segment
from headwater.services.ingestion.log.jit import KERNELS
from headwater.services.ingestion.log.segment import PackedEvents, encode_batch, slice_batches
from headwater.v1 import event_pb2


@pytest.fixture(scope="module", autouse=True)
def _kernels():
    KERNELS.load()  # compiled by `make setup`; here at most loaded from numba's cache


def _python(monkeypatch, on: bool) -> None:
    """Route batches of any size to the Python paths (on) or to the kernels (off)."""
    monkeypatch.setattr(records, "COMPILED_MIN_RECORDS", 10**9 if on else 1)
    monkeypatch.setattr(segment, "COMPILED_MIN_EVENTS", 10**9 if on else 1)


def _kafka_batch(recs, codec: int = 0) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False, producer_id=3,
                                        producer_epoch=0, base_sequence=0, batch_size=1 << 30)
    for i, (key, value, headers) in enumerate(recs):
        builder.append(i, 1_700_000_000_000 + i, key, value, headers)
    return bytes(builder.build())


def _ascii_records(n: int, seed: int = 5) -> list:
    rng = random.Random(seed)
    return [(rng.choice([None, b"", b"key-%d" % i]),
             rng.choice([None, b"", b"v" * rng.choice([1, 63, 64, 250, 9000, 70_000])]),
             [(f"h{j}", rng.choice([None, b"", b"x" * j])) for j in range(rng.choice([0, 0, 1, 3]))])
            for i in range(n)]


@pytest.mark.parametrize("codec", [0, 4], ids=["none", "zstd"])
def test_produce_kernel_builds_the_same_events(monkeypatch, codec):
    data = _kafka_batch(_ascii_records(400), codec)
    _python(monkeypatch, True)
    expected = decode_batches_events(data)
    _python(monkeypatch, False)
    got = records.decode_batches(data)[0].events
    assert isinstance(got, PackedEvents)  # no Python object per record
    assert list(got) == expected and len(got) == 400


def decode_batches_events(data: bytes) -> list[bytes]:
    return list(records.decode_batches(data)[0].events)


def test_produce_kernel_hands_back_what_it_does_not_handle(monkeypatch):
    _python(monkeypatch, False)
    odd = _ascii_records(50) + [(b"\xff\xfe", b"binary key", [("caf\u00e9", "\u00e9t\u00e9".encode())])]
    events = records.decode_batches(_kafka_batch(odd))[0].events
    assert isinstance(events, list)  # the Python path: base64 key, UTF-8 checked
    last = event_pb2.EventData.FromString(events[-1])
    assert last.properties == {"caf\u00e9": "\u00e9t\u00e9", records.KEY_B64_PROPERTY: "//4="}
    corrupt = bytearray(_kafka_batch(_ascii_records(80)))
    corrupt[61] = 0x7F  # the first record's length: past the end of the batch
    from crc32c import crc32c
    corrupt[17:21] = crc32c(bytes(corrupt[21:])).to_bytes(4, "big")
    with pytest.raises(HeadwaterError, match="corrupt record batch"):
        records.decode_batches(bytes(corrupt))


def _read(parts, ordered: bool = False) -> list:
    batch = MemoryRecords(b"".join(parts)).next_batch()
    assert batch.validate_crc()
    return [(r.offset, r.timestamp, r.key, r.value, r.headers if ordered else sorted(r.headers)) for r in batch]


def test_fetch_kernel_builds_the_same_records(monkeypatch):
    _python(monkeypatch, True)
    stored = decode_batches_events(_kafka_batch(_ascii_records(300)))
    stored += [event_pb2.EventData(body=b"b%d" % i, partition_key=f"pk{i}", properties={"only": str(i)},
                                   content_type="text/plain").SerializeToString() for i in range(30)]
    ts = time.time_ns()
    log = encode_batch(stored, "0", 1000, 50_000, ts).data + encode_batch(stored[:70], "0", 1330, 90_000,
                                                                          ts + 7_000_000).data
    for start in (1000, 1017, 1329):  # slice_batches starts in the first batch of its buffer
        pieces, n = slice_batches(log, start, 10_000)
        _python(monkeypatch, True)
        expected, first = records.encode_fetch(pieces, n)
        _python(monkeypatch, False)
        got, first_compiled = records.encode_fetch(pieces, n)
        assert first_compiled == first == start
        assert _read(got) == _read(expected)  # the Python path lists headers in protobuf map order
        assert [r[0] for r in _read(got)] == list(range(start, 1400))
    # the kernel keeps them in the producer's order (the order they are stored in)
    got, _ = records.encode_fetch(*slice_batches(log, 1000, 10_000))
    assert [r[4] for r in _read(got, ordered=True) if len(r[4]) == 3][0] == [("h0", b""), ("h1", b""), ("h2", b"xx")]


def test_fetch_kernel_leaves_base64_keys_to_the_python_path(monkeypatch):
    _python(monkeypatch, False)
    stored = records.decode_batches(_kafka_batch([(b"\xff\x00", b"v", [])] * 100))[0].events
    pieces, n = slice_batches(encode_batch(list(stored), "0", 0, 0, time.time_ns()).data, 0, 1000)
    got, _ = records.encode_fetch(pieces, n)
    assert {r[2] for r in _read(got)} == {b"\xff\x00"}


def test_log_kernel_writes_the_same_bytes(monkeypatch):
    rng = random.Random(11)
    events = [event_pb2.EventData(body=rng.randbytes(rng.choice([0, 5, 250, 20_000])),
                                  partition_key="k" * (i % 3)).SerializeToString() for i in range(500)]
    ts = time.time_ns()
    for base_sequence, base_offset in [(0, 0), (16_380, 2**40), (2**45 + 5, 3)]:
        _python(monkeypatch, True)
        expected = encode_batch(events, "13", base_sequence, base_offset, ts, "pid-x", 7)
        _python(monkeypatch, False)
        for given in (events, PackedEvents.of(events)):
            got = encode_batch(given, "13", base_sequence, base_offset, ts, "pid-x", 7)
            assert got.data == expected.data and got.payload_len == expected.payload_len


def test_packed_events_read_as_a_sequence():
    events = [b"a", b"", b"ccc", b"dd"]
    packed = PackedEvents.of(events)
    assert list(packed) == events and len(packed) == 4 and packed.nbytes == 6
    assert packed[2] == b"ccc" and packed[-1] == b"dd"
    assert list(packed[1:3]) == [b"", b"ccc"] and list(packed.sizes()) == [1, 0, 3, 2]
