"""Operating a job: dead letters, lateness verdicts, replay-diff before a cut-over.

``headwater job dead-letters NAME`` and ``job replay-dead-letters NAME`` read the job's
dead-letter hub; ``job verdicts NAME --input ALIAS`` lists ListEventVerdicts;
``job diff NAME --query NEW --from T --to T`` runs the job's query and a new one over the
same recorded range of its inputs (TestQuery, no outputs written) and prints the rows
that differ per output (exit 1 when they do).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from google.protobuf import duration_pb2

from headwater.cli.common import Client, add_connection_options, print_result
from headwater.errors import HeadwaterError, Reason
from headwater.v1 import processing_pb2 as pb

__all__ = ["add_ops_commands", "partition_events", "read_range", "diff_outputs", "sample_lines", "ARRIVAL"]

#: The harness-only field carrying each event's enqueued time (TestQuery's arrival_time_field).
ARRIVAL = "__headwater_enqueued_time"


def _time(text: str, flag: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{flag} {text!r}: use an ISO-8601 time such as "
                             "2026-12-05T08:00:00Z") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _clients(args: argparse.Namespace) -> tuple[Client, Client]:
    """The processing service's client and the ingestion service's."""
    from headwater.v1 import ingestion_pb2_grpc
    from headwater.v1 import processing_pb2_grpc as pb_grpc

    ingestion = Client(argparse.Namespace(connection_string=args.ingestion_connection_string,
                                          address=args.ingestion_address),
                       "ingestion", ingestion_pb2_grpc.IngestionServiceStub)
    return Client(args, "processing", pb_grpc.ProcessingServiceStub), ingestion


def _job(client: Client, name: str) -> pb.Job:
    job: pb.Job = client.GetJob(pb.GetJobRequest(name=name if "/" in name else f"jobs/{name}")).job
    return job


def partition_events(ingestion: Client, hub: str, position: Callable[[Any], Any], *, batch: int = 5000,
                     until: Callable[[Any], bool] | None = None) -> Iterator[tuple[str, Any]]:
    """(partition id, ReceivedEvent) of every non-empty partition of ``hub``, from
    ``position(partition properties)`` up to the partition's last event at the call, or
    to the first event for which ``until(event)`` holds."""
    import grpc

    from headwater.v1 import ingestion_pb2 as ipb

    hub = hub if hub.startswith("hubs/") else f"hubs/{hub}"
    info = ingestion.GetHub(ipb.GetHubRequest(name=hub)).hub
    for pid in info.partition_ids:
        props = ingestion.GetPartitionProperties(ipb.GetPartitionPropertiesRequest(
            name=f"{hub}/partitions/{pid}")).partition
        if props.is_empty:
            continue
        last = props.last_enqueued_sequence_number
        call = ingestion.stub.ReadEvents(ipb.ReadEventsRequest(
            hub=hub, partition_id=pid, event_position=position(props), max_batch_size=batch,
            max_wait=duration_pb2.Duration(nanos=500_000_000)), timeout=120)
        try:
            for resp in call:
                ended = not resp.events
                for e in resp.events:
                    if e.sequence_number > last or (until is not None and until(e)):
                        ended = True
                        break
                    yield pid, e
                    ended = e.sequence_number >= last
                if ended:
                    break
        except grpc.RpcError as exc:
            raise HeadwaterError.from_rpc_error(exc) from None
        finally:
            call.cancel()


def read_range(ingestion: Client, hub: str, start: datetime | None, end: datetime | None,
               limit: int = 1_000_000) -> list[dict[str, Any]]:
    """The hub's events enqueued in ``[start, end)`` (None: from the earliest / to the
    newest), every partition, with properties: ``{partition, sequence_number, enqueued,
    body, properties, content_type}`` sorted by enqueued time."""
    from headwater.v1 import event_pb2

    def position(_props: Any) -> Any:
        if start is None:
            return event_pb2.EventPosition(earliest=True)
        pos = event_pb2.EventPosition(inclusive=True)
        pos.enqueued_time.FromDatetime(start.astimezone(UTC).replace(tzinfo=None))
        return pos

    out: list[dict[str, Any]] = []
    for pid, e in partition_events(ingestion, hub, position, until=None if end is None else
                                   lambda e: e.enqueued_time.ToDatetime(tzinfo=UTC) >= end):
        out.append({"partition": pid, "sequence_number": e.sequence_number,
                    "enqueued": e.enqueued_time.ToDatetime(tzinfo=UTC), "body": e.event.body,
                    "properties": dict(e.event.properties), "content_type": e.event.content_type})
        if len(out) > limit:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"more than {limit} events in the range of "
                                 f"{hub}: narrow --from/--to")
    out.sort(key=lambda e: (e["enqueued"], e["partition"], e["sequence_number"]))
    return out


# -- dead letters -------------------------------------------------------------------------------
def _dead_letters(args: argparse.Namespace, job: pb.Job, ingestion: Client) -> list[dict[str, Any]]:
    if not job.dead_letter_hub:
        raise HeadwaterError(Reason.PRECONDITION_FAILED, f"job {job.name!r} has no dead-letter hub: create or "
                             "update it with --dead-letter-hub HUB")
    since = _time(args.since, "--since") if args.since else None
    return [e for e in read_range(ingestion, job.dead_letter_hub, since, None)
            if e["properties"].get("headwater-dl-job") == job.name]


#: The provenance in the order `job dead-letters` prints it (where from, then why).
_DL_ORDER = ("kind", "input", "hub", "partition", "sequence-number", "enqueued-time", "output", "sink", "reason",
             "message")


def _show_dead(args: argparse.Namespace) -> int:
    client, ingestion = _clients(args)
    job = _job(client, args.name)
    rows = []
    for e in _dead_letters(args, job, ingestion):
        p = e["properties"]
        props = {k.removeprefix("headwater-dl-"): v for k, v in p.items()
                 if k.startswith("headwater-dl-") and k != "headwater-dl-job" and v}
        ordered = {k: props.pop(k) for k in _DL_ORDER if k in props}
        rows.append({"dead_lettered": _iso(e["enqueued"]), **ordered, **dict(sorted(props.items())),
                     "body": e["body"].decode("utf-8", "replace")})
    if args.json:
        print(json.dumps(rows, default=str))
    elif not rows:
        print(f"no dead letters of {job.name} in {job.dead_letter_hub}")
    else:
        print_result(rows, False)
    return 0


def _replay_dead(args: argparse.Namespace) -> int:
    """Input events go back to their hub and partition (the job reads them again); output
    rows are written to their sink again (at least once)."""
    from headwater.v1 import event_pb2, sink_pb2, sink_pb2_grpc
    from headwater.v1 import ingestion_pb2 as ipb

    client, ingestion = _clients(args)
    job = _job(client, args.name)
    events = _dead_letters(args, job, ingestion)
    by_target: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for e in events:
        p = e["properties"]
        if p.get("headwater-dl-kind") == "output":
            by_target.setdefault(("sink", p.get("headwater-dl-sink", ""), ""), []).append(e)
        else:
            by_target.setdefault(("hub", p.get("headwater-dl-hub", ""), p.get("headwater-dl-partition", "")),
                                 []).append(e)
    sinks: Client | None = None
    counts: Counter[str] = Counter()
    for (kind, target, pid), items in by_target.items():
        if kind == "hub":
            for i in range(0, len(items), 500):
                ingestion.PublishEvents(ipb.PublishEventsRequest(
                    hub=target, partition_id=pid,
                    events=[event_pb2.EventData(body=e["body"], content_type=e["content_type"]) for e in
                            items[i:i + 500]]))
        else:
            if sinks is None:
                sinks = Client(argparse.Namespace(connection_string=args.sink_connection_string,
                                                  address=args.sink_address), "sink", sink_pb2_grpc.SinkServiceStub)
            data = b"\n".join(e["body"] for e in items)
            sinks.WriteRows(sink_pb2.WriteRowsRequest(
                sink=target, writer=f"{job.name}/dead-letter-replay", checkpoint_id=0, commit=True,
                batch=event_pb2.RecordBatch(format=event_pb2.RECORD_BATCH_FORMAT_JSON_LINES, data=data,
                                            row_count=len(items))))
        counts[f"{kind} {target}" + (f" partition {pid}" if pid else "")] += len(items)
    if args.json:
        print(json.dumps({"replayed": sum(counts.values()), "to": dict(counts)}))
    else:
        print(f"replayed {sum(counts.values())} dead letters of {job.name}")
        for where, n in counts.items():
            print(f"  {n} to {where}")
    return 0


# -- verdicts -------------------------------------------------------------------------------------
_KIND = {pb.EVENT_VERDICT_KIND_ON_TIME: "on_time", pb.EVENT_VERDICT_KIND_ADJUSTED: "adjusted",
         pb.EVENT_VERDICT_KIND_DROPPED: "dropped"}


def _verdicts(args: argparse.Namespace) -> int:
    from headwater.v1 import processing_pb2_grpc as pb_grpc

    client = Client(args, "processing", pb_grpc.ProcessingServiceStub)
    req = pb.ListEventVerdictsRequest(name=args.name if "/" in args.name else f"jobs/{args.name}",
                                      input=args.input, page_size=1000)
    if args.start:
        req.from_time.FromDatetime(_time(args.start, "--from").astimezone(UTC).replace(tzinfo=None))
    if args.end:
        req.to_time.FromDatetime(_time(args.end, "--to").astimezone(UTC).replace(tzinfo=None))
    rows, retained = [], 0
    while True:
        resp = client.ListEventVerdicts(req)
        retained = resp.retained
        for v in resp.verdicts:
            row = {"partition": v.partition_id, "sequence_number": v.sequence_number,
                   "enqueued": _iso(v.enqueued_time.ToDatetime(tzinfo=UTC)),
                   "event_time": _iso(v.event_time.ToDatetime(tzinfo=UTC)), "verdict": _KIND[v.verdict]}
            if v.HasField("adjusted_time"):
                row["counted_at"] = _iso(v.adjusted_time.ToDatetime(tzinfo=UTC))
            if v.reason:
                row["reason"] = v.reason
            if v.windows:
                row["windows"] = " ".join(v.windows)
            rows.append(row)
        if not resp.next_page_token:
            break
        req.page_token = resp.next_page_token
    if args.json:
        print(json.dumps(rows))
    else:
        if not rows:
            print(f"no verdicts for input {args.input} in that range (the job keeps the last {retained} per input, "
                  "written at each checkpoint)")
        print_result(rows, False)
        tally = Counter(r["verdict"] for r in rows)
        if rows:
            print(", ".join(f"{n} {k}" for k, n in sorted(tally.items())))
    return 0


# -- diff -----------------------------------------------------------------------------------------
def sample_lines(events: Iterable[tuple[datetime, str, bytes]]) -> list[bytes]:
    """(enqueued time, partition, body) events as TestQuery JSON lines: the system columns
    a hub input has, and the arrival time in the harness field. Unreadable bodies are left
    out (the job drops them too)."""
    import orjson

    lines = []
    for when, pid, body in events:
        try:
            row = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        for one in row if isinstance(row, list) else [row]:
            if isinstance(one, dict):
                one.setdefault("PartitionId", int(pid) if pid.isdigit() else pid)
                one.setdefault("EventEnqueuedUtcTime", when.isoformat())
                one[ARRIVAL] = when.isoformat()
                lines.append(orjson.dumps(one))
    return lines


def _test_inputs(job: pb.Job, ingestion: Client, start: datetime,
                 end: datetime) -> tuple[list[pb.TestInput], dict[str, int]]:
    inputs: list[pb.TestInput] = []
    counts: dict[str, int] = {}
    for inp in job.inputs:
        if inp.reference_query or inp.path_pattern:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"job diff: input {inp.alias!r} reads "
                                 f"{'PostgreSQL' if inp.reference_query else 'files'}, which the replay does not "
                                 "(use `headwater query test` with sample files)")
        if inp.kind == pb.INPUT_KIND_REFERENCE:
            inputs.append(pb.TestInput(alias=inp.alias, data=inp.reference_data, format=inp.format or "json",
                                       reference=True))
            continue
        if (inp.format or "json").lower() != "json":
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"job diff: input {inp.alias!r} is {inp.format}; the "
                                 "replay reads JSON inputs")
        lines = sample_lines((e["enqueued"], e["partition"], e["body"])
                             for e in read_range(ingestion, inp.hub, start, end))
        counts[inp.alias] = len(lines)
        inputs.append(pb.TestInput(alias=inp.alias, data=b"\n".join(lines), format="json"))
    return inputs, counts


def _rows(resp: pb.TestQueryResponse) -> dict[str, list[dict[str, Any]]]:
    return {o.alias.lower(): [json.loads(x) for x in o.rows.data.splitlines() if x.strip()] for o in resp.outputs}


def _same_number(v: object) -> object:
    """Numbers compare by value: 12 and 12.0 (a column now a float) are the same."""
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _canon(row: dict[str, Any]) -> str:
    return json.dumps({k: _same_number(v) for k, v in row.items()}, sort_keys=True, default=str)


def diff_outputs(before: dict[str, list[dict[str, Any]]],
                 after: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Per output: rows only in ``after`` (added), only in ``before`` (removed), and rows
    whose key (the text and time columns both sides share; numbers are the values) is in
    both with other values (changed: the columns that differ)."""
    out = {}
    for alias in sorted(set(before) | set(after)):
        b, a = before.get(alias, []), after.get(alias, [])
        cb, ca = Counter(map(_canon, b)), Counter(map(_canon, a))
        only_b = [json.loads(k) for k, n in (cb - ca).items() for _ in range(n)]
        only_a = [json.loads(k) for k, n in (ca - cb).items() for _ in range(n)]
        cols = set().union(*(r.keys() for r in b + a)) if b or a else set()
        keys = sorted(c for c in cols if all(not isinstance(r.get(c), (int, float)) or isinstance(r.get(c), bool)
                                             for r in b + a))

        def key(r: dict[str, Any], keys: list[str] = keys) -> str:
            return _canon({k: r.get(k) for k in keys})

        removed_by_key: dict[str, list[dict[str, Any]]] = {}
        for r in only_b:
            removed_by_key.setdefault(key(r), []).append(r)
        changed, added = [], []
        for r in only_a:
            olds = removed_by_key.get(key(r))
            if keys and olds:
                old = olds.pop(0)
                changed.append({"key": {k: r.get(k) for k in keys},
                                "columns": {c: [old.get(c), r.get(c)] for c in sorted(set(old) | set(r))
                                            if _same_number(old.get(c)) != _same_number(r.get(c))}})
            else:
                added.append(r)
        removed = [r for rs in removed_by_key.values() for r in rs]
        out[alias] = {"rows_before": len(b), "rows_after": len(a), "added": added, "removed": removed,
                      "changed": changed}
    return out


def _diff(args: argparse.Namespace) -> int:
    from headwater.cli.job import _query_text

    client, ingestion = _clients(args)
    job = _job(client, args.name)
    start, end = _time(args.start, "--from"), _time(args.end, "--to")
    if end <= start:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--to {args.end} is not after --from {args.start}")
    new_query = _query_text(args.query)
    inputs, counts = _test_inputs(job, ingestion, start, end)
    results = []
    for query in (job.query, new_query):
        req = pb.TestQueryRequest(query=query, inputs=inputs, event_ordering=job.event_ordering,
                                  arrival_time_field=ARRIVAL)
        results.append(_rows(client.TestQuery(req, timeout=300)))
    diff = diff_outputs(*results)
    differs = any(d["added"] or d["removed"] or d["changed"] for d in diff.values())
    if args.json:
        print(json.dumps({"range": [_iso(start), _iso(end)], "events": counts, "differs": differs,
                          "outputs": diff}, default=str))
    else:
        print(f"replayed {_iso(start)} .. {_iso(end)}: " + ", ".join(f"{a} {n} events" for a, n in counts.items()))
        for alias, d in diff.items():
            print(f"output {alias}: {d['rows_before']} rows now, {d['rows_after']} with the new query: "
                  f"{len(d['added'])} added, {len(d['removed'])} removed, {len(d['changed'])} changed")
            for r in d["removed"]:
                print("  - " + json.dumps(r, default=str))
            for r in d["added"]:
                print("  + " + json.dumps(r, default=str))
            for c in d["changed"]:
                cols = ", ".join(f"{k}: {v[0]} -> {v[1]}" for k, v in c["columns"].items())
                print(f"  ~ {json.dumps(c['key'], default=str)}: {cols}")
        print("the outputs differ" if differs else "no difference")
    return 1 if differs else 0


def _ingestion_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ingestion-address", help="ingestion host:port (default $HEADWATER_INGESTION_ADDRESS, else "
                   "endpoints.json, else localhost:50051)")
    p.add_argument("--ingestion-connection-string", help="connection string to the ingestion service")


def add_ops_commands(js: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_connection_options(js.add_parser(
        "dead-letters", help="events and rows the job sent to its dead-letter hub, with their provenance"),
        "processing")
    p.add_argument("name")
    p.add_argument("--since", metavar="TIME", help="only those dead-lettered at or after this ISO-8601 time")
    _ingestion_options(p)
    p.set_defaults(func=_show_dead)

    p = add_connection_options(js.add_parser(
        "replay-dead-letters", help="feed dead letters back: input events to their hub and partition, output "
        "rows to their sink"), "processing")
    p.add_argument("name")
    p.add_argument("--since", metavar="TIME", help="only those dead-lettered at or after this ISO-8601 time")
    _ingestion_options(p)
    p.add_argument("--sink-address", help="sink host:port for output rows")
    p.add_argument("--sink-connection-string", help="connection string to the sink service")
    p.set_defaults(func=_replay_dead)

    p = add_connection_options(js.add_parser(
        "verdicts", help="per recent event of an input: on time, adjusted or dropped, and the windows it counted in"),
        "processing")
    p.add_argument("name")
    p.add_argument("--input", required=True, metavar="ALIAS")
    p.add_argument("--from", dest="start", metavar="TIME", help="events enqueued at or after this time")
    p.add_argument("--to", dest="end", metavar="TIME", help="events enqueued before this time")
    p.set_defaults(func=_verdicts)

    p = add_connection_options(js.add_parser(
        "diff", help="run the job's query and a new one over a recorded range of its inputs; print the rows "
        "that differ (exit 1 when they do); nothing is written"), "processing")
    p.add_argument("name")
    p.add_argument("--query", required=True, help="file with the new query text")
    p.add_argument("--from", dest="start", required=True, metavar="TIME", help="range start (enqueued time)")
    p.add_argument("--to", dest="end", required=True, metavar="TIME", help="range end (exclusive)")
    _ingestion_options(p)
    p.set_defaults(func=_diff)
