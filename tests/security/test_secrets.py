"""Secrets by reference, never returned: Get/List of jobs and sinks show ***, state files are 0600.

Before: GetJob/ListJobs (a Listen key) returned input and output connection strings with their keys,
GetSink/ListSinks returned PostgreSQL passwords and webhook Authorization headers, and jobs.json and
sinks.json were world-readable.
"""

from __future__ import annotations

import json
import os
import stat
import uuid

import psycopg
import pyarrow as pa
from google.protobuf import json_format

from headwater.errors import Reason
from headwater.v1 import processing_pb2 as pb
from headwater.v1 import processing_pb2_grpc, secrets_pb2, secrets_pb2_grpc, sink_pb2_grpc
from headwater.v1 import sink_pb2 as spb
from tests.integration.test_sink_service import cfg
from tests.security.support import call, refused
from tests.zygote import run_headwater

KEY = "Zm9vYmFyLXNlY3JldC1rZXk9"
PG = "host=127.0.0.1 port=5432 dbname=test user=postgres"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _text(msg) -> str:
    return json_format.MessageToJson(msg)


def _set_secret(sink, policy, name, value):
    return call(sink.address, policy, secrets_pb2_grpc, "SecretServiceStub", "SetSecret",
                secrets_pb2.SetSecretRequest(name=f"secrets/{name}", value=value))


def test_job_connection_strings_are_masked_and_jobs_json_private(service_process, root_policy, tmp_path,
                                                                 _isolated_home):
    sink = service_process("sink", "--data-dir", str(tmp_path / "sink"), env={"HEADWATER_SINK_DASHBOARD_PORT": "-1"})
    proc = service_process("processing", "--data-dir", str(tmp_path / "proc"))
    pasted = f"Endpoint=headwater://127.0.0.1:1/;SharedAccessKeyName=root;SharedAccessKey={KEY}"

    def job(name, in_conn, out_conn):
        return pb.Job(name=f"jobs/{name}", query="SELECT * INTO [o] FROM [i]",
                      inputs=[pb.JobInput(alias="i", kind=pb.INPUT_KIND_STREAM, hub="hubs/h", connection_string=in_conn)],
                      outputs=[pb.JobOutput(alias="o", sink="sinks/s", connection_string=out_conn)])

    def rpc(method, request):
        return call(proc.address, root_policy, processing_pb2_grpc, "ProcessingServiceStub", method, request)

    created = rpc("CreateJob", pb.CreateJobRequest(job=job("pasted", pasted, pasted))).job
    got = rpc("GetJob", pb.GetJobRequest(name="jobs/pasted")).job
    listed = rpc("ListJobs", pb.ListJobsRequest())
    for msg in (created, got, listed):
        assert KEY not in _text(msg)
    assert got.inputs[0].connection_string == "***" and got.outputs[0].connection_string == "***"
    # Read, modify, write back: the masked value keeps what was stored.
    got.query = "SELECT * INTO [o] FROM [i] WHERE 1 = 1"
    assert KEY not in _text(rpc("UpdateJob", pb.UpdateJobRequest(job=got)).job)
    stored = json.loads((tmp_path / "proc" / "jobs.json").read_text())["jobs"]
    assert [j["inputs"][0]["connectionString"] for j in stored if j["name"] == "jobs/pasted"] == [pasted]
    # A secret reference: refused while the secret is missing, shown as the reference once it exists.
    err = refused(rpc, "CreateJob", pb.CreateJobRequest(job=job("named", "secret:hubkey", "")))
    assert err.reason is Reason.INVALID_ARGUMENT and err.metadata.get("field") == "job.inputs.connection_string"
    _set_secret(sink, root_policy, "hubkey", pasted)  # the sink service serves the shared store
    rpc("CreateJob", pb.CreateJobRequest(job=job("named", "secret:hubkey", "")))
    got = rpc("GetJob", pb.GetJobRequest(name="jobs/named")).job
    assert got.inputs[0].connection_string == "secret:hubkey" and KEY not in _text(got)
    # Files readable only by the service's user.
    assert _mode(tmp_path / "proc" / "jobs.json") == 0o600 and _mode(tmp_path / "proc") == 0o700
    secrets = _isolated_home / "secrets"
    assert _mode(secrets) == 0o700 and _mode(secrets / "hubkey") == 0o600


def test_sink_dsn_and_headers_are_masked_and_secret_names_resolve(service_process, root_policy, tmp_path,
                                                                  _isolated_home):
    data = tmp_path / "sink"
    proc = service_process("sink", "--data-dir", str(data), env={"HEADWATER_SINK_DASHBOARD_PORT": "-1"})
    table = f"sec_{uuid.uuid4().hex[:10]}"

    def rpc(method, request):
        return call(proc.address, root_policy, sink_pb2_grpc, "SinkServiceStub", method, request)

    def create(sid, kind, **config):
        return rpc("CreateSink", spb.CreateSinkRequest(sink_id=sid, sink=spb.Sink(kind=kind, config=cfg(**config))))

    made = [create("pg", "postgres", dsn=f"{PG} password=hunter2pw", table=table).sink,
            create("hook", "webhook", url="http://127.0.0.1:9/x", headers={"Authorization": f"Bearer {KEY}"}).sink]
    shown = [rpc("GetSink", spb.GetSinkRequest(name="sinks/pg")).sink, rpc("GetSink", spb.GetSinkRequest(
        name="sinks/hook")).sink, rpc("ListSinks", spb.ListSinksRequest())]
    for msg in (*made, *shown):
        assert "hunter2pw" not in _text(msg) and KEY not in _text(msg)
    assert shown[0].config["dsn"] == "***" and shown[1].config["headers"]["Authorization"] == "***"
    # The DSN by name: the service resolves it, readers see the name.
    call(proc.address, root_policy, secrets_pb2_grpc, "SecretServiceStub", "SetSecret",
         secrets_pb2.SetSecretRequest(name="secrets/pgdsn", value=PG))
    create("pgref", "postgres", dsn="secret:pgdsn", table=f"{table}_r")
    from headwater.sinks import batch_to_proto

    rpc("WriteRows", spb.WriteRowsRequest(sink="sinks/pgref", batch=batch_to_proto(pa.table({"v": [1, 2]}), 0),
                                          writer="w", checkpoint_id=1, commit=True))
    with psycopg.connect(PG) as conn:
        assert conn.execute(f'SELECT count(*) FROM "{table}_r"').fetchone()[0] == 2
        conn.execute(f'DROP TABLE IF EXISTS "{table}_r"')
        conn.execute(f'DROP TABLE IF EXISTS "{table}"')
    assert rpc("GetSink", spb.GetSinkRequest(name="sinks/pgref")).sink.config["dsn"] == "secret:pgdsn"
    err = refused(lambda: create("pgmissing", "postgres", dsn="secret:nope", table=table))
    assert err.reason is Reason.INVALID_ARGUMENT and err.metadata.get("field") == "dsn"
    # Files a DSN names (libpq reads them on the sink's host) stay under allowed_paths too.
    for param in ("sslkey", "passfile", "sslrootcert"):
        err = refused(lambda p=param: create(f"pg{p}", "postgres", dsn=f"{PG} {p}={_isolated_home / 'auth.json'}",
                                             table=table))
        assert err.reason is Reason.INVALID_ARGUMENT and err.metadata.get("field") == "dsn", (param, err)
    # A webhook URL carrying a token, by name: validated resolved, stored and shown as the name.
    call(proc.address, root_policy, secrets_pb2_grpc, "SecretServiceStub", "SetSecret",
         secrets_pb2.SetSecretRequest(name="secrets/hookurl", value=f"https://hooks.example/{KEY}"))
    hook = create("hookref", "webhook", url="secret:hookurl", headers={"Authorization": "secret:hookurl"}).sink
    assert hook.config["url"] == "secret:hookurl" and hook.config["headers"]["Authorization"] == "secret:hookurl"
    stored = next(d for d in json.loads((data / "sinks.json").read_text()) if d["id"] == "hookref")
    assert KEY not in json.dumps(stored)  # the definition keeps the name, not the value
    assert _mode(data / "sinks.json") == 0o600 and _mode(data) == 0o700


def test_secret_cli_set_list_delete(service_process, root_policy, tmp_path, _isolated_home):
    proc = service_process("sink", "--data-dir", str(tmp_path / "sink"), env={"HEADWATER_SINK_DASHBOARD_PORT": "-1"})
    env = {**os.environ, "HEADWATER_HOME": str(_isolated_home), "HEADWATER_SINK_ADDRESS": proc.address}

    def cli(*args, stdin=""):
        return run_headwater(["secret", *args], input=stdin, env=env, timeout=60)

    assert cli("set", "pgpass", stdin="s3cr3t-value\n").returncode == 0
    assert cli("set", "other", "--value", "v2").returncode == 0
    out = cli("list")
    assert out.returncode == 0 and out.stdout.split() == ["other", "pgpass"] and "s3cr3t" not in out.stdout
    assert (_isolated_home / "secrets" / "pgpass").read_text() == "s3cr3t-value"
    assert cli("delete", "pgpass").returncode == 0
    assert cli("list").stdout.split() == ["other"]
    bad = cli("delete", "pgpass")
    assert bad.returncode != 0 and "does not exist" in bad.stderr
    bad = cli("set", "../../etc/x", "--value", "v")
    assert bad.returncode != 0 and "not valid" in bad.stderr
