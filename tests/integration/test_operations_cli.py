"""Operating from the CLI against real services: `hub update`, consumer-group checkpoints and
owners, `job create --checkpoint-interval`, `job update`, `job test --sample N`."""

from __future__ import annotations

import json

from headwater.cli.main import main
from headwater.v1 import ingestion_pb2 as ipb
from tests.integration.processing_support import Pipeline


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_hub_update_and_consumer_group_checkpoints_and_owners(service_process, root_policy, tmp_path,
                                                             monkeypatch, capsys):
    data = tmp_path / "ing"
    proc = service_process("ingestion", "--data-dir", str(data))
    monkeypatch.setenv("HEADWATER_INGESTION_ADDRESS", proc.address)
    assert run(capsys, "hub", "create", "ops-trips", "--partitions", "2")[0] == 0

    code, out, err = run(capsys, "hub", "update", "ops-trips", "--retention", "2d", "--throughput-units", "3",
                         "--capture-interval", "90s", "--capture-destination", str(data / "cap"), "--json")
    assert code == 0, err
    row = json.loads(out)
    assert (row["retention"], row["throughput_units"], row["capture"]) == ("2d", 3, True)
    assert row["capture_interval"] == "90s" and row["capture_destination"] == str((data / "cap").resolve())
    # Only the flags given change; the rest is kept (capture stays on with its destination).
    code, out, _ = run(capsys, "hub", "update", "ops-trips", "--retention", "12h", "--json")
    row = json.loads(out)
    assert (row["retention"], row["throughput_units"], row["capture"], row["capture_interval"]) == (
        "0.5d", 3, True, "90s")
    code, out, _ = run(capsys, "hub", "update", "ops-trips", "--throughput-units", "4")
    assert code == 0 and "throughput_units: 4" in out and "capture_interval: 90s" in out
    code, out, _ = run(capsys, "hub", "update", "ops-trips", "--no-capture", "--json")
    assert json.loads(out)["capture"] is False
    shown = json.loads(run(capsys, "hub", "show", "ops-trips", "--json")[1])
    assert (shown["retention"], shown["throughput_units"], shown["capture"]) == ("0.5d", 4, False)
    code, _, err = run(capsys, "hub", "update", "ops-trips")
    assert code == 1 and "nothing to change" in err
    code, _, err = run(capsys, "hub", "update", "ops-trips", "--capture-destination", "/etc/hw-capture")
    assert code == 1 and "hub.capture.destination" in err

    # Partitions up (never down); the new ones take events and keep the old ones' events.
    code, out, err = run(capsys, "hub", "update", "ops-trips", "--partitions", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["partitions"] == 3
    code, _, err = run(capsys, "hub", "update", "ops-trips", "--partitions", "2")
    assert code == 1 and "can only be added" in err and "it has 3" in err
    one = tmp_path / "one.jsonl"
    one.write_text('{"n": 1}\n')
    code, out, err = run(capsys, "send", "ops-trips", str(one), "--partition", "2")
    assert code == 0, err
    shown = json.loads(run(capsys, "hub", "show", "ops-trips", "--json")[1])
    assert [p["partition"] for p in shown["partition_properties"]] == ["0", "1", "2"]
    assert [p["last_sequence_number"] for p in shown["partition_properties"]] == [-1, -1, 0]

    # Checkpoints and owners as a processor (the SDK's checkpoint store) leaves them.
    assert run(capsys, "consumer-group", "create", "ops-trips", "asa")[0] == 0
    code, out, _ = run(capsys, "consumer-group", "checkpoints", "ops-trips", "asa")
    assert code == 0 and "no checkpoints" in out
    from headwater.channel import sync_channel
    from headwater.v1 import ingestion_pb2_grpc
    from tests.conftest import conn_for

    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        for pid, offset, seq in (("0", 120, 3), ("1", 40, 1)):
            stub.UpdateCheckpoint(ipb.UpdateCheckpointRequest(checkpoint=ipb.Checkpoint(
                hub="ops-trips", consumer_group="asa", partition_id=pid, offset=offset, sequence_number=seq)))
        stub.ClaimOwnership(ipb.ClaimOwnershipRequest(ownerships=[
            ipb.Ownership(hub="ops-trips", consumer_group="asa", partition_id="0", owner_id="worker-a"),
            ipb.Ownership(hub="ops-trips", consumer_group="asa", partition_id="1", owner_id="worker-b")]))
    code, out, _ = run(capsys, "consumer-group", "checkpoints", "ops-trips", "asa", "--json")
    assert [(c["partition"], c["offset"], c["sequence_number"]) for c in json.loads(out)] == [
        ("0", 120, 3), ("1", 40, 1)]
    assert all(c["updated"] for c in json.loads(out))
    code, out, _ = run(capsys, "consumer-group", "owners", "ops-trips", "asa", "--json")
    owners = json.loads(out)
    assert [(o["partition"], o["owner"], o["expired"]) for o in owners] == [
        ("0", "worker-a", False), ("1", "worker-b", False)]
    assert all(o["expires"] and o["modified"] for o in owners)
    code, out, _ = run(capsys, "consumer-group", "owners", "ops-trips", "$Default")
    assert code == 0 and "no partition is owned" in out
    code, _, err = run(capsys, "consumer-group", "checkpoints", "ops-trips", "nope")
    assert code == 1 and "nope" in err


def test_job_checkpoint_interval_update_and_test_on_a_live_sample(service_process, root_policy, tmp_path,
                                                                 monkeypatch, capsys):
    pipe = Pipeline(service_process, root_policy, tmp_path)
    monkeypatch.setenv("HEADWATER_INGESTION_ADDRESS", pipe.ingestion.address)
    monkeypatch.setenv("HEADWATER_PROCESSING_ADDRESS", pipe.processing.address)
    pipe.create_hub("ops-in", partitions=1)
    pipe.create_sink("ops-out", "memory")
    q = tmp_path / "q.asaql"
    q.write_text("SELECT tripId, fare INTO [out] FROM [trips]")
    code, out, err = run(capsys, "job", "create", "ops-copy", "--query", str(q), "--input", "trips=ops-in",
                         "--output", "out=ops-out", "--checkpoint-interval", "250ms", "--json")
    assert code == 0, err
    assert pipe.get_job("ops-copy").checkpoint_interval.ToNanoseconds() == 250_000_000
    code, _, err = run(capsys, "job", "create", "ops-bad", "--query", str(q), "--input", "trips=ops-in",
                       "--output", "out=ops-out", "--checkpoint-interval", "0s")
    assert code == 1 and "--checkpoint-interval" in err

    pipe.publish("ops-in", [{"tripId": f"t{i}", "fare": i} for i in range(30)])
    from headwater.v1 import event_pb2

    pipe.call("ingestion", "PublishEvents", ipb.PublishEventsRequest(  # the newest event: a poison one
        hub="hubs/ops-in", events=[event_pb2.EventData(body=b"not json{")]))
    code, out, err = run(capsys, "job", "test", "ops-copy", "--sample", "5", "--json")
    assert code == 0, err
    result = json.loads(out)
    # The last 5 events: t26..t29 and the poison one, which is left out as the live job drops it.
    assert result["sample"] == {"trips": 4}
    assert result["outputs"]["out"] == [{"tripId": f"t{i}", "fare": i} for i in range(26, 30)]
    code, out, _ = run(capsys, "job", "test", "ops-copy", "--sample", "5")
    assert code == 0 and out.splitlines()[:2] == ["sample: trips 4 events", "output out: 4 rows"]
    # A new query over the same live sample, before cutting over.
    new = tmp_path / "new.asaql"
    new.write_text("SELECT tripId, fare * 2 AS double INTO [out] FROM [trips] WHERE fare >= 28")
    code, out, err = run(capsys, "job", "test", "ops-copy", "--sample", "5", "--query", str(new), "--json")
    assert code == 0, err
    assert json.loads(out)["outputs"]["out"] == [{"tripId": "t28", "double": 56}, {"tripId": "t29", "double": 58}]
    code, _, err = run(capsys, "job", "test", "ops-copy", "--sample", "0")
    assert code == 1 and "--sample" in err

    code, out, err = run(capsys, "job", "update", "ops-copy", "--query", str(new), "--checkpoint-interval", "2s",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["checkpoint_interval"] == "2s"
    job = pipe.get_job("ops-copy")
    assert "fare * 2" in job.query and job.checkpoint_interval.seconds == 2
    pipe.start_job("ops-copy")
    code, _, err = run(capsys, "job", "update", "ops-copy", "--query", str(q))
    assert code == 1 and "stop it before updating" in err
    bad = tmp_path / "bad.asaql"
    bad.write_text("SELECT tripId INTO [out] FROM [trips] WHERE")
    pipe.stop_job("ops-copy")
    code, _, err = run(capsys, "job", "update", "ops-copy", "--query", str(bad))
    assert code == 1 and "line 1" in err
    assert "fare * 2" in pipe.get_job("ops-copy").query  # a refused update changes nothing
    # A consumer group for one input by alias (a starved job's fix); an unknown alias is named.
    code, _, err = run(capsys, "job", "update", "ops-copy", "--consumer-group", "nope=g")
    assert code == 1 and "hub inputs: trips" in err
    code, out, err = run(capsys, "job", "update", "ops-copy", "--consumer-group", "trips=ops-own", "--json")
    assert code == 0, err
    assert [i.consumer_group for i in pipe.get_job("ops-copy").inputs] == ["ops-own"]

    # job diff and job test read hubs: a job reading files on the service is refused, naming the input.
    logs = tmp_path / "proc" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    code, _, err = run(capsys, "job", "create", "ops-files", "--query", str(q), "--input",
                       f"trips=files:{logs}/*.json", "--output", "out=ops-out")
    assert code == 0, err
    code, _, err = run(capsys, "job", "diff", "ops-files", "--query", str(q), "--from", "2026-12-05T08:00:00Z",
                       "--to", "2026-12-05T09:00:00Z")
    assert code == 1 and "input 'trips' reads files, which the replay does not" in err
    code, _, err = run(capsys, "job", "test", "ops-files", "--sample", "5")
    assert code == 1 and "trips" in err and "files" in err, err
