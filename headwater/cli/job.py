"""``headwater job ...``: Stream Analytics jobs on the processing service.

    headwater job create NAME --query Q.asaql --input ALIAS=HUB[:json|avro|csv] \\
        [--input ALIAS=files:PATTERN] [--reference ALIAS=FILE] \\
        [--reference ALIAS=postgres:QUERY|postgres:@FILE --dsn DSN [--delta-query Q|@FILE]] \\
        [--reference ALIAS=files:PATTERN] [--refresh 5m] [--date-format F] [--time-format F] \\
        --output ALIAS=SINK [--late-arrival-tolerance S] \\
        [--out-of-order-tolerance S] [--out-of-order-action adjust|drop] \\
        [--output-error-policy retry|drop] [--udf NAME=FILE.js|NAME] [--checkpoint-interval S] \
        [--dead-letter-hub HUB] [--start]
    headwater job update NAME [--query Q.asaql] [--checkpoint-interval S] [--dead-letter-hub HUB] \
        [--start-from last|now|earliest|TIME]   (a stopped job; says whether its state is kept)
    headwater job diff NAME --query NEW.asaql --from TIME --to TIME   (exit 1 when outputs differ)
    headwater job dead-letters NAME [--since TIME] | replay-dead-letters NAME [--since TIME]
    headwater job verdicts NAME --input ALIAS [--from TIME --to TIME]
    headwater job test NAME --sample N [--query Q.asaql]   (TestQuery on the inputs' last N events)
    headwater job list | show NAME | start NAME [--from now|earliest|last|TIME] | stop NAME
    headwater job delete NAME | metrics NAME
    headwater job alert create NAME RULE --metric M --operator gt --threshold X \\
        [--aggregation maximum] [--window 5m] [--frequency 1m] [--webhook URL]
    headwater job alert list NAME | delete NAME RULE | fired NAME
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from google.protobuf import duration_pb2, json_format

from headwater.cli.common import Client, add_connection_options, print_result
from headwater.cli.job_ops import ARRIVAL, add_ops_commands, partition_events, sample_lines
from headwater.errors import HeadwaterError, Reason
from headwater.v1 import processing_pb2 as pb
from headwater.v1 import processing_pb2_grpc as pb_grpc

__all__ = ["add_commands"]


def _client(args: argparse.Namespace) -> Client:
    return Client(args, "processing", pb_grpc.ProcessingServiceStub)


def _name(name: str) -> str:
    return name if name.startswith("jobs/") else f"jobs/{name}"


def _pair(text: str, flag: str) -> tuple[str, str]:
    alias, sep, rest = text.partition("=")
    if not sep or not alias or not rest:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{flag} {text!r}: expected ALIAS=VALUE")
    return alias, rest


def _seconds(text: str) -> duration_pb2.Duration:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for suffix in sorted(units, key=len, reverse=True):
        if text.endswith(suffix):
            number, scale = text[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = text, 1
    try:
        value = float(number) * scale
    except ValueError:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{text!r} is not a duration (10s, 5m, 1h)") from None
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(value * 1e9))
    return d


def _row(job: pb.Job) -> dict[str, Any]:
    return {"name": job.name, "state": pb.JobState.Name(job.state).removeprefix("JOB_STATE_"),
            "inputs": ",".join(i.alias for i in job.inputs), "outputs": ",".join(o.alias for o in job.outputs),
            **({"error": job.error} if job.error else {})}


def _query_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"--query {path!r}: cannot read the query file ({exc.strerror}); "
                             "--query takes a file with the query text") from None


def _checkpoint_interval(text: str) -> duration_pb2.Duration:
    d = _seconds(text)
    if d.ToNanoseconds() <= 0:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--checkpoint-interval {text!r}: must be positive (1s, 500ms)")
    return d


def _files_pattern(value: str) -> str | None:
    """``files:PATTERN`` (a path with a folder in it) names files; else None (a hub)."""
    if value.startswith("files:") and "/" in value[6:]:
        return value[6:]
    return None


def _text_or_file(value: str, flag: str) -> str:
    if not value.startswith("@"):
        return value
    try:
        return Path(value[1:]).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{flag}: cannot read {value[1:]} ({exc.strerror})") from None


def _add_reference(job: pb.Job, alias: str, value: str, args: argparse.Namespace) -> None:
    """--reference ALIAS=FILE (rows carried in the job), ALIAS=postgres:QUERY, ALIAS=files:PATTERN."""
    inp = job.inputs.add(alias=alias, kind=pb.INPUT_KIND_REFERENCE)
    if args.refresh is not None:
        inp.refresh_interval.CopyFrom(_seconds(args.refresh))
    if value.startswith("postgres:"):
        if not args.dsn:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--reference {alias}=postgres:...: give --dsn "
                                 "(a PostgreSQL connection string, or secret:NAME)")
        inp.reference_query = _text_or_file(value[len("postgres:"):], "--reference")
        inp.dsn = args.dsn
        if args.delta_query:
            inp.reference_delta_query = _text_or_file(args.delta_query, "--delta-query")
        return
    if (pattern := _files_pattern(value)) is not None:
        inp.path_pattern = pattern
        inp.date_format, inp.time_format = args.date_format or "", args.time_format or ""
        return
    try:
        inp.reference_data = Path(value).read_bytes()
    except OSError as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--reference {alias}={value}: cannot read it "
                             f"({exc.strerror})") from None


def _create(args: argparse.Namespace) -> int:
    query = _query_text(args.query)
    job = pb.Job(name=_name(args.name), query=query)
    if args.checkpoint_interval is not None:
        job.checkpoint_interval.CopyFrom(_checkpoint_interval(args.checkpoint_interval))
    if args.dead_letter_hub:
        job.dead_letter_hub = args.dead_letter_hub if args.dead_letter_hub.startswith("hubs/") \
            else f"hubs/{args.dead_letter_hub}"
    for spec in args.udf:
        name, _, target = spec.partition("=")
        if target.lower().endswith(".js"):  # JavaScript travels as code in the job (job.functions)
            try:
                code = Path(target).read_text(encoding="utf-8-sig")
            except OSError as exc:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--udf {spec!r}: cannot read {target} "
                                     f"({exc.strerror})") from None
            job.functions.add(name=name, language="javascript", code=code)
        else:
            job.udfs.append(spec)
    for spec in args.input:
        alias, rest = _pair(spec, "--input")
        if (pattern := _files_pattern(rest)) is not None:
            job.inputs.add(alias=alias, kind=pb.INPUT_KIND_STREAM, path_pattern=pattern,
                           date_format=args.date_format or "", time_format=args.time_format or "")
            continue
        hub, _, fmt = rest.partition(":")
        job.inputs.add(alias=alias, kind=pb.INPUT_KIND_STREAM, hub=hub if hub.startswith("hubs/") else f"hubs/{hub}",
                       format=fmt or "json", consumer_group=args.consumer_group)
    for spec in args.reference:
        alias, path = _pair(spec, "--reference")
        _add_reference(job, alias, path, args)
    for spec in args.output:
        alias, sink = _pair(spec, "--output")
        job.outputs.add(alias=alias, sink=sink if sink.startswith("sinks/") else f"sinks/{sink}")
    eo = job.event_ordering
    if args.late_arrival_tolerance is not None:
        eo.late_arrival_tolerance.CopyFrom(_seconds(args.late_arrival_tolerance))
    if args.out_of_order_tolerance is not None:
        eo.out_of_order_tolerance.CopyFrom(_seconds(args.out_of_order_tolerance))
    eo.out_of_order_action = pb.OUT_OF_ORDER_ACTION_DROP if args.out_of_order_action == "drop" \
        else pb.OUT_OF_ORDER_ACTION_ADJUST
    job.output_error_policy = pb.OUTPUT_ERROR_POLICY_DROP if args.output_error_policy == "drop" \
        else pb.OUTPUT_ERROR_POLICY_RETRY
    client = _client(args)
    created = client.CreateJob(pb.CreateJobRequest(job=job)).job
    if args.start:
        created = client.StartJob(pb.StartJobRequest(name=created.name, start_mode=pb.JOB_START_MODE_NOW)).job
    print_result(_row(created), args.json)
    return 0


def _list(args: argparse.Namespace) -> int:
    client, token, rows = _client(args), "", []
    while True:
        resp = client.ListJobs(pb.ListJobsRequest(page_size=200, page_token=token))
        rows += [_row(j) for j in resp.jobs]
        token = resp.next_page_token
        if not token:
            break
    print_result(rows, args.json)
    return 0


def _show(args: argparse.Namespace) -> int:
    client = _client(args)
    job = client.GetJob(pb.GetJobRequest(name=_name(args.name))).job
    m = client.GetJobMetrics(pb.GetJobMetricsRequest(name=job.name)).metrics
    warnings = _warnings(job, m)
    if args.json:
        print_result({**json_format.MessageToDict(job), "warnings": warnings}, True)
        return 0
    row = {**_row(job), **({"dead_letter_hub": job.dead_letter_hub} if job.dead_letter_hub else {}),
           "query": "\n" + job.query}
    print_result(row, False)
    for w in warnings:
        print(f"warning: {w}")
    return 0


def _warnings(job: pb.Job, m: pb.JobMetrics) -> list[str]:
    """What an operator should look at: starved input partitions (with the hint)."""
    out = []
    starved = [p for p in m.partitions if p.starved]
    if starved:
        groups = {i.alias.lower(): i.consumer_group or "$Default" for i in job.inputs}
        for alias in sorted({p.input for p in starved}):
            parts = [p for p in starved if p.input == alias]
            out.append(f"input {alias} is starved: partition(s) {', '.join(p.partition_id for p in parts)} hold "
                       f"{sum(p.backlog_events for p in parts)} events the job has not advanced through; another "
                       f"reader on consumer group {groups.get(alias.lower(), '$Default')} may hold them. Give each "
                       "job its own consumer group: headwater consumer-group create HUB GROUP, then stop the job and "
                       f"headwater job update {job.name.removeprefix('jobs/')} --consumer-group GROUP --start-from "
                       "last (it resumes from its own positions); `headwater consumer-group owners` shows the processors that claim partitions")
    return out


def _update(args: argparse.Namespace) -> int:
    """UpdateJob: the stopped job with a new query and/or checkpoint interval."""
    client = _client(args)
    job = client.GetJob(pb.GetJobRequest(name=_name(args.name))).job
    if args.query is None and args.checkpoint_interval is None and args.dead_letter_hub is None \
            and not args.consumer_group:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, "job update: nothing to change; give --query FILE, "
                             "--checkpoint-interval DURATION, --dead-letter-hub HUB and/or --consumer-group GROUP")
    if args.query is not None:
        job.query = _query_text(args.query)
    if args.checkpoint_interval is not None:
        job.checkpoint_interval.CopyFrom(_checkpoint_interval(args.checkpoint_interval))
    if args.dead_letter_hub is not None:
        job.dead_letter_hub = args.dead_letter_hub if args.dead_letter_hub.startswith("hubs/") or \
            not args.dead_letter_hub else f"hubs/{args.dead_letter_hub}"
    for spec in args.consumer_group or ():
        _set_consumer_group(job, spec)
    resp = client.UpdateJob(pb.UpdateJobRequest(job=job))
    job = resp.job
    row = _row(job)
    if job.HasField("checkpoint_interval"):
        row["checkpoint_interval"] = f"{job.checkpoint_interval.ToNanoseconds() / 1e9:g}s"
    row["state_kept"] = resp.state_kept
    row["state_note"] = resp.state_note
    if args.start_from:
        started = client.StartJob(_start_request(job.name, args.start_from)).job
        row["state"] = pb.JobState.Name(started.state).removeprefix("JOB_STATE_")
        row["started_from"] = args.start_from
    print_result(row, args.json)
    return 0


def _set_consumer_group(job: pb.Job, spec: str) -> None:
    """``GROUP`` for every hub input, ``ALIAS=GROUP`` for one. The job keeps its own input
    positions (its checkpoint), so the new group's reader resumes where the job stopped."""
    alias, sep, group = spec.rpartition("=")
    hubs = [i for i in job.inputs if i.kind != pb.INPUT_KIND_REFERENCE and i.hub]
    chosen = [i for i in hubs if not sep or i.alias.lower() == alias.lower()]
    if not group or not chosen:
        known = ", ".join(i.alias for i in hubs) or "none"
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--consumer-group {spec!r}: give GROUP or ALIAS=GROUP "
                             f"naming a hub input of {job.name} (hub inputs: {known})")
    for inp in chosen:
        inp.consumer_group = group


def _last_events(client: Client, hub: str, n: int) -> list[tuple[datetime, str, bytes]]:
    """The hub's last ``n`` events over every partition (by enqueued time): (time, partition, body)."""
    from headwater.v1 import event_pb2

    def position(props: Any) -> Any:
        start = max(props.beginning_sequence_number, props.last_enqueued_sequence_number - n + 1)
        return event_pb2.EventPosition(sequence_number=start, inclusive=True)

    got = [(e.enqueued_time.ToDatetime(tzinfo=UTC), pid, e.sequence_number, e.event.body)
           for pid, e in partition_events(client, hub, position, batch=min(max(n, 1), 10_000))]
    got.sort(key=lambda g: (g[0], g[1], g[2]))
    return [(t, pid, body) for t, pid, _, body in got[-n:]]


def _test(args: argparse.Namespace) -> int:
    """TestQuery over the last N events of each of the job's stream inputs (and its reference data)."""
    import json

    from headwater.cli.common import Client
    from headwater.v1 import ingestion_pb2_grpc

    if args.sample < 1:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--sample {args.sample}: must be at least 1")
    client = _client(args)
    job = client.GetJob(pb.GetJobRequest(name=_name(args.name))).job
    ingestion = Client(argparse.Namespace(connection_string=args.ingestion_connection_string,
                                          address=args.ingestion_address),
                       "ingestion", ingestion_pb2_grpc.IngestionServiceStub)
    req = pb.TestQueryRequest(query=_query_text(args.query) if args.query else job.query,
                              event_ordering=job.event_ordering, arrival_time_field=_ARRIVAL)
    counts = {}
    for inp in job.inputs:
        if inp.reference_query or inp.path_pattern:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"job test --sample: input {inp.alias!r} reads "
                                 f"{'PostgreSQL' if inp.reference_query else 'files'}, which sampling does not "
                                 "(use `headwater query test` with sample files)")
        if inp.kind == pb.INPUT_KIND_REFERENCE:
            req.inputs.add(alias=inp.alias, data=inp.reference_data, format=inp.format or "json", reference=True)
            continue
        if (inp.format or "json").lower() != "json":
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"job test --sample: input {inp.alias!r} is "
                                 f"{inp.format}; sampling reads JSON inputs (use `headwater query test` with files)")
        # A poison event is left out: the live job drops it too (input_deserialization_errors).
        lines = sample_lines(_last_events(ingestion, inp.hub, args.sample))
        counts[inp.alias] = len(lines)
        req.inputs.add(alias=inp.alias, data=b"\n".join(lines), format="json")
    resp = client.TestQuery(req, timeout=120)
    result: dict[str, Any] = {"sample": counts,
              "outputs": {o.alias: [json.loads(x) for x in o.rows.data.splitlines() if x.strip()]
                          for o in resp.outputs}}
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print("sample: " + ", ".join(f"{a} {n} events" for a, n in counts.items()))
        for alias, rows in result["outputs"].items():
            print(f"output {alias}: {len(rows)} rows")
            for row in rows:
                print("  " + json.dumps(row, default=str))
    return 0


#: The harness-only field carrying each sampled event's enqueued time (TestQuery's arrival_time_field).
_ARRIVAL = ARRIVAL


_MODES = {"now": pb.JOB_START_MODE_NOW, "earliest": pb.JOB_START_MODE_EARLIEST,
          "last": pb.JOB_START_MODE_WHEN_LAST_STOPPED}


def _start(args: argparse.Namespace) -> int:
    print_result(_row(_client(args).StartJob(_start_request(_name(args.name), args.start_from)).job), args.json)
    return 0


def _start_request(name: str, start_from: str) -> pb.StartJobRequest:
    req = pb.StartJobRequest(name=name)
    if start_from in _MODES:
        req.start_mode = _MODES[start_from]
    else:
        try:
            when = datetime.fromisoformat(start_from.replace("Z", "+00:00"))
        except ValueError:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"--from {start_from!r}: use now, earliest, last or an ISO-8601 time") from None
        req.start_mode = pb.JOB_START_MODE_CUSTOM_TIME
        req.start_time.FromDatetime((when if when.tzinfo else when.replace(tzinfo=UTC))
                                    .astimezone(UTC).replace(tzinfo=None))
    return req


def _stop(args: argparse.Namespace) -> int:
    print_result(_row(_client(args).StopJob(pb.StopJobRequest(name=_name(args.name))).job), args.json)
    return 0


def _delete(args: argparse.Namespace) -> int:
    _client(args).DeleteJob(pb.DeleteJobRequest(name=_name(args.name)))
    print(f"deleted {_name(args.name)}")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    m = _client(args).GetJobMetrics(pb.GetJobMetricsRequest(name=_name(args.name))).metrics
    print_result(json_format.MessageToDict(m, always_print_fields_with_no_presence=True), args.json)
    return 0


_OPS = {"gt": pb.ALERT_OPERATOR_GREATER_THAN, "ge": pb.ALERT_OPERATOR_GREATER_THAN_OR_EQUAL,
        "lt": pb.ALERT_OPERATOR_LESS_THAN, "le": pb.ALERT_OPERATOR_LESS_THAN_OR_EQUAL}
_AGGS = {"maximum": pb.ALERT_AGGREGATION_MAXIMUM, "minimum": pb.ALERT_AGGREGATION_MINIMUM,
         "average": pb.ALERT_AGGREGATION_AVERAGE, "total": pb.ALERT_AGGREGATION_TOTAL}


def _alert_create(args: argparse.Namespace) -> int:
    parent = _name(args.name)
    rule = pb.AlertRule(name=f"{parent}/alertRules/{args.rule}", metric=args.metric, operator=_OPS[args.operator],
                        aggregation=_AGGS[args.aggregation], threshold=args.threshold,
                        window=_seconds(args.window), frequency=_seconds(args.frequency), webhook_urls=args.webhook)
    rule = _client(args).CreateAlertRule(pb.CreateAlertRuleRequest(parent=parent, rule=rule)).rule
    print_result(json_format.MessageToDict(rule), args.json)
    return 0


def _alert_list(args: argparse.Namespace) -> int:
    rules = _client(args).ListAlertRules(pb.ListAlertRulesRequest(parent=_name(args.name), page_size=1000)).rules
    print_result([json_format.MessageToDict(r) for r in rules], args.json)
    return 0


def _alert_delete(args: argparse.Namespace) -> int:
    _client(args).DeleteAlertRule(pb.DeleteAlertRuleRequest(name=f"{_name(args.name)}/alertRules/{args.rule}"))
    print("deleted")
    return 0


def _alert_fired(args: argparse.Namespace) -> int:
    alerts = _client(args).ListAlerts(pb.ListAlertsRequest(parent=_name(args.name), page_size=100)).alerts
    print_result([{"rule": a.rule, "time": a.fire_time.ToJsonString(), "value": a.value,
                   "description": a.description} for a in alerts], args.json)
    return 0


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    job = sub.add_parser("job", help="Stream Analytics jobs: create, start, stop, metrics, alerts",
                         description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    js = job.add_subparsers(dest="job_command", metavar="COMMAND", required=True)

    p = add_connection_options(js.add_parser("create", help="create a job (stopped unless --start)"), "processing")
    p.add_argument("name")
    p.add_argument("--query", required=True, help="file with the query text")
    p.add_argument("--input", action="append", default=[], metavar="ALIAS=HUB[:FORMAT]|files:PATTERN",
                   help="a hub, or files on the service named by a path pattern ({date} {time} {PartitionId} * **)")
    p.add_argument("--reference", action="append", default=[],
                   metavar="ALIAS=FILE|postgres:QUERY|postgres:@FILE|files:PATTERN",
                   help="reference data: a JSON file carried in the job, a PostgreSQL snapshot query (--dsn), "
                        "or files named by a {date}/{time} pattern on the service")
    p.add_argument("--dsn", help="PostgreSQL connection of postgres: references (or secret:NAME)")
    p.add_argument("--delta-query", metavar="QUERY|@FILE",
                   help="delta query of postgres: references (@deltaStartTime, @deltaEndTime; _operation 1/-1)")
    p.add_argument("--refresh", metavar="DURATION", help="refresh interval of postgres:/files: references (5m)")
    p.add_argument("--date-format", metavar="F", help="{date} in path patterns: YYYY/MM/DD (default), YYYY-MM-DD, ...")
    p.add_argument("--time-format", metavar="F", help="{time} in path patterns: HH (default), HH-mm, HH_mm, HH/mm")
    p.add_argument("--output", action="append", default=[], metavar="ALIAS=SINK")
    p.add_argument("--consumer-group", default="$Default")
    p.add_argument("--late-arrival-tolerance", metavar="DURATION", help="default 5s")
    p.add_argument("--out-of-order-tolerance", metavar="DURATION", help="default 0s")
    p.add_argument("--out-of-order-action", choices=("adjust", "drop"), default="adjust")
    p.add_argument("--output-error-policy", choices=("retry", "drop"), default="retry")
    p.add_argument("--udf", action="append", default=[], metavar="NAME=FILE.js|NAME",
                   help="a JavaScript UDF/UDA file carried in the job (UDF.NAME / UDA.NAME), or the name of a "
                        "UDF the operator registered (processing config 'udfs' or a plugin)")
    p.add_argument("--checkpoint-interval", metavar="DURATION",
                   help="time between state checkpoints (epochs): 1s, 500ms (default: the service's)")
    p.add_argument("--dead-letter-hub", metavar="HUB",
                   help="hub receiving events that cannot be read and rows a sink refuses under --output-error-policy "
                        "drop, with their provenance (see job dead-letters)")
    p.add_argument("--start", action="store_true", help="start it now")
    p.set_defaults(func=_create)

    p = add_connection_options(js.add_parser("update", help="change a stopped job's query, checkpoint interval, dead-letter hub or consumer group"),
                               "processing")
    p.add_argument("name")
    p.add_argument("--query", help="file with the new query text")
    p.add_argument("--checkpoint-interval", metavar="DURATION", help="time between state checkpoints")
    p.add_argument("--dead-letter-hub", metavar="HUB", help="the job's dead-letter hub ('' for none)")
    p.add_argument("--consumer-group", metavar="[ALIAS=]GROUP", action="append",
                   help="read the hub inputs (or the input ALIAS) on this consumer group from now on; the job "
                        "resumes from its own positions (a starved job's fix)")
    p.add_argument("--start-from", metavar="MODE",
                   help="start the job after the update: last (from its checkpoint, keeping the state when the new "
                        "query's plan is compatible, and saying so), now, earliest or an ISO-8601 time")
    p.set_defaults(func=_update)

    p = add_connection_options(js.add_parser(
        "test", help="run the job's query (or --query) over the last N events of its inputs (TestQuery)"),
        "processing")
    p.add_argument("name")
    p.add_argument("--sample", type=int, required=True, metavar="N", help="events per input (the newest N)")
    p.add_argument("--query", help="test this query file instead of the job's (before `job update`)")
    p.add_argument("--ingestion-address", help="ingestion host:port the inputs are read from "
                   "(default $HEADWATER_INGESTION_ADDRESS, else endpoints.json, else localhost:50051)")
    p.add_argument("--ingestion-connection-string", help="connection string to the ingestion service")
    p.set_defaults(func=_test)

    for name, fn, helptext in (("list", _list, "list jobs"), ("show", _show, "show a job and its query"),
                               ("stop", _stop, "stop after a final checkpoint"), ("delete", _delete, "delete a job"),
                               ("metrics", _metrics, "input/output/late/error counters, watermark delay, SU %%")):
        p = add_connection_options(js.add_parser(name, help=helptext), "processing")
        if name != "list":
            p.add_argument("name")
        p.set_defaults(func=fn)
    p = add_connection_options(js.add_parser("start", help="start a job"), "processing")
    p.add_argument("name")
    p.add_argument("--from", dest="start_from", default="now",
                   help="now (default), earliest, last (when last stopped) or an ISO-8601 time")
    p.set_defaults(func=_start)

    add_ops_commands(js)

    alert = js.add_parser("alert", help="alert rules on job metrics")
    als = alert.add_subparsers(dest="alert_command", metavar="COMMAND", required=True)
    p = add_connection_options(als.add_parser("create", help="create an alert rule"), "processing")
    p.add_argument("name")
    p.add_argument("rule")
    p.add_argument("--metric", required=True, help="a job metric, e.g. su_utilization_percent")
    p.add_argument("--operator", choices=tuple(_OPS), required=True)
    p.add_argument("--threshold", type=float, required=True)
    p.add_argument("--aggregation", choices=tuple(_AGGS), default="maximum")
    p.add_argument("--window", default="5m")
    p.add_argument("--frequency", default="1m")
    p.add_argument("--webhook", action="append", default=[], help="URL POSTed when it fires")
    p.set_defaults(func=_alert_create)
    for name, fn in (("list", _alert_list), ("fired", _alert_fired)):
        p = add_connection_options(als.add_parser(name, help=f"{name} alert rules" if name == "list"
                                                  else "alerts fired, newest first"), "processing")
        p.add_argument("name")
        p.set_defaults(func=fn)
    p = add_connection_options(als.add_parser("delete", help="delete an alert rule"), "processing")
    p.add_argument("name")
    p.add_argument("rule")
    p.set_defaults(func=_alert_delete)
