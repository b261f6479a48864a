"""``headwater hub|consumer-group|send|read|faults``: the ingestion service from a shell.

Every command talks to the ingestion service named by ``--connection-string``
(or ``$HEADWATER_CONNECTION_STRING``); without one, it signs with the local
root policy in ``$HEADWATER_HOME/auth.json`` for ``--address`` (default
``localhost:50051``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from headwater.auth import ConnectionString
from headwater.cli.common import Client, connection
from headwater.errors import HeadwaterError, Reason
from headwater.v1 import errors_pb2, event_pb2, ingestion_pb2, ingestion_pb2_grpc

__all__ = ["add_commands", "parse_duration", "parse_position"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``7d``, ``12h``, ``30m``, ``45s`` or plain seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"duration {text!r} is not like 7d, 12h, 30m or 45s")
    return float(m.group(1)) * _UNITS.get(m.group(2) or "s", 1)


def parse_position(text: str) -> event_pb2.EventPosition:
    """earliest | latest | offset:N | seq:N | time:ISO (inclusive for offset and seq)."""
    if text == "earliest":
        return event_pb2.EventPosition(earliest=True)
    if text == "latest":
        return event_pb2.EventPosition(latest=True)
    kind, _, value = text.partition(":")
    try:
        if kind == "offset":
            return event_pb2.EventPosition(offset=int(value), inclusive=True)
        if kind == "seq":
            return event_pb2.EventPosition(sequence_number=int(value), inclusive=True)
        if kind == "time":
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
            pos = event_pb2.EventPosition()
            pos.enqueued_time.FromDatetime(when)
            return pos
    except ValueError:
        pass
    raise HeadwaterError(Reason.INVALID_ARGUMENT,
                         f"--from {text!r}: use earliest, latest, offset:N, seq:N or time:ISO-8601")


def _conn(args: argparse.Namespace) -> ConnectionString:
    return connection(args, "ingestion")


def _Client(args: argparse.Namespace) -> Client:  # noqa: N802 - reads as the client it returns
    return Client(args, "ingestion", ingestion_pb2_grpc.IngestionServiceStub)


def _hub_row(hub: ingestion_pb2.Hub) -> dict[str, Any]:
    return {"name": hub.name.removeprefix("hubs/"), "partitions": hub.partition_count,
            "retention": f"{hub.message_retention.seconds / 86400:g}d",
            "throughput_units": hub.throughput.units, "capture": hub.capture.enabled,
            "created": hub.create_time.ToDatetime(tzinfo=dt.UTC).isoformat()}


def _print(obj: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(obj))
    elif isinstance(obj, list):
        for row in obj:
            print("  ".join(f"{k}={v}" for k, v in row.items()))
    else:
        for k, v in obj.items():
            print(f"{k}: {v}")


# -- hub -------------------------------------------------------------------------------


def _hub_create(args: argparse.Namespace) -> int:
    retention = duration_pb2.Duration()
    retention.FromNanoseconds(int(parse_duration(args.retention) * 1e9))
    hub = ingestion_pb2.Hub(partition_count=args.partitions, message_retention=retention,
                            throughput=ingestion_pb2.ThroughputSettings(
                                units=args.throughput_units, auto_inflate=args.auto_inflate,
                                maximum_units=args.max_units or args.throughput_units),
                            capture=ingestion_pb2.CaptureDescription(enabled=args.capture))
    resp = _Client(args).CreateHub(ingestion_pb2.CreateHubRequest(hub_id=args.name, hub=hub))
    _print(_hub_row(resp.hub), args.json)
    return 0


def _hub_list(args: argparse.Namespace) -> int:
    client, rows, token = _Client(args), [], ""
    while True:
        resp = client.ListHubs(ingestion_pb2.ListHubsRequest(page_token=token))
        rows += [_hub_row(h) for h in resp.hubs]
        token = resp.next_page_token
        if not token:
            break
    if args.json:
        _print(rows, True)
    elif not rows:
        print("no hubs")
    else:
        _print(rows, False)
    return 0


def _hub_show(args: argparse.Namespace) -> int:
    client = _Client(args)
    hub = client.GetHub(ingestion_pb2.GetHubRequest(name=f"hubs/{args.name}")).hub
    row = _hub_row(hub)
    parts = []
    for pid in hub.partition_ids:
        p = client.GetPartitionProperties(ingestion_pb2.GetPartitionPropertiesRequest(
            name=f"hubs/{args.name}/partitions/{pid}")).partition
        parts.append({"partition": pid, "beginning_sequence_number": p.beginning_sequence_number,
                      "last_sequence_number": p.last_enqueued_sequence_number,
                      "last_offset": p.last_enqueued_offset, "is_empty": p.is_empty,
                      "last_enqueued_time": p.last_enqueued_time.ToDatetime(tzinfo=dt.UTC).isoformat()
                      if p.HasField("last_enqueued_time") else None})
    if args.json:
        print(json.dumps({**row, "partition_properties": parts}))
    else:
        _print(row, False)
        _print(parts, False)
    return 0


def _seconds_pb(text: str) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(parse_duration(text) * 1e9))
    return d


def _hub_update(args: argparse.Namespace) -> int:
    """Change partitions (up), retention, throughput or capture: the flags given, over the hub's current values."""
    client = _Client(args)
    hub = client.GetHub(ingestion_pb2.GetHubRequest(name=f"hubs/{args.name}")).hub
    paths = []
    if args.partitions is not None:
        hub.partition_count = args.partitions
        paths.append("partition_count")
    if args.retention is not None:
        hub.message_retention.CopyFrom(_seconds_pb(args.retention))
        paths.append("message_retention")
    t = hub.throughput
    if args.throughput_units is not None or args.auto_inflate is not None or args.max_units is not None:
        if args.throughput_units is not None:
            t.units = args.throughput_units
        if args.auto_inflate is not None:
            t.auto_inflate = args.auto_inflate
        if args.max_units is not None:
            t.maximum_units = args.max_units
        t.maximum_units = max(t.maximum_units, t.units) if t.auto_inflate else t.units
        paths.append("throughput")
    c = hub.capture
    capture_flags = (args.capture_interval, args.capture_destination, args.capture_size_limit_mb,
                     args.capture_name_format)
    if args.capture is not None or any(v is not None for v in capture_flags):
        c.enabled = c.enabled if args.capture is None else args.capture
        if any(v is not None for v in capture_flags) and args.capture is None:
            c.enabled = True  # setting where or how often to capture turns it on
        if args.capture_interval is not None:
            c.interval.CopyFrom(_seconds_pb(args.capture_interval))
        if args.capture_destination is not None:
            c.destination = args.capture_destination
        if args.capture_size_limit_mb is not None:
            c.size_limit_bytes = int(args.capture_size_limit_mb * (1 << 20))
        if args.capture_name_format is not None:
            c.archive_name_format = args.capture_name_format
        paths.append("capture")
    if not paths:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, "hub update: nothing to change; give --partitions, --retention, "
                             "--throughput-units, --auto-inflate, --max-units, --capture/--no-capture or "
                             "--capture-interval/--capture-destination/--capture-size-limit-mb/--capture-name-format")
    from google.protobuf import field_mask_pb2

    hub = client.UpdateHub(ingestion_pb2.UpdateHubRequest(
        hub=hub, update_mask=field_mask_pb2.FieldMask(paths=paths))).hub
    row = _hub_row(hub)
    row.update({"auto_inflate": hub.throughput.auto_inflate, "maximum_units": hub.throughput.maximum_units})
    if hub.capture.enabled:
        row.update({"capture_interval": f"{hub.capture.interval.seconds}s",
                    "capture_destination": hub.capture.destination or "(default)",
                    "capture_size_limit_bytes": hub.capture.size_limit_bytes})
    _print(row, args.json)
    return 0


def _hub_delete(args: argparse.Namespace) -> int:
    _Client(args).DeleteHub(ingestion_pb2.DeleteHubRequest(name=f"hubs/{args.name}"))
    print(f"deleted hub {args.name}")
    return 0


# -- consumer groups -----------------------------------------------------------------


def _cg_create(args: argparse.Namespace) -> int:
    cg = _Client(args).CreateConsumerGroup(ingestion_pb2.CreateConsumerGroupRequest(
        parent=f"hubs/{args.hub}", consumer_group_id=args.name, user_metadata=args.metadata or "")).consumer_group
    print(cg.name)
    return 0


def _cg_list(args: argparse.Namespace) -> int:
    client, names, token = _Client(args), [], ""
    while True:
        resp = client.ListConsumerGroups(ingestion_pb2.ListConsumerGroupsRequest(parent=f"hubs/{args.hub}",
                                                                                 page_token=token))
        names += [g.name.rsplit("/", 1)[-1] for g in resp.consumer_groups]
        token = resp.next_page_token
        if not token:
            break
    print(json.dumps(names) if args.json else "\n".join(names))
    return 0


def _cg_delete(args: argparse.Namespace) -> int:
    _Client(args).DeleteConsumerGroup(ingestion_pb2.DeleteConsumerGroupRequest(
        name=f"hubs/{args.hub}/consumerGroups/{args.name}"))
    print(f"deleted consumer group {args.name}")
    return 0


def _ts(ts: timestamp_pb2.Timestamp) -> str | None:
    return ts.ToDatetime(tzinfo=dt.UTC).isoformat() if ts.seconds or ts.nanos else None


def _cg_checkpoints(args: argparse.Namespace) -> int:
    """Each partition's checkpoint in a consumer group (what a processor resumes from)."""
    client, rows, token = _Client(args), [], ""
    while True:
        resp = client.ListCheckpoints(ingestion_pb2.ListCheckpointsRequest(
            hub=args.hub, consumer_group=args.group, page_token=token))
        rows += [{"partition": c.partition_id, "offset": c.offset, "sequence_number": c.sequence_number,
                  "updated": _ts(c.update_time)} for c in resp.checkpoints]
        token = resp.next_page_token
        if not token:
            break
    if not rows and not args.json:
        print(f"no checkpoints in consumer group {args.group} of hub {args.hub}")
    else:
        _print(rows, args.json)
    return 0


def _cg_owners(args: argparse.Namespace) -> int:
    """Which consumer owns each partition of a consumer group, and until when."""
    client, rows, token = _Client(args), [], ""
    now = dt.datetime.now(dt.UTC)
    while True:
        resp = client.ListOwnerships(ingestion_pb2.ListOwnershipsRequest(
            hub=args.hub, consumer_group=args.group, page_token=token))
        for o in resp.ownerships:
            expires = o.expire_time.ToDatetime(tzinfo=dt.UTC) if o.HasField("expire_time") else None
            rows.append({"partition": o.partition_id, "owner": o.owner_id, "modified": _ts(o.last_modified_time),
                         "expires": expires.isoformat() if expires else None,
                         "expired": bool(expires and expires <= now)})
        token = resp.next_page_token
        if not token:
            break
    if not rows and not args.json:
        print(f"no partition is owned in consumer group {args.group} of hub {args.hub}")
    else:
        _print(rows, args.json)
    return 0


# -- send / read -------------------------------------------------------------------------


def _lines(path: str | None) -> Iterator[tuple[int, str]]:
    try:
        fh = sys.stdin if path in (None, "-") else open(path, encoding="utf-8")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"cannot read {path}: {exc.strerror}") from None
    try:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield number, line.rstrip("\n")
    finally:
        if fh is not sys.stdin:
            fh.close()


def _send(args: argparse.Namespace) -> int:
    from headwater.eventhub import EventData, EventHubProducerClient

    conn = _conn(args)
    conn.entity_path = ""
    producer = EventHubProducerClient.from_connection_string(str(conn), eventhub_name=args.hub)
    groups: dict[str, list[Any]] = {}
    sent = 0

    def flush(key: str) -> None:
        nonlocal sent
        events = groups.pop(key, [])
        if events:
            producer.send_batch(events, partition_id=args.partition, partition_key=key or None)
            sent += len(events)

    with producer:
        for number, line in _lines(args.file):
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"line {number}: not JSON ({exc})") from None
            key = ""
            if args.partition_key:
                if not isinstance(obj, dict) or args.partition_key not in obj:
                    raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                         f"line {number}: no field {args.partition_key!r} for --partition-key")
                key = str(obj[args.partition_key])
            ev = EventData(line)
            ev.content_type = "application/json"
            groups.setdefault(key, []).append(ev)
            if len(groups[key]) >= args.batch_size:
                flush(key)
        for key in list(groups):
            flush(key)
    print(f"sent {sent} events to {args.hub}", file=sys.stderr)
    return 0


def _read(args: argparse.Namespace) -> int:
    client = _Client(args)
    position = parse_position(args.start)
    if args.partition is not None:
        pids = [args.partition]
    else:
        pids = list(client.GetHub(ingestion_pb2.GetHubRequest(name=f"hubs/{args.hub}")).hub.partition_ids)
    wait = duration_pb2.Duration()
    wait.FromNanoseconds(int(args.wait * 1e9))
    printed = 0
    for pid in pids:  # each partition until it is caught up (or --count is reached)
        call = client.stub.ReadEvents(ingestion_pb2.ReadEventsRequest(
            hub=args.hub, partition_id=pid, consumer_group=args.consumer_group, event_position=position,
            max_batch_size=1000, max_wait=wait), timeout=None)
        try:
            for resp in call:
                if not resp.events:
                    break
                for e in resp.events:
                    body = e.event.body
                    try:
                        value: Any = json.loads(body)
                    except ValueError:
                        value = body.decode("utf-8", "replace")
                    print(json.dumps({"partition": e.partition_id, "sequence_number": e.sequence_number,
                                      "offset": e.offset,
                                      "enqueued_time": e.enqueued_time.ToJsonString(),
                                      "properties": dict(e.event.properties), "body": value}))
                    printed += 1
                    if args.count and printed >= args.count:
                        return 0
        except grpc.RpcError as exc:
            raise HeadwaterError.from_rpc_error(exc) from None
        finally:
            call.cancel()
    return 0


# -- faults ----------------------------------------------------------------------------------


def _faults_set(args: argparse.Namespace) -> int:
    if not args.probability and not args.count:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, "give --probability P (0..1) or --count N")
    try:
        reason = args.reason.upper()
        errors_pb2.ErrorReason.Value(reason)  # ValueError when it names no reason
    except ValueError:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"--reason {args.reason!r} is not one of "
                             f"{', '.join(r.value for r in Reason)}") from None
    op = {"publish": ingestion_pb2.FAULT_OPERATION_PUBLISH, "read": ingestion_pb2.FAULT_OPERATION_READ,
          "all": ingestion_pb2.FAULT_OPERATION_ALL}[args.operation]
    rule = _Client(args).SetFaultRule(ingestion_pb2.SetFaultRuleRequest(rule=ingestion_pb2.FaultRule(
        rule_id=args.id or "", hub=args.hub, operation=op, reason=reason, probability=args.probability or 0.0,
        count=args.count or 0, partition_id=args.partition or ""))).rule
    print(f"fault rule {rule.rule_id} on {rule.hub}: {args.operation} fails with "
          f"{errors_pb2.ErrorReason.Name(rule.reason)} "
          + (f"for the next {rule.count} requests" if rule.count else f"with probability {rule.probability:g}"))
    return 0


def _faults_clear(args: argparse.Namespace) -> int:
    removed = _Client(args).ClearFaultRules(ingestion_pb2.ClearFaultRulesRequest(hub=args.hub,
                                                                                 rule_id=args.id or "")).removed
    print(f"removed {removed} fault rule(s) from {args.hub}")
    return 0


def _faults_list(args: argparse.Namespace) -> int:
    rules = _Client(args).ListFaultRules(ingestion_pb2.ListFaultRulesRequest(hub=args.hub)).rules
    rows = [{"id": r.rule_id, "reason": errors_pb2.ErrorReason.Name(r.reason),
             "operation": ingestion_pb2.FaultOperation.Name(r.operation).removeprefix("FAULT_OPERATION_").lower(),
             "probability": r.probability, "count": r.count, "remaining": r.remaining, "injected": r.injected}
            for r in rules]
    if rows or args.json:
        _print(rows, args.json)
    else:
        print("no fault rules")
    return 0


# -- parsers ---------------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--connection-string", help="Headwater connection string (default "
                                               "$HEADWATER_INGESTION_CONNECTION_STRING or $HEADWATER_CONNECTION_STRING, "
                                               "else the local root policy)")
    p.add_argument("--address", help="ingestion host:port without a connection string "
                                     "(default $HEADWATER_INGESTION_ADDRESS, else $HEADWATER_HOME/endpoints.json, else localhost:50051)")
    p.add_argument("--json", action="store_true", help="print JSON")
    return p


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} partitions: a hub needs at least 1")
    return value


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    hub = sub.add_parser("hub", help="create, list, show, update and delete hubs")
    hs = hub.add_subparsers(dest="hub_command", metavar="COMMAND", required=True)
    p = _common(hs.add_parser("create", help="create a hub"))
    p.add_argument("name")
    p.add_argument("--partitions", type=_positive, default=4, help="partition count, 1 or more (default 4)")
    p.add_argument("--retention", default="7d", help="message retention: 7d, 12h, 30m (default 7d)")
    p.add_argument("--throughput-units", type=int, default=0, help="throughput units (default 0: no quota)")
    p.add_argument("--auto-inflate", action="store_true", help="raise throughput units when throttled")
    p.add_argument("--max-units", type=int, default=0, help="auto-inflate ceiling")
    p.add_argument("--capture", action="store_true", help="capture events to Avro files")
    p.set_defaults(func=_hub_create)
    p = _common(hs.add_parser("list", help="list hubs"))
    p.set_defaults(func=_hub_list)
    p = _common(hs.add_parser("show", help="a hub with its partitions' properties"))
    p.add_argument("name")
    p.set_defaults(func=_hub_show)
    p = _common(hs.add_parser("update", help="add partitions; change a hub's retention, throughput units or capture",
                              description="Only the flags given change; the rest keeps its current value. "
                              "Partitions can be added, never removed."))
    p.add_argument("name")
    p.add_argument("--partitions", type=_positive, help="the new partition count (more than now; keys hash "
                   "over it from then on; running jobs read the new partitions after a restart)")
    p.add_argument("--retention", help="message retention: 7d, 12h, 30m")
    p.add_argument("--throughput-units", type=int, help="throughput units (0: no quota)")
    p.add_argument("--auto-inflate", action=argparse.BooleanOptionalAction, default=None,
                   help="raise throughput units when throttled (--no-auto-inflate to stop)")
    p.add_argument("--max-units", type=int, help="auto-inflate ceiling")
    p.add_argument("--capture", action=argparse.BooleanOptionalAction, default=None,
                   help="turn capture to Avro files on or off")
    p.add_argument("--capture-interval", help="close a capture file after this long: 5m, 60s (turns capture on)")
    p.add_argument("--capture-destination", help="folder of the capture files, on the service's machine")
    p.add_argument("--capture-size-limit-mb", type=float, help="close a capture file at this size")
    p.add_argument("--capture-name-format", help="file path under the destination ({EventHub}/{PartitionId}/...)")
    p.set_defaults(func=_hub_update)
    p = _common(hs.add_parser("delete", help="delete a hub and its events"))
    p.add_argument("name")
    p.set_defaults(func=_hub_delete)

    cg = sub.add_parser("consumer-group", help="create, list and delete consumer groups; checkpoints and owners")
    cs = cg.add_subparsers(dest="cg_command", metavar="COMMAND", required=True)
    p = _common(cs.add_parser("create", help="create a consumer group"))
    p.add_argument("hub")
    p.add_argument("name")
    p.add_argument("--metadata", help="user metadata")
    p.set_defaults(func=_cg_create)
    p = _common(cs.add_parser("list", help="list a hub's consumer groups"))
    p.add_argument("hub")
    p.set_defaults(func=_cg_list)
    p = _common(cs.add_parser("delete", help="delete a consumer group"))
    p.add_argument("hub")
    p.add_argument("name")
    p.set_defaults(func=_cg_delete)
    p = _common(cs.add_parser("checkpoints", help="each partition's checkpoint (offset, sequence number)"))
    p.add_argument("hub")
    p.add_argument("group")
    p.set_defaults(func=_cg_checkpoints)
    p = _common(cs.add_parser("owners", help="which consumer owns each partition, and until when"))
    p.add_argument("hub")
    p.add_argument("group")
    p.set_defaults(func=_cg_owners)

    p = _common(sub.add_parser("send", help="send JSON lines from a file or stdin to a hub"))
    p.add_argument("hub")
    p.add_argument("file", nargs="?", help="JSON lines file (default stdin)")
    route = p.add_mutually_exclusive_group()
    route.add_argument("--partition-key", help="route each event by this JSON field")
    route.add_argument("--partition", help="send every event to this partition")
    p.add_argument("--batch-size", type=int, default=500, help="events per batch (default 500)")
    p.set_defaults(func=_send)

    p = _common(sub.add_parser("read", help="print a hub's events as JSON lines"))
    p.add_argument("hub")
    p.add_argument("--partition", help="only this partition (default every partition in turn)")
    p.add_argument("--from", dest="start", default="earliest",
                   help="earliest | latest | offset:N | seq:N | time:ISO (default earliest)")
    p.add_argument("--consumer-group", default="$Default")
    p.add_argument("--count", type=int, default=0, help="stop after N events")
    p.add_argument("--wait", type=float, default=1.0, help="seconds to wait for new events before moving on")
    p.set_defaults(func=_read)

    faults = sub.add_parser("faults", help="fault injection rules for testing clients")
    fs = faults.add_subparsers(dest="faults_command", metavar="COMMAND", required=True)
    p = _common(fs.add_parser("set", help="make a fraction or a count of a hub's requests fail"))
    p.add_argument("hub")
    p.add_argument("--reason", required=True, help="SERVICE_BUSY, QUOTA_EXCEEDED, SERVICE_TIMEOUT, "
                                                   "CONSUMER_DISCONNECTED, ...")
    p.add_argument("--probability", type=float, help="fraction of requests that fail (0..1)")
    p.add_argument("--count", type=int, help="fail the next N requests")
    p.add_argument("--operation", choices=("publish", "read", "all"), default="all")
    p.add_argument("--partition", help="only this partition")
    p.add_argument("--id", help="rule id (replaces a rule with the same id)")
    p.set_defaults(func=_faults_set)
    p = _common(fs.add_parser("clear", help="remove a hub's fault rules"))
    p.add_argument("hub")
    p.add_argument("--id", help="only this rule")
    p.set_defaults(func=_faults_clear)
    p = _common(fs.add_parser("list", help="list a hub's fault rules"))
    p.add_argument("hub")
    p.set_defaults(func=_faults_list)
