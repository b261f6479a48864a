"""Operating a failing job against real services (docs/operations.md's walkthrough):
poison events in the dead-letter hub with their provenance and replayed after a fix,
per-event lateness verdicts, a replay-diff of a fixed query, the cut-over keeping state
when the plan allows it, and a job starved by another reader on its consumer group."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import grpc
import orjson
from google.protobuf import duration_pb2

from headwater.cli.main import main
from headwater.v1 import event_pb2
from headwater.v1 import ingestion_pb2 as ipb
from headwater.v1 import processing_pb2 as ppb
from tests.integration.processing_support import Pipeline

QUERY = ("SELECT System.Timestamp() AS windowEnd, zone, COUNT(*) AS trips, SUM(fare) AS fares INTO [out] "
         "FROM [trips] TIMESTAMP BY pickup GROUP BY zone, TumblingWindow(second, 10)")


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


def publish(pipe: Pipeline, hub: str, bodies: list[bytes], partition: str = "0") -> None:
    pipe.call("ingestion", "PublishEvents", ipb.PublishEventsRequest(
        hub=f"hubs/{hub}", partition_id=partition,
        events=[event_pb2.EventData(body=b, content_type="application/json") for b in bodies]))


def read_dead(pipe: Pipeline, hub: str) -> list[dict]:
    """Every event of a dead-letter hub, with its properties (through the CLI's reader)."""
    import argparse

    from headwater.cli.common import Client
    from headwater.cli.job_ops import read_range
    from headwater.v1 import ingestion_pb2_grpc

    ingestion = Client(argparse.Namespace(connection_string=None, address=pipe.ingestion.address), "ingestion",
                       ingestion_pb2_grpc.IngestionServiceStub)
    return read_range(ingestion, hub, None, None)


def test_dead_letters_verdicts_diff_and_cut_over(service_process, root_policy, tmp_path, monkeypatch, capsys):
    pipe = Pipeline(service_process, root_policy, tmp_path,
                    extra_env={"HEADWATER_PROCESSING_STARVATION_AFTER_S": "1"})
    for k, v in (("INGESTION", pipe.ingestion.address), ("PROCESSING", pipe.processing.address),
                 ("SINK", pipe.sink.address)):
        monkeypatch.setenv(f"HEADWATER_{k}_ADDRESS", v)
    pipe.create_hub("fj-in", partitions=2)
    pipe.create_hub("fj-dead", partitions=1)
    pipe.create_sink("fj-out", "memory")
    q = tmp_path / "q.asaql"
    q.write_text(QUERY)
    code, _, err = run(capsys, "job", "create", "fares", "--query", str(q), "--input", "trips=fj-in",
                       "--output", "out=fj-out", "--dead-letter-hub", "fj-dead", "--checkpoint-interval", "300ms")
    assert code == 0, err
    assert pipe.get_job("fares").dead_letter_hub == "hubs/fj-dead"
    pipe.start_job("fares")

    now = datetime.now(UTC)
    late = {"tripId": "late", "zone": "a", "fare": 7, "pickup": iso(now - timedelta(seconds=60))}
    publish(pipe, "fj-in", [orjson.dumps(late)])  # first in its partition: late only, adjusted to arrival - 5 s
    good = [{"tripId": f"t{i}", "zone": "ab"[i % 2], "fare": i, "pickup": iso(now + timedelta(milliseconds=i))}
            for i in range(20)]
    poison = [b"not json{", orjson.dumps({"tripId": "bad-time", "zone": "a", "fare": 1, "pickup": "yesterday"})]
    publish(pipe, "fj-in", [orjson.dumps(e) for e in good[:10]] + poison + [orjson.dumps(e) for e in good[10:]])
    publish(pipe, "fj-in", [orjson.dumps({**good[0], "tripId": "p1"})], partition="1")

    m = pipe.wait_metrics("fares", lambda m: m.input_events == 24 and m.dead_letter_events == 2)
    assert (m.input_deserialization_errors, m.data_conversion_errors, m.late_input_events) == (1, 1, 1)

    # 1. The poison events are in the dead-letter hub with their provenance and original bodies.
    code, out, err = run(capsys, "job", "dead-letters", "fares", "--json")
    assert code == 0, err
    dead = json.loads(out)
    assert [d["body"] for d in dead] == ["not json{", poison[1].decode()]
    seqs = [d["sequence-number"] for d in dead]
    assert seqs == ["11", "12"]  # partition 0: the late event (0), t0..t9 (1..10), then the two
    for d in dead:
        assert (d["kind"], d["input"], d["hub"], d["partition"]) == ("input", "trips", "hubs/fj-in", "0")
        assert d["enqueued-time"] and d["message"]
    assert dead[0]["reason"] == "InputDeserializationError" and dead[1]["reason"] == "ConversionError"
    assert "yesterday" in dead[1]["message"] or "time" in dead[1]["message"].lower()

    # 2. Verdicts: every readable event, the late one adjusted with both times and its window.
    def verdicts():
        code, out, err = run(capsys, "job", "verdicts", "fares", "--input", "trips", "--json")
        assert code == 0, err
        return json.loads(out)

    rows = pipe.wait_rows(verdicts, lambda r: len(r) == 22)
    assert len(rows) == 22, rows
    by_seq = {(r["partition"], r["sequence_number"]): r for r in rows}
    lv = by_seq[("0", 0)]
    assert (lv["verdict"], lv["reason"], lv["event_time"]) == ("adjusted", "late", late["pickup"])
    enq = datetime.fromisoformat(lv["enqueued"].replace("Z", "+00:00"))
    counted = datetime.fromisoformat(lv["counted_at"].replace("Z", "+00:00"))
    assert counted == enq - timedelta(seconds=5)
    end = datetime.fromtimestamp((int(counted.timestamp() * 1e6) // 10_000_000 + 1) * 10, UTC)
    if counted == end - timedelta(seconds=10):
        end = counted
    assert lv["windows"] == f"({iso(end - timedelta(seconds=10))}, {iso(end)}]"
    on_time = [r for r in rows if r is not lv]
    assert {r["verdict"] for r in on_time} == {"on_time"} and all(r["counted_at"] == r["event_time"]
                                                                   for r in on_time)
    code, out, _ = run(capsys, "job", "verdicts", "fares", "--input", "trips", "--to", lv["enqueued"])
    assert code == 0 and "no verdicts" in out  # nothing arrived before the first event
    code, _, err = run(capsys, "job", "verdicts", "fares", "--input", "nope")
    assert code == 1 and "no stream input 'nope'" in err

    # 3. A fixed query read from the hub over the recorded range: the diff names what changes.
    start, stop = iso(now - timedelta(minutes=1)), iso(datetime.now(UTC) + timedelta(seconds=1))
    fixed = tmp_path / "fixed.asaql"
    fixed.write_text(QUERY.replace("SUM(fare)", "SUM(fare) * 2"))
    code, out, err = run(capsys, "job", "diff", "fares", "--query", str(fixed), "--from", start, "--to", stop,
                         "--json")
    assert code == 1, err
    diff = json.loads(out)
    assert diff["events"] == {"trips": 23} and diff["differs"]  # the unreadable body is left out, as the job does
    d = diff["outputs"]["out"]
    assert d["rows_before"] == d["rows_after"] and not d["added"] and not d["removed"]
    assert {c["key"]["zone"] for c in d["changed"]} == {"a", "b"}
    assert all(set(c["columns"]) == {"fares"} and c["columns"]["fares"][1] == 2 * c["columns"]["fares"][0]
               for c in d["changed"])
    code, out, _ = run(capsys, "job", "diff", "fares", "--query", str(q), "--from", start, "--to", stop)
    assert code == 0 and out.strip().endswith("no difference")
    code, out, _ = run(capsys, "job", "diff", "fares", "--query", str(fixed), "--from", start, "--to", stop)
    assert code == 1 and "changed" in out and "~ " in out

    # 4. Cut over: the same plan keeps the state; a different one says it does not.
    pipe.stop_job("fares")
    code, out, err = run(capsys, "job", "update", "fares", "--query", str(fixed), "--start-from", "last", "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["state_kept"] is False and "plan differs" in row["state_note"] and row["state"] == "RUNNING"
    pipe.stop_job("fares")
    spaced = tmp_path / "spaced.asaql"
    spaced.write_text(fixed.read_text() + "\n-- reviewed\n")
    code, out, err = run(capsys, "job", "update", "fares", "--query", str(spaced), "--start-from", "last", "--json")
    assert code == 0, err
    row = json.loads(out)
    assert row["state_kept"] is True and "state is kept" in row["state_note"], row
    assert pipe.wait_job("fares", lambda j: j.state == ppb.JOB_STATE_RUNNING).error == ""
    publish(pipe, "fj-in", [orjson.dumps({**good[1], "tripId": "after", "pickup": iso(datetime.now(UTC))})])
    pipe.wait_metrics("fares", lambda m: m.input_events == 25)
    assert pipe.get_job("fares").state == ppb.JOB_STATE_RUNNING  # restored from the re-stamped state
    rows = pipe.wait_rows(verdicts, lambda r: len(r) == 23)  # the recent range outlives restarts
    assert len(rows) == 23 and rows[-1]["verdict"] == "on_time"

    # 5. The fix goes back through the hub: replayed dead letters are read again (and dead-lettered
    # again here, as the query is unchanged for them).
    code, out, err = run(capsys, "job", "replay-dead-letters", "fares", "--json")
    assert code == 0, err
    assert json.loads(out) == {"replayed": 2, "to": {"hub hubs/fj-in partition 0": 2}}
    m = pipe.wait_metrics("fares", lambda m: m.dead_letter_events == 4 and m.input_events == 27, timeout=60)

    # 6. Another reader takes partition 0 of $Default (an exclusive one): the job is starved and says so.
    from headwater.channel import sync_channel
    from headwater.v1 import ingestion_pb2_grpc
    from tests.conftest import conn_for

    ch = sync_channel(conn_for(pipe.ingestion.address, root_policy))
    stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
    call = stub.ReadEvents(ipb.ReadEventsRequest(hub="hubs/fj-in", partition_id="0", consumer_group="$Default",
                                                 owner_level=5, event_position=event_pb2.EventPosition(latest=True),
                                                 max_wait=duration_pb2.Duration(nanos=200_000_000)))
    answered = threading.Event()

    def hold() -> None:
        try:
            for _ in call:
                answered.set()  # the exclusive reader is in place (its first answer, events or none)
        except grpc.RpcError:
            pass  # cancelled below

    reading = threading.Thread(target=hold, daemon=True)
    reading.start()
    try:
        assert answered.wait(30), "the exclusive reader never answered"
        publish(pipe, "fj-in", [orjson.dumps({**good[2], "tripId": f"s{i}"}) for i in range(5)])
        m = pipe.wait_metrics("fares", lambda m: m.starved_partitions == 1, timeout=60)
        starved = [p for p in m.partitions if p.starved]
        assert [(p.input, p.partition_id) for p in starved] == [("trips", "0")] and starved[0].backlog_events == 5
        code, out, _ = run(capsys, "job", "show", "fares")
        assert code == 0 and "warning: input trips is starved" in out and "its own consumer group" in out
        code, out, _ = run(capsys, "job", "metrics", "fares", "--json")
        shown = json.loads(out)
        assert shown["starvedPartitions"] == "1" and shown["outputErrors"] == "0"  # zeros are shown too
        assert "partition 0 is starved" in pipe.processing.output() and "own consumer group" in \
            pipe.processing.output()
    finally:
        call.cancel()
        reading.join(10)
        ch.close()
    pipe.wait_metrics("fares", lambda m: m.starved_partitions == 0 and m.input_events == 32, timeout=60)
