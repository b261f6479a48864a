"""`headwater job ...` against a real processing service process."""

from __future__ import annotations

import json

from headwater.cli.main import main


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_job_commands(service_process, tmp_path, capsys):
    proc = service_process("processing")
    a = ("--address", proc.address)
    q = tmp_path / "q.asaql"
    q.write_text("SELECT startLocation, COUNT(*) AS n\nINTO [Out]\nFROM [Trips] TIMESTAMP BY createdAt\n"
                 "GROUP BY startLocation, TumblingWindow(second, 10)\n")
    code, out, _ = run(capsys, "job", "create", "trips", "--query", str(q), "--input", "Trips=trips",
                       "--output", "Out=counts", "--late-arrival-tolerance", "10s", *a, "--json")
    assert code == 0 and json.loads(out)["state"] == "STOPPED"
    code, out, _ = run(capsys, "job", "list", *a, "--json")
    assert [j["name"] for j in json.loads(out)] == ["jobs/trips"]
    code, out, _ = run(capsys, "job", "show", "trips", *a, "--json")
    shown = json.loads(out)
    assert shown["eventOrdering"]["lateArrivalTolerance"] == "10s" and "TumblingWindow" in shown["query"]
    code, out, _ = run(capsys, "job", "alert", "create", "trips", "su80", "--metric", "su_utilization_percent",
                       "--operator", "gt", "--threshold", "80", *a, "--json")
    assert code == 0 and json.loads(out)["name"] == "jobs/trips/alertRules/su80"
    code, out, _ = run(capsys, "job", "alert", "list", "trips", *a, "--json")
    assert len(json.loads(out)) == 1
    code, out, _ = run(capsys, "job", "metrics", "trips", *a, "--json")
    assert json.loads(out)["inputEvents"] == "0"

    bad = tmp_path / "bad.asaql"
    bad.write_text("SELECT *\nINTO [Out]\nFROM [Trips]\nGROUP BY TumblingWindow(second)\n")
    code, _, err = run(capsys, "job", "create", "bad", "--query", str(bad), "--input", "Trips=trips",
                       "--output", "Out=counts", *a)
    assert code == 1 and "line 4, column 10" in err and "window size is missing" in err
    code, _, err = run(capsys, "job", "start", "missing", *a)
    assert code == 1 and "RESOURCE_NOT_FOUND" in err
    code, _, _ = run(capsys, "job", "delete", "trips", *a)
    assert code == 0


def test_test_query_rpc_runs_the_engine_over_sample_input(service_process, root_policy):
    """TestQuery, as the portal's "Test query": sample events in, rows per output out."""
    import grpc

    from headwater.channel import sync_channel
    from headwater.errors import HeadwaterError, Reason
    from headwater.v1 import processing_pb2 as pb
    from headwater.v1 import processing_pb2_grpc as pb_grpc
    from tests.conftest import conn_for

    proc = service_process("processing")
    events = b"\n".join(json.dumps({"t": f"2021-01-01T00:00:0{i + 1}Z", "city": c}).encode()
                        for i, c in enumerate(["Oslo", "Oslo", "Rome", "Oslo"]))
    query = ("SELECT city, COUNT(*) AS n INTO [Out] FROM [In] TIMESTAMP BY t "
             "GROUP BY city, TumblingWindow(second, 10)")
    with sync_channel(conn_for(proc.address, root_policy)) as ch:
        stub = pb_grpc.ProcessingServiceStub(ch)
        resp = stub.TestQuery(pb.TestQueryRequest(query=query, inputs=[pb.TestInput(alias="In", data=events)]),
                              timeout=30)
        (out,) = resp.outputs
        rows = sorted((json.loads(line) for line in out.rows.data.splitlines()), key=lambda r: r["city"])
        assert out.alias == "Out" and rows == [{"city": "Oslo", "n": 3}, {"city": "Rome", "n": 1}]
        try:
            stub.TestQuery(pb.TestQueryRequest(query="SELECT FROM", inputs=[]), timeout=30)
        except grpc.RpcError as exc:
            err = HeadwaterError.from_rpc_error(exc)
        assert err.reason is Reason.QUERY_COMPILE_ERROR and err.line == 1
