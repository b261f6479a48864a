"""Jobs cannot make the processing service import code, nor read files outside its allowed folders.

Before: ``Job.udfs`` took any ``NAME=module:function`` (``os:system``) and ``reference_path`` any server
path (auth.json). Now UDFs come from plugins or the operator's ``udfs`` setting, and a reference file
must lie under ``allowed_paths`` (default the data folder).
"""

from __future__ import annotations

import orjson

from headwater.errors import Reason
from headwater.services.processing.config import ProcessingConfig
from headwater.services.processing.engine_adapter import JobRuntime
from headwater.v1 import processing_pb2 as pb
from headwater.v1 import processing_pb2_grpc
from tests.security.support import call, refused

T0 = 1_700_000_000_000_000


def _job(name: str, query: str, udfs=(), inputs=()) -> pb.Job:
    return pb.Job(name=f"jobs/{name}", query=query, udfs=list(udfs),
                  inputs=[pb.JobInput(alias="i", kind=pb.INPUT_KIND_STREAM, hub="hubs/h"), *inputs],
                  outputs=[pb.JobOutput(alias="o", sink="sinks/s")])


def _create(proc, policy, job: pb.Job):
    return call(proc.address, policy, processing_pb2_grpc, "ProcessingServiceStub", "CreateJob",
                pb.CreateJobRequest(job=job))


def _ops_udfs(tmp_path):
    path = tmp_path / "ops_udfs.py"
    path.write_text("def shout(s):\n    return str(s).upper() + '!'\n")
    return f"{path}:shout"


def test_client_supplied_module_function_is_refused(service_process, root_policy, tmp_path):
    marker = tmp_path / "pwned"
    cfg = tmp_path / "processing.yaml"
    cfg.write_text(f"processing:\n  udfs:\n    shout: {_ops_udfs(tmp_path)}\n")
    proc = service_process("processing", "--data-dir", str(tmp_path / "proc"), "--config", str(cfg))
    query = f"SELECT UDF.x('touch {marker}') AS r INTO [o] FROM [i]"
    for spec in ("x=os:system", "x=subprocess:getoutput", "os:system", f"x={tmp_path / 'ops_udfs.py'}:shout"):
        err = refused(_create, proc, root_policy, _job("evil", query, [spec]))
        assert err.reason is Reason.INVALID_ARGUMENT and err.metadata.get("field") == "job.udfs", err
        assert "cannot load code" in err.message and "udfs" in err.message
    err = refused(_create, proc, root_policy, _job("unknown", "SELECT UDF.nope(v) AS r INTO [o] FROM [i]", ["nope"]))
    assert err.metadata.get("field") == "job.udfs" and "no UDF of that name" in err.message
    # The operator's UDF is there for every job; a job may name it.
    made = _create(proc, root_policy, _job("ok", "SELECT UDF.shout(v) AS r INTO [o] FROM [i]", ["shout"])).job
    assert list(made.udfs) == ["shout"]
    assert not marker.exists()


def test_operator_udf_runs_in_a_job(tmp_path):
    config = ProcessingConfig(data_dir=str(tmp_path / "proc"), udfs={"shout": _ops_udfs(tmp_path)})
    rt = JobRuntime(_job("run", "SELECT UDF.shout(v) AS r INTO [o] FROM [i]"), config=config)
    rt.feed("i", [orjson.dumps({"v": "hi"})], ["application/json"], [T0], ["0"])
    rt.rt.flush()
    assert [r["r"] for r in rt.take_outputs()["o"]] == ["HI!"]


def test_reference_path_stays_under_allowed_paths(service_process, root_policy, tmp_path, _isolated_home):
    data = tmp_path / "proc"
    proc = service_process("processing", "--data-dir", str(data))
    (data / "refs").mkdir(parents=True, exist_ok=True)
    (data / "refs" / "cities.json").write_text('[{"city": "Oslo"}]')
    (data / "refs" / "escape.json").symlink_to(_isolated_home / "auth.json")
    query = "SELECT i.v, r.city INTO [o] FROM [i] JOIN [r] ON i.city = r.city"

    def ref(path: str) -> pb.JobInput:
        return pb.JobInput(alias="r", kind=pb.INPUT_KIND_REFERENCE, reference_path=path)

    for n, path in enumerate([str(_isolated_home / "auth.json"), "../hwhome/auth.json", "/etc/passwd",
                              "refs/escape.json", "refs/../../hwhome/auth.json"]):
        err = refused(_create, proc, root_policy, _job(f"ref{n}", query, inputs=[ref(path)]))
        assert err.reason is Reason.INVALID_ARGUMENT and err.metadata.get("field") == "reference_path", (path, err)
        assert root_policy.key not in err.message
    # Under the data folder (relative or absolute) it is fine.
    _create(proc, root_policy, _job("refok", query, inputs=[ref("refs/cities.json")]))
    _create(proc, root_policy, _job("refabs", query, inputs=[ref(str(data / "refs" / "cities.json"))]))
