"""How a partition key picks a partition: one rule for the service and every client of it.

Ingestion routes a batch published with a partition key by this rule, and anything that
must know in advance where a key lands (the ``hub`` sink keeps idempotent producer
sequences per partition) uses the same function."""

from __future__ import annotations

import zlib

__all__ = ["partition_for_key"]


def partition_for_key(key: str, partition_count: int) -> int:
    """The partition index a key lands in: CRC-32 of its UTF-8 bytes modulo the partition
    count, stable across restarts and instances."""
    return zlib.crc32(key.encode()) % partition_count
