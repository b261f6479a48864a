"""``headwater query test``: run a query over sample files, with no services.

    headwater query test --query Q.asaql --input ALIAS=events.json [--input ...] \\
        [--reference ALIAS=rows.json] [--late-arrival-tolerance S] [--out-of-order-tolerance S] \\
        [--out-of-order-action adjust|drop] [--arrival-time-field NAME] \\
        [--udf NAME=module:function | NAME=FILE.js] --output-dir DIR

Writes ``DIR/<output alias>.json`` (a JSON array of rows, datetimes as
``2021-12-10T10:00:00.0000000Z``) for every output of the query. Events are fed in file
order with the arrival time from ``--arrival-time-field`` (removed from the payload), or,
without it, in timestamp order as if each arrived on time. Exit status 1 with
``line L, column C: message`` on a compile error, or the error when the query fails. The
query may read only the given aliases and its WITH steps; stderr warns about an input file
the query does not read and counts events dropped, late or in error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from headwater.serializers import DecodeError
from headwater.services.processing.local import decode_events, load_udf, run_local, udf_plugin

__all__ = ["add_commands", "run_explain", "run_test", "read_events", "load_udf", "write_outputs"]


def add_commands(subparsers: argparse._SubParsersAction[Any]) -> None:
    q = subparsers.add_parser("query", help="work with Stream Analytics queries locally")
    qsub = q.add_subparsers(dest="query_command", metavar="SUBCOMMAND")
    t = qsub.add_parser("test", help="run a query over sample files (no services)")
    t.add_argument("--query", required=True, help="file with the query text")
    t.add_argument("--input", action="append", default=[], metavar="ALIAS=FILE",
                   help="events of a stream input: JSON array, JSON lines, CSV or Avro")
    t.add_argument("--reference", action="append", default=[], metavar="ALIAS=FILE",
                   help="rows of a static reference input")
    t.add_argument("--late-arrival-tolerance", type=float, default=None, metavar="SECONDS")
    t.add_argument("--out-of-order-tolerance", type=float, default=None, metavar="SECONDS")
    t.add_argument("--out-of-order-action", choices=["adjust", "drop"], type=str.lower, default="adjust")
    t.add_argument("--arrival-time-field", default=None, metavar="NAME",
                   help="payload field holding the arrival time (removed from the event)")
    t.add_argument("--udf", action="append", default=[], metavar="NAME=module:function|NAME=FILE.js",
                   help="a Python function, or a JavaScript UDF/UDA file (function main), called in the "
                        "query as UDF.NAME(...) / UDA.NAME(...)")
    t.add_argument("--output-dir", required=True, metavar="DIR")
    t.set_defaults(func=run_test)
    e = qsub.add_parser("explain", help="print the plan of a query (compile errors as in test)")
    e.add_argument("--query", required=True, help="file with the query text")
    e.add_argument("--reference", action="append", default=[], metavar="ALIAS",
                   help="an input that is static reference data")
    e.set_defaults(func=run_explain)
    q.set_defaults(func=lambda args: (q.print_help(), 2)[1])


def _pair(text: str, what: str) -> tuple[str, str]:
    if "=" not in text:
        raise SystemExit(f"headwater: {what} must be NAME=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def read_events(path: str | Path, pm: Any = None) -> list[dict[str, Any]]:
    """Events of a file: JSON array, JSON lines, CSV, or an Avro container file (by suffix);
    a file that does not read raises DecodeError naming it."""
    try:
        events: list[dict[str, Any]] = decode_events(Path(path).read_bytes(), Path(path).name, pm)
        return events
    except DecodeError as exc:
        raise DecodeError(f"{path}: InputDeserializationError: {exc}") from None




def write_outputs(out_dir: str | Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    from headwater.services.processing.engine import format_rows

    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    for alias, items in rows.items():
        (d / f"{alias}.json").write_bytes(orjson.dumps(format_rows(items), option=orjson.OPT_INDENT_2))



def run_test(args: argparse.Namespace) -> int:
    from headwater.errors import HeadwaterError, QueryCompileError
    from headwater.pluginmanager import get_plugin_manager

    try:
        query = Path(args.query).read_text(encoding="utf-8-sig")
        from headwater.plugins.javascript import js_plugin

        udfs, js = {}, {}
        for spec in args.udf:
            name, target = _pair(spec, "--udf")
            if target.lower().endswith(".js"):
                js[name] = Path(target).read_text(encoding="utf-8-sig")
            else:
                udfs[name] = load_udf(target)
        pm = get_plugin_manager([("headwater-cli-udfs", udf_plugin(udfs))] if udfs else []
                                + ([("headwater-cli-js", js_plugin(js))] if js else []))
        pm.collect()
        inputs = {}
        for spec in args.input:
            alias, path = _pair(spec, "--input")
            inputs[alias] = read_events(path, pm)
        refs = {}
        for spec in args.reference:
            alias, path = _pair(spec, "--reference")
            refs[alias] = read_events(path, pm)
        stats: dict[str, Any] = {}
        rows = run_local(query, inputs, refs, late=args.late_arrival_tolerance, ooo=args.out_of_order_tolerance,
                         action=args.out_of_order_action, arrival_field=args.arrival_time_field, pm=pm,
                         check_inputs=True, stats=stats)
    except QueryCompileError as exc:
        print(f"line {exc.line}, column {exc.column}: {exc.message}", file=sys.stderr)
        return 1
    except HeadwaterError as exc:
        print(f"headwater: query failed: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"headwater: {exc}", file=sys.stderr)
        return 1
    write_outputs(args.output_dir, rows)
    for alias, items in rows.items():
        print(f"{alias}: {len(items)} rows -> {Path(args.output_dir) / (alias + '.json')}")
    _report(stats, list(inputs) + list(refs))
    return 0


def _report(stats: dict[str, Any], given: list[str]) -> None:
    """On stderr: input files the query does not read, and events not processed as given."""
    for alias in given:
        if alias.lower() not in stats["reads"]:
            print(f"headwater: warning: the query does not read input {alias!r}; its file is ignored",
                  file=sys.stderr)
    c = stats["counters"]
    parts = [f"{n} {what}" for n, what in ((c.dropped, "dropped"), (c.late, "late"), (c.early, "early"),
                                            (c.out_of_order, "out of order"),
                                            (c.conversion_errors, "conversion errors"),
                                            (c.deserialization_errors, "deserialization errors")) if n]
    if parts:
        print(f"headwater: {c.events_in} events in: {', '.join(parts)}", file=sys.stderr)
        for sample in c.samples[:3]:
            print(f"headwater:   {sample}", file=sys.stderr)


def run_explain(args: argparse.Namespace) -> int:
    from headwater.errors import QueryCompileError
    from headwater.services.processing.engine import compile_query

    try:
        text = Path(args.query).read_text(encoding="utf-8-sig")
        compiled = compile_query(text, references=[r.split("=", 1)[0] for r in args.reference])
    except QueryCompileError as exc:
        print(f"line {exc.line}, column {exc.column}: {exc.message}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"headwater: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(compiled.explain())
    return 0
