"""``headwater sink ...`` and ``headwater table show``: outputs of the sink service.

The service is ``--sink HOST:PORT`` (or ``$HEADWATER_SINK_ADDRESS``, default
``localhost:50054``). The key comes from ``--connection-string`` (or
``$HEADWATER_SINK_CONNECTION_STRING``), else from the local policies file (the
root policy in ``$HEADWATER_HOME/auth.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headwater.errors import HeadwaterError, Reason

if TYPE_CHECKING:
    import grpc
    from google.protobuf.message import Message

    from headwater.v1 import sink_pb2, sink_pb2_grpc

__all__ = ["add_commands"]

_MODES = ("append", "update", "complete")
_POLICIES = ("retry", "drop")


def _stub(args: argparse.Namespace) -> tuple[grpc.Channel, sink_pb2_grpc.SinkServiceStub]:
    from headwater.cli.common import service_channel
    from headwater.v1 import sink_pb2_grpc

    channel = service_channel(args, "sink")
    return channel, sink_pb2_grpc.SinkServiceStub(channel)


def _call(method: Callable[..., Any], request: Message) -> Any:  # the generated stubs are untyped
    import grpc

    try:
        return method(request, timeout=30)
    except grpc.RpcError as exc:
        raise HeadwaterError.from_rpc_error(exc) from None


def _name(name: str) -> str:
    return name if name.startswith("sinks/") else f"sinks/{name}"


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _config(args: argparse.Namespace) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if args.config:
        text = args.config
        if text.startswith("@"):
            with open(text[1:], encoding="utf-8") as fh:
                text = fh.read()
        try:
            config = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--config is not valid JSON: {exc}") from None
        if not isinstance(config, dict):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "--config must be a JSON object")
    for item in args.set or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--set {item!r}: use KEY=VALUE")
        config[key] = _parse_value(value)
    return config


def _whole_numbers(value: Any) -> Any:
    """google.protobuf.Struct keeps every number as a double: show 100.0 as 100 again."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def _sink_dict(s: sink_pb2.Sink) -> dict[str, Any]:
    from google.protobuf import json_format

    d = json_format.MessageToDict(s, preserving_proto_field_name=True)
    if "config" in d:
        d["config"] = _whole_numbers(d["config"])
    return d


def _sink_text(s: sink_pb2.Sink) -> str:
    from headwater.v1 import sink_pb2 as spb

    mode = spb.OutputMode.Name(s.output_mode).removeprefix("OUTPUT_MODE_").lower()
    policy = spb.ErrorPolicy.Name(s.error_policy).removeprefix("ERROR_POLICY_").lower()
    guarantee = spb.DeliveryGuarantee.Name(s.delivery_guarantee).removeprefix("DELIVERY_GUARANTEE_").lower()
    lines = [f"{s.name}  kind={s.kind}  mode={mode}  error_policy={policy}  {guarantee.replace('_', '-')}"]
    if s.key_columns:
        lines.append(f"  key columns: {', '.join(s.key_columns)}")
    from google.protobuf import json_format

    config = _whole_numbers(json_format.MessageToDict(s.config))
    if config:
        lines.append(f"  config: {json.dumps(config, sort_keys=True)}")
    st = s.stats
    lines.append(f"  rows written {st.rows_written}, dropped {st.rows_dropped}, retries {st.retries}, "
                 f"duplicate writes {st.duplicate_writes}")
    if st.last_error:
        lines.append(f"  last error: {st.last_error}")
    return "\n".join(lines)


def _create(args: argparse.Namespace) -> int:
    from headwater.sink_settings import set_settings
    from headwater.v1 import sink_pb2 as spb

    sink = spb.Sink(output_mode=f"OUTPUT_MODE_{args.mode.upper()}",  # enum fields take their value names
                    key_columns=args.key or [],
                    error_policy=f"ERROR_POLICY_{args.error_policy.upper()}",
                    description=args.description or "")
    set_settings(sink, args.kind, _config(args))
    channel, stub = _stub(args)
    with channel:
        resp = _call(stub.CreateSink, spb.CreateSinkRequest(
            sink_id=args.name.removeprefix("sinks/"), sink=sink, request_id=uuid.uuid4().hex))
    print(json.dumps(_sink_dict(resp.sink), indent=2) if args.json else f"created {_sink_text(resp.sink)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from headwater.v1 import sink_pb2 as spb

    sinks, token = [], ""
    channel, stub = _stub(args)
    with channel:
        while True:
            resp = _call(stub.ListSinks, spb.ListSinksRequest(page_size=500, page_token=token, kind=args.kind or ""))
            sinks += list(resp.sinks)
            token = resp.next_page_token
            if not token:
                break
    if args.json:
        print(json.dumps([_sink_dict(s) for s in sinks], indent=2))
    elif not sinks:
        print("no sinks")
    else:
        for s in sinks:
            print(_sink_text(s))
    return 0


def _show(args: argparse.Namespace) -> int:
    from headwater.v1 import sink_pb2 as spb

    channel, stub = _stub(args)
    with channel:
        s = _call(stub.GetSink, spb.GetSinkRequest(name=_name(args.name))).sink
    print(json.dumps(_sink_dict(s), indent=2) if args.json else _sink_text(s))
    return 0


def _delete(args: argparse.Namespace) -> int:
    from headwater.v1 import sink_pb2 as spb

    channel, stub = _stub(args)
    with channel:
        _call(stub.DeleteSink, spb.DeleteSinkRequest(name=_name(args.name), request_id=uuid.uuid4().hex,
                                                     allow_missing=args.allow_missing))
    print(json.dumps({"deleted": _name(args.name)}) if args.json else f"deleted {_name(args.name)}")
    return 0


def _kinds(args: argparse.Namespace) -> int:
    from headwater.v1 import sink_pb2 as spb

    channel, stub = _stub(args)
    with channel:
        kinds = _call(stub.ListSinkKinds, spb.ListSinkKindsRequest()).kinds
    if args.json:
        print(json.dumps([_sink_dict(k) for k in kinds], indent=2))
        return 0
    width = max((len(k.name) for k in kinds), default=4)
    for k in kinds:
        once = "exactly-once" if k.delivery_guarantee == spb.DELIVERY_GUARANTEE_EXACTLY_ONCE else "at-least-once"
        print(f"{k.name:<{width}}  {once:<13}  {k.description}  [{k.plugin}]")
    return 0


def _table_show(args: argparse.Namespace) -> int:
    import pyarrow as pa

    from headwater.sinks import batch_from_proto
    from headwater.v1 import sink_pb2 as spb

    parts, token, total = [], "", 0
    channel, stub = _stub(args)
    with channel:
        while True:
            resp = _call(stub.ReadTable, spb.ReadTableRequest(
                name=_name(args.name), filter=args.filter or "", order_by=args.order_by or "",
                limit=args.limit, page_size=10_000, page_token=token))
            parts.append(batch_from_proto(resp.batch))
            total = resp.total_rows
            token = resp.next_page_token
            if not token:
                break
    parts = [p for p in parts if p.num_columns]
    table = pa.concat_tables(parts, promote_options="permissive") if parts else pa.table({})
    if args.format == "json":
        for row in table.to_pylist():
            print(json.dumps(row, default=str, ensure_ascii=False))
    elif args.format == "csv":
        import pyarrow.csv as pacsv

        if table.num_columns:
            pacsv.write_csv(table, sys.stdout.buffer)
    else:
        print(_render(table))
        shown = f"{table.num_rows} of {total} rows" if total != table.num_rows else f"{total} rows"
        print(f"({shown})")
    return 0


def _render(table: Any) -> str:  # a pyarrow.Table (untyped)
    """A plain text grid, as Spark's ``show(truncate=False)``."""
    if not table.num_columns:
        return "(empty table)"
    cols = table.column_names
    rows = [["" if v is None else str(v) for v in r.values()] for r in table.to_pylist()]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(cols)]
    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [sep, "| " + " | ".join(c.ljust(w) for c, w in zip(cols, widths)) + " |", sep]
    out += ["| " + " | ".join(v.ljust(w) for v, w in zip(r, widths)) + " |" for r in rows]
    out.append(sep)
    return "\n".join(out)


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--sink", metavar="HOST:PORT",
                        help="sink service address (default $HEADWATER_SINK_ADDRESS, else $HEADWATER_HOME/endpoints.json, else localhost:50054)")
    common.add_argument("--connection-string",
                        help="Endpoint=headwater://host:port/;SharedAccessKeyName=..;SharedAccessKey=.. "
                             "(default $HEADWATER_SINK_CONNECTION_STRING, else the local root key)")
    common.add_argument("--json", action="store_true", help="print JSON")

    sink = sub.add_parser("sink", help="outputs: memory tables, dashboard, PostgreSQL, files, Delta, webhooks",
                          description="Create, list, show and delete sinks of the sink service.")
    ssub = sink.add_subparsers(dest="sink_command", metavar="COMMAND", required=True)

    p = ssub.add_parser("create", parents=[common], help="create a sink",
                        description="Create a sink. Settings come from --config JSON (or @file) and --set "
                                    "KEY=VALUE (VALUE parsed as JSON when it is JSON).",
                        epilog="example: headwater sink create trips-pg --kind postgres --mode update "
                               "--set dsn='host=127.0.0.1 dbname=test' --set table=trips --set id_field=tripId")
    p.add_argument("name", help="sink id (or sinks/ID)")
    p.add_argument("--kind", required=True, help="memory, dashboard, postgres, files, delta, webhook, ...")
    p.add_argument("--config", help="settings as a JSON object, or @FILE")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="one setting (repeatable)")
    p.add_argument("--mode", choices=_MODES, default="append", help="output mode (default append)")
    p.add_argument("--key", action="append", metavar="COLUMN", help="key column for update mode (repeatable)")
    p.add_argument("--error-policy", choices=_POLICIES, default="retry", help="default retry")
    p.add_argument("--description", help="free text")
    p.set_defaults(func=_create)

    p = ssub.add_parser("list", parents=[common], help="list sinks")
    p.add_argument("--kind", help="only sinks of this kind")
    p.set_defaults(func=_list)

    p = ssub.add_parser("show", parents=[common], help="show one sink with its counters")
    p.add_argument("name")
    p.set_defaults(func=_show)

    p = ssub.add_parser("delete", parents=[common], help="delete a sink (a memory table is dropped)")
    p.add_argument("name")
    p.add_argument("--allow-missing", action="store_true", help="succeed when the sink does not exist")
    p.set_defaults(func=_delete)

    p = ssub.add_parser("kinds", parents=[common], help="list the sink kinds the plugins provide")
    p.set_defaults(func=_kinds)

    table = sub.add_parser("table", help="read memory tables (Spark's memory sink)",
                           description="Read memory and dashboard sinks.")
    tsub = table.add_subparsers(dest="table_command", metavar="COMMAND", required=True)
    p = tsub.add_parser("show", parents=[common], help="print a memory table",
                        description="Print the rows of a memory table, optionally filtered and ordered.",
                        epilog="example: headwater table show TripsTumblingQuery --order-by 'window DESC' --limit 20")
    p.add_argument("name")
    p.add_argument("--filter", help="SQL condition, as a WHERE clause")
    p.add_argument("--order-by", help="SQL ordering, as an ORDER BY clause")
    p.add_argument("--limit", type=int, default=0, help="at most this many rows (default all)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table",
                   help="table (default), json (one object a line) or csv")
    p.set_defaults(func=_table_show)
