"""A job's per-partition read-ahead is bounded in bytes (services/processing/runtime.ReadAhead):
a reader's put waits while its partition holds its share, one chunk may go over (so a chunk
bigger than the share is still taken), and the read size follows the event size."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from headwater.services.processing.runtime import Chunk, ReadAhead


def chunk(n: int, size: int, first: int = 0) -> Chunk:
    offsets = np.arange(n + 1, dtype=np.int64) * size
    return Chunk("i", "0", b"x" * (n * size), offsets, np.arange(first, first + n, dtype=np.int64),
                 np.zeros(n, dtype=np.int64), ["application/json"])


def test_put_waits_while_the_share_is_full_and_resumes_when_taken() -> None:
    async def scenario():
        q = ReadAhead(1000)
        await q.put(chunk(6, 100))  # 600 < 1000: taken
        await q.put(chunk(6, 100, 6))  # 1200: over by one chunk, still taken
        third = asyncio.ensure_future(q.put(chunk(1, 100, 12)))
        await asyncio.sleep(0)  # let the put run until it blocks
        await asyncio.sleep(0)
        assert not third.done() and q.qsize() == 2 and q.nbytes == 1200
        assert len(q.get_nowait()) == 6  # 600 left: room again
        await asyncio.wait_for(third, 1)
        assert q.qsize() == 2 and q.nbytes == 700
        assert [int(q.get_nowait().seqs[0]) for _ in range(2)] == [6, 12]
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()
        assert q.nbytes == 0

    asyncio.run(scenario())


def test_a_chunk_larger_than_the_share_is_taken() -> None:
    async def scenario():
        q = ReadAhead(100)
        await asyncio.wait_for(q.put(chunk(10, 50)), 1)
        assert q.nbytes == 500

    asyncio.run(scenario())


def test_read_size_is_a_quarter_of_the_share_in_events() -> None:
    q = ReadAhead(4 * 2**20)
    assert q.batch_events(chunk(10, 2048), 5000) == 512  # 1 MiB of 2 KiB events
    assert q.batch_events(chunk(10, 20), 5000) == 5000  # small events: the configured most
    assert q.batch_events(chunk(1, 8 * 2**20), 5000) == 1  # one huge event at a time


def test_put_back_is_taken_next() -> None:
    q = ReadAhead(10_000)
    asyncio.run(q.put(chunk(4, 100, 10)))
    first = q.get_nowait()
    q.put_back(first.take(slice(2, 4)))
    assert q.nbytes == 200 and [int(s) for s in q.get_nowait().seqs] == [12, 13]
