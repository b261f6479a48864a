"""The book's trips: generated taxi-trip events for the demo, the examples and perf runs.

Each trip carries ``createdAt`` (what the book's Spark schema and queries read)
and ``timestamp`` (what its producer wrote), plus ``distance`` and the
producer's misspelt ``distancia``, so both halves of the book run unchanged.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

__all__ = ["CITIES", "trip", "trips", "trip_bodies"]

CITIES = ("San Francisco", "San José", "Los Ángeles", "Seattle", "Portland", "San Diego",
          "Sacramento", "Las Vegas", "Phoenix", "Denver")


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def trip(rng: random.Random, created: datetime) -> dict[str, Any]:
    distance = rng.randint(10, 1000)
    return {
        "tripId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "createdAt": _iso(created),
        "timestamp": _iso(created),
        "startLocation": rng.choice(CITIES),
        "endLocation": rng.choice(CITIES),
        "distance": distance,
        "distancia": distance,
        "fare": rng.randint(100, 1000),
    }


def trips(n: int, *, seed: int = 7, start: datetime | None = None, rate_per_s: float = 1000.0,
          jitter_s: float = 0.0) -> Iterator[dict[str, Any]]:
    """``n`` trips, ``rate_per_s`` per second of event time from ``start``.

    ``jitter_s`` moves each event's time up to that many seconds earlier, for
    out-of-order input.
    """
    rng = random.Random(seed)
    t0 = start or datetime.now(UTC)
    step = 1.0 / rate_per_s
    for i in range(n):
        created = t0 + timedelta(seconds=i * step - (rng.random() * jitter_s if jitter_s else 0.0))
        yield trip(rng, created)


def trip_bodies(n: int, **kw: Any) -> list[bytes]:
    """``n`` trips as JSON bodies."""
    return [orjson.dumps(t) for t in trips(n, **kw)]
