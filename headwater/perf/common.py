"""What the perf commands share: the JSON line (:func:`emit`), peak RSS, the trip events and
query shapes of ``headwater perf query``. The perf modules and ``headwater.cli.perf`` import
this; nothing here imports the CLI (pyproject's import-linter contracts: cli is outermost)."""

from __future__ import annotations

import json
import random
import resource
from collections.abc import Iterator
from datetime import UTC
from typing import Any

__all__ = ["CITIES", "DUCKDB", "QUERIES", "emit", "peak_rss_mb", "tree_cpu_s", "tree_peak_rss_mb", "trip_batches"]


def peak_rss_mb() -> float:
    """Peak resident memory of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(summary: str, result: dict[str, Any], as_json: bool) -> None:
    print(summary)
    if as_json:
        print(json.dumps(result))


# -- perf query: the trip events and query shapes -------------------------------------------
_AGGS = "COUNT(DISTINCT tripId) AS uniqueTrips, SUM(CAST(fare AS float)) AS fares"
QUERIES = {
    "book": ("SELECT startLocation, COUNT(*) AS trips, System.Timestamp() AS windowEnd "
             "FROM trips TIMESTAMP BY createdAt GROUP BY startLocation, TumblingWindow(second, 10)"),
    "distinct": (f"SELECT startLocation, {_AGGS}, System.Timestamp() AS windowEnd "
                 "FROM trips TIMESTAMP BY createdAt GROUP BY startLocation, TumblingWindow(second, 10)"),
    "hopping": (f"SELECT startLocation, {_AGGS}, System.Timestamp() AS windowEnd "
                "FROM trips TIMESTAMP BY createdAt GROUP BY startLocation, HoppingWindow(second, 20, 10)"),
    "session": (f"SELECT startLocation, {_AGGS}, System.Timestamp() AS windowEnd "
                "FROM trips TIMESTAMP BY createdAt "
                "GROUP BY startLocation, SessionWindow(second, 5, 60) OVER (PARTITION BY startLocation)"),
}
DUCKDB = {
    "book": ("SELECT startLocation, count(*) AS trips, "
             "to_timestamp(ceil(epoch_us(createdAt::TIMESTAMP) / 1e7) * 10) AS windowEnd "
             "FROM read_json('{path}', format='newline_delimited', columns={cols}) GROUP BY ALL"),
    "distinct": ("SELECT startLocation, count(DISTINCT tripId) AS uniqueTrips, sum(fare::DOUBLE) AS fares, "
                 "to_timestamp(ceil(epoch_us(createdAt::TIMESTAMP) / 1e7) * 10) AS windowEnd "
                 "FROM read_json('{path}', format='newline_delimited', columns={cols}) GROUP BY ALL"),
}
DUCKDB["hopping"] = DUCKDB["distinct"]  # the batch peer computes the same aggregates per key and bucket
DUCKDB["session"] = DUCKDB["distinct"]
CITIES = ("San Francisco", "San Jose", "Los Angeles", "Seattle", "Portland", "San Diego", "Sacramento",
          "Las Vegas", "Phoenix", "Denver")


def trip_batches(n: int, batch: int, *, rate_per_s: float = 10_000.0, seed: int = 7) -> Iterator[list[bytes]]:
    """JSON trip bodies in batches: ``tripId`` (uuid), ``createdAt`` (ISO, ``rate_per_s`` per
    second of event time from 2024-01-01), ``startLocation``/``endLocation`` among 10 cities,
    ``distance``, ``fare``."""
    rng = random.Random(seed)
    base = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z in us
    step = 1e6 / rate_per_s
    cities = [c.encode() for c in CITIES]
    from datetime import datetime

    sent = 0
    while sent < n:
        m = min(batch, n - sent)
        out = []
        for i in range(sent, sent + m):
            us = base + int(i * step)
            dt = datetime.fromtimestamp(us / 1e6, tz=UTC)
            h = rng.getrandbits(128).to_bytes(16, "big").hex()
            out.append(b'{"tripId":"%s-%s-4%s-a%s-%s","createdAt":"%s.%03dZ","startLocation":"%s",'
                       b'"endLocation":"%s","distance":%d,"fare":%d.%02d}' % (
                           h[:8].encode(), h[8:12].encode(), h[13:16].encode(), h[17:20].encode(),
                           h[20:32].encode(), dt.strftime("%Y-%m-%dT%H:%M:%S").encode(), dt.microsecond // 1000,
                           cities[rng.randrange(10)], cities[rng.randrange(10)], rng.randrange(10, 1000),
                           rng.randrange(5, 200), rng.randrange(100)))
        sent += m
        yield out


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` and its live descendants
    (a service and its job workers); 0.0 where /proc is not there."""
    return sum(cpu for cpu, _ in _tree(pid).values())


def tree_peak_rss_mb(pid: int) -> tuple[float, float]:
    """The peak resident memory (VmHWM) of process ``pid`` and the largest of its live
    descendants' (a service's job workers), in MB; 0.0 where /proc is not there."""
    peaks = {p: _peak_rss_of(p) for p in _tree(pid)}
    own = peaks.pop(pid, 0.0)
    return own, max(peaks.values(), default=0.0)


def _peak_rss_of(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _tree(pid: int) -> dict[int, tuple[float, int]]:
    """Process ``pid`` and its live descendants: pid -> (CPU seconds, parent)."""
    import os

    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    procs: dict[int, tuple[float, int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return {}
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()  # after "pid (comm) "
        procs[int(name)] = ((int(fields[11]) + int(fields[12])) / tick, int(fields[1]))
    tree, todo = set(), [pid]
    while todo:
        p = todo.pop()
        if p in tree or p not in procs:
            continue
        tree.add(p)
        todo.extend(c for c, (_, pp) in procs.items() if pp == p)
    return {p: procs[p] for p in tree}
