"""``headwater perf ...``: performance tools, after Kafka's perf-test tools.

Each prints a human summary and, with ``--json``, one JSON object as its last line with
at least ``events_per_s`` and ``peak_rss_mb``.

Adding a perf command (other areas: produce, consume, sink, registry): write a function
``add_<name>(perf_subparsers)`` that calls ``perf_subparsers.add_parser("<name>", ...)``
and ``set_defaults(func=...)``, and list it in :data:`PERF_COMMANDS` below (or call
:func:`register_perf_command` from your module before the CLI is built). The
``--json`` flag and :func:`emit` / :func:`peak_rss_mb` helpers are shared.

``headwater perf query``: N generated trip events as JSON bodies, in memory, through the
query engine in batches as a job feeds it (JSON decode included); ``--compare duckdb``
runs DuckDB's batch SQL over the same events in the same run and prints the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from headwater.perf.common import DUCKDB, QUERIES, emit, peak_rss_mb, trip_batches

__all__ = ["PERF_COMMANDS", "add_commands", "register_perf_command"]

#: perf subcommand name -> function adding its parser to the ``perf`` subparsers.
PERF_COMMANDS: dict[str, Callable[[argparse._SubParsersAction[Any]], None]] = {}


def register_perf_command(name: str, add: Callable[[argparse._SubParsersAction[Any]], None]) -> None:
    PERF_COMMANDS[name] = add


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    p = subparsers.add_parser("perf", help="performance tools (events/s, latency, memory)")
    perf_sub = p.add_subparsers(dest="perf_command", metavar="SUBCOMMAND")
    for add in PERF_COMMANDS.values():
        add(perf_sub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def add_query(perf_sub: argparse._SubParsersAction[Any]) -> None:
    q = perf_sub.add_parser("query", help="events/s of the query engine over generated trip events")
    q.add_argument("-n", "--events", type=int, default=1_000_000)
    q.add_argument("--batch", type=int, default=50_000, help="events per batch fed to the engine")
    q.add_argument("--query", choices=sorted(QUERIES), default="book")
    q.add_argument("--suite", action="store_true",
                   help="every query shape of the book and the conformance cases (-n events each)")
    q.add_argument("--only", action="append", default=None, help="with --suite: run this shape (repeatable)")
    q.add_argument("--packed", action="store_true",
                   help="with --suite: feed each batch as one buffer and offsets, as a job's packed reads do "
                        "(feed_buffer), not as a list of bodies")
    q.add_argument("--repeat", type=int, default=3,
                   help="with --suite: run each shape this many times (engine and DuckDB alike) and report "
                        "the fastest run (default 3)")
    q.add_argument("--checkpoint", type=int, metavar="KEYS", default=None,
                   help="measure snapshot/restore of KEYS group keys in an open window (ms, size)")
    q.add_argument("--state", choices=["count", "stdev", "lag", "lag_when"], default="count",
                   help="with --checkpoint: whose state (count: vectorised aggregate; lag: vectorised LAG; stdev, lag_when: row-path operators)")
    q.add_argument("--rate", type=float, default=10_000.0, help="events per second of event time")
    q.add_argument("--row-path", action="store_true", help="run every operator row by row (for comparison)")
    q.add_argument("--compare", choices=["duckdb"], default=None)
    q.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    q.set_defaults(func=run_perf_query)


def run_perf_query_suite(args: argparse.Namespace) -> int:
    from headwater.perf.query import run_suite

    results = []
    fed = "packed buffers" if args.packed else "lists of bodies"
    best = f", best of {args.repeat} runs" if args.repeat > 1 else ""
    print(f"perf query --suite: {args.events} events per shape, batches of {args.batch} ({fed}{best})")
    for r in run_suite(args.events, args.batch, args.rate, args.compare, args.only, args.packed, args.repeat):
        results.append(r)
        line = f"  {r['query']:<26} {r['events_per_s']:>12,} events/s  ({r['plan']})"
        if "duckdb_events_per_s" in r:
            line += f"  duckdb {r['duckdb_events_per_s']:>12,} ({r['duckdb']})  ratio {r['ratio_vs_duckdb']}"
        print(line, flush=True)
    book = next((r for r in results if r["query"] == "book"), results[0] if results else {"events_per_s": 0})
    result = {"events": args.events, "repeat": args.repeat, "queries": results, "events_per_s": book["events_per_s"],
              "min_events_per_s": min((r["events_per_s"] for r in results), default=0),
              "peak_rss_mb": round(peak_rss_mb(), 1)}
    emit(f"book {book['events_per_s']:,} events/s; slowest shape {result['min_events_per_s']:,} events/s; "
         f"peak RSS {result['peak_rss_mb']} MB", result, args.json)
    return 0


def run_perf_query(args: argparse.Namespace) -> int:
    from headwater.services.processing.engine import compile_query

    if args.suite:
        return run_perf_query_suite(args)
    if args.checkpoint:
        from headwater.perf.query import checkpoint

        r = checkpoint(args.checkpoint, vectorize=not args.row_path, state=args.state)
        r["peak_rss_mb"] = round(peak_rss_mb(), 1)
        r["events_per_s"] = 0
        forked = (f"; from a fork, as a job's worker: the job pauses {r['fork_pause_ms']} ms, written after "
                  f"{r['fork_written_ms']} ms" if "fork_pause_ms" in r else "")
        incremental = "; incremental, to a file: " + ", ".join(
            f"{e} {r[f'{e}_bytes']:,} bytes in {r[f'{e}_ms']} ms (pause {r[f'{e}_pause_ms']} ms)"
            for e in ("whole", "idle", "changed_1pct"))
        emit(f"checkpoint of {r['keys']:,} keys ({r['state']}, {r['plan']}): snapshot {r['snapshot_ms']} ms, restore "
             f"{r['restore_ms']} ms, {r['snapshot_mb']} MB{forked}{incremental}", r, args.json)
        return 0
    from headwater.perf.query import load_kernels

    load_kernels()
    compiled = compile_query(QUERIES[args.query])
    rt = compiled.runtime(vectorize=not args.row_path)
    dump = None
    if args.compare == "duckdb":
        fd, dump_path = tempfile.mkstemp(suffix=".ndjson")
        dump = os.fdopen(fd, "wb")
    engine_s = 0.0
    rows = 0
    for bodies in trip_batches(args.events, args.batch, rate_per_s=args.rate):
        if dump is not None:
            dump.write(b"\n".join(bodies) + b"\n")
        t0 = time.perf_counter()
        rt.feed_bodies("trips", bodies)
        rows += sum(len(v) for v in rt.take().values())
        engine_s += time.perf_counter() - t0
    t0 = time.perf_counter()
    rt.flush()
    rows += sum(len(v) for v in rt.take().values())
    engine_s += time.perf_counter() - t0
    eps = args.events / engine_s if engine_s else 0.0
    result = {"query": args.query, "events": args.events, "batch": args.batch, "output_rows": rows,
              "seconds": round(engine_s, 3), "events_per_s": round(eps), "peak_rss_mb": round(peak_rss_mb(), 1),
              "path": rt.mode or "row", **{k: v for k, v in rt.counters.as_dict().items() if k != "samples"}}
    summary = (f"perf query {args.query}: {args.events} events in {engine_s:.2f} s = {eps:,.0f} events/s "
               f"({rt.mode} path), {rows} output rows, peak RSS {result['peak_rss_mb']} MB")
    if dump is not None:
        dump.close()
        try:
            import duckdb
        except ImportError:
            print("headwater: --compare duckdb needs the duckdb package", file=sys.stderr)
            return 1
        cols = "{'tripId': 'VARCHAR', 'createdAt': 'VARCHAR', 'startLocation': 'VARCHAR', 'fare': 'DOUBLE'}"
        sql = DUCKDB[args.query].format(path=dump_path, cols=cols)
        con = duckdb.connect()
        t0 = time.perf_counter()
        con.execute(sql).fetchall()
        duck_s = time.perf_counter() - t0
        os.unlink(dump_path)
        duck_eps = args.events / duck_s
        result.update({"duckdb_events_per_s": round(duck_eps), "ratio_vs_duckdb": round(eps / duck_eps, 3)})
        summary += f"\nduckdb (batch SQL, same events): {duck_eps:,.0f} events/s; ratio {eps / duck_eps:.3f}"
    emit(summary, result, args.json)
    return 0


register_perf_command("query", add_query)


def _add_area(module: str) -> Callable[[argparse._SubParsersAction[Any]], None]:
    def add(perf_sub: argparse._SubParsersAction[Any]) -> None:
        import importlib

        importlib.import_module(module).add_perf_commands(perf_sub)
    return add


#: The other areas' perf commands: each module exposes add_perf_commands(perf_subparsers).
for _name, _module in (("ingestion", "headwater.perf.ingestion"),   # produce, consume
                       ("registry", "headwater.perf.registry"),
                       ("sink", "headwater.perf.sink"),
                       ("pipeline", "headwater.perf.pipeline"),
                       ("node", "headwater.perf.node"),   # node-read
                       ("files", "headwater.perf.files")):
    register_perf_command(_name, _add_area(_module))


# -- perf all ---------------------------------------------------------------------------------
#: What `make bench` runs: (label, argv after `headwater perf`), sized for a 2-core machine.
ALL_RUNS: tuple[tuple[str, list[str]], ...] = (
    ("produce", ["produce", "--events", "1000000", "--event-size", "250", "--batch-size", "1000",
                 "--producers", "1", "--partitions", "4"]),
    ("consume", ["consume", "--events", "1000000", "--event-size", "250", "--partitions", "4"]),
    ("query book", ["query", "-n", "2000000", "--query", "book", "--compare", "duckdb"]),
    ("query distinct", ["query", "-n", "2000000", "--query", "distinct", "--compare", "duckdb"]),
    ("query hopping", ["query", "-n", "2000000", "--query", "hopping", "--compare", "duckdb"]),
    ("query session", ["query", "-n", "2000000", "--query", "session", "--compare", "duckdb"]),
    ("registry", ["registry"]),
    ("sink memory", ["sink", "--output", "memory", "--rows", "100000"]),
    ("sink postgres", ["sink", "--output", "postgres", "--rows", "100000"]),
    ("sink postgres-upsert", ["sink", "--output", "postgres-upsert", "--rows", "100000"]),
    ("sink parquet", ["sink", "--output", "parquet", "--rows", "100000"]),
    ("sink delta", ["sink", "--output", "delta", "--rows", "100000"]),
    ("sink jsonl", ["sink", "--output", "jsonl", "--rows", "100000"]),
    ("pipeline", ["pipeline", "--rate", "20000", "--seconds", "8"]),
)


def _all(args: argparse.Namespace) -> int:
    """Each perf command in its own process (so peak RSS is its own), one table at the end."""
    import subprocess

    from headwater.procs import headwater_cmd

    results = []
    for label, argv in ALL_RUNS:
        if args.only and not any(o in label for o in args.only):
            continue
        print(f"== headwater perf {' '.join(argv)}", flush=True)
        proc = subprocess.run([*headwater_cmd(), "perf", *argv, "--json"], capture_output=True, text=True)
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        print("\n".join(lines[:-1]) if lines else proc.stderr[-2000:], flush=True)
        try:
            result = json.loads(lines[-1])
        except (IndexError, json.JSONDecodeError):
            result = {"error": (proc.stderr or proc.stdout)[-300:]}
        results.append((label, result))
    print("\n| run | events/s | MB/s | p50 ms | p99 ms | peak RSS MB | ratio |")
    print("|---|---|---|---|---|---|---|")
    for label, r in results:
        ratio = next((f"{k}={v:.3g}" for k, v in r.items() if k.startswith("ratio") and isinstance(v, (int, float))), "")
        cells = [f"{r[k]:,.0f}" if isinstance(r.get(k), (int, float)) and k == "events_per_s" else
                 (f"{r[k]:g}" if isinstance(r.get(k), (int, float)) else "") for k in
                 ("events_per_s", "mb_per_s", "p50_ms", "p99_ms", "peak_rss_mb")]
        print(f"| {label} | {' | '.join(cells)} | {ratio or r.get('error', '')} |")
    if args.json:
        print(json.dumps({label: r for label, r in results}))
    return 0 if all("error" not in r for _, r in results) else 1


def add_all(perf_sub: argparse._SubParsersAction[Any]) -> None:
    p = perf_sub.add_parser("all", help="every perf command at its README size, one table (make bench)")
    p.add_argument("--only", action="append", default=[], help="runs whose label contains this (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_all)


register_perf_command("all", add_all)
