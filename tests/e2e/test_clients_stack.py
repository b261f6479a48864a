"""A first hour without surprises: one `headwater up --ephemeral-ports` stack, used as a new
user and as a client in another language would, from directories outside the clone.

- the CLI finds the stack from any directory below its `.headwater` and says where it looked
  (never creating a key) when it finds none;
- the namespace connection string reaches every service (GetNamespace), the book's registry
  code runs with only that string;
- reflection v1 and v1alpha on every service;
- a second `up` is refused in one line and leaves the running stack's files alone; a busy port
  is named in one line by `up` and by `serve`; `| head` prints no traceback;
- `headwater down` from anywhere stops the services and the `up` driver.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from headwater.procs import headwater_cmd
from tests.zygote import run_headwater

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.xdist_group("clients-stack")


def _env(home_dir: Path, **extra: str) -> dict[str, str]:
    """No HEADWATER_HOME: the CLI must find the stack itself. HOME is a fresh folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADWATER_")}
    env.update({"HOME": str(home_dir), "PYTHONUNBUFFERED": "1", **extra})
    return env


def _run(argv, cwd: Path, env: dict[str, str], timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    return run_headwater(list(argv), cwd=cwd, env=env, timeout=timeout, **kw)


class Stack:
    def __init__(self, base: Path) -> None:
        self.project = base / "project"  # the stack's state: project/.headwater
        self.state = self.project / ".headwater"
        self.state.mkdir(parents=True)
        self.deep = self.project / "a" / "b"  # a directory below it
        self.deep.mkdir(parents=True)
        self.elsewhere = base / "elsewhere"  # no .headwater above it, HOME without one
        self.elsewhere.mkdir()
        self.user_home = base / "userhome"
        self.user_home.mkdir()
        self.env = _env(self.user_home)
        self.proc = subprocess.Popen([*headwater_cmd(), "up", "-f", str(ROOT / "compose.yaml"), "--ephemeral-ports"],
                                     cwd=self.project, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError("headwater up exited:\n" + "".join(self.lines))
            self.lines.append(line)
            if line.startswith("headwater up: to use the CLI") or line.startswith("headwater up: the CLI works"):
                break
        self.endpoints = json.loads((self.state / "endpoints.json").read_text())

    def cli(self, *argv: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
        return _run(argv, cwd or self.deep, {**self.env, **env})


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    s = Stack(tmp_path_factory.mktemp("clients-stack"))
    yield s
    if s.proc.poll() is None:
        _run(["down"], s.deep, s.env)
        try:
            s.proc.wait(30)
        except subprocess.TimeoutExpired:
            s.proc.kill()


def test_cli_finds_the_stack_from_a_directory_below_it(stack):
    made = stack.cli("hub", "create", "anywhere", "--partitions", "2")
    assert made.returncode == 0, made.stderr
    assert "anywhere" in stack.cli("hub", "list").stdout
    conn = stack.cli("connection-string").stdout.strip()
    assert conn.startswith(f"Endpoint=headwater://{stack.endpoints['ingestion']}/;")
    key = json.loads((stack.state / "auth.json").read_text())["policies"][0]["primary_key"]
    assert f"SharedAccessKey={key}" in conn  # the services' key, not a new one


def test_cli_elsewhere_says_where_it_looked_and_creates_no_key(stack):
    out = stack.cli("hub", "list", cwd=stack.elsewhere)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert str(stack.user_home / ".headwater" / "auth.json") in out.stderr
    assert "HEADWATER_HOME" in out.stderr
    assert not (stack.user_home / ".headwater").exists()
    assert not (stack.elsewhere / ".headwater").exists()
    out = stack.cli("connection-string", cwd=stack.elsewhere)
    assert out.returncode == 1 and not (stack.user_home / ".headwater").exists()
    # With HEADWATER_HOME it works from anywhere.
    assert stack.cli("hub", "list", cwd=stack.elsewhere, HEADWATER_HOME=str(stack.state)).returncode == 0


def test_namespace_connection_string_reaches_every_service(stack):
    from headwater.auth import ConnectionString
    from headwater.namespace import discover

    conn_text = stack.cli("connection-string").stdout.strip()
    ns = discover(ConnectionString.parse(conn_text), refresh=True)
    assert ns.discovered
    for name in ("ingestion", "registry", "processing", "sink"):
        assert ns.address(name) == stack.endpoints[name]
    assert ns.http_ingest_url == stack.endpoints["http_ingest_url"]
    assert ns.dashboard_url == stack.endpoints["dashboard_url"]
    # The CLI of every area, from elsewhere, with nothing but the namespace connection string.
    env = {"HEADWATER_CONNECTION_STRING": conn_text}
    made = stack.cli("schema", "group", "create", "ns-group", "--format", "avro", cwd=stack.elsewhere, **env)
    assert made.returncode == 0, made.stderr
    assert "ns-group" in stack.cli("schema", "group", "list", cwd=stack.elsewhere, **env).stdout
    assert stack.cli("job", "list", "--json", cwd=stack.elsewhere, **env).stdout.strip() == "[]"
    assert stack.cli("sink", "list", cwd=stack.elsewhere, **env).returncode == 0


def test_book_registry_code_runs_with_the_namespace_connection_string(stack):
    conn_text = stack.cli("connection-string").stdout.strip()
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "book_schema_registry.py")],
                         env={**stack.env, "HEADWATER_CONNECTION_STRING": conn_text}, cwd=stack.elsewhere,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "definition matches: True" in out.stdout
    # And from below the project with nothing set at all: endpoints.json and auth.json.
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "book_schema_registry.py")],
                         env=stack.env, cwd=stack.deep, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr


def test_registry_client_from_the_namespace_connection_string(stack):
    from headwater.schemaregistry import SchemaRegistryClient

    conn_text = stack.cli("connection-string").stdout.strip()
    with SchemaRegistryClient.from_connection_string(conn_text) as client:
        assert client.create_schema_group("ns-sdk", "Avro").name == "ns-sdk"


def _reflected(address: str, module) -> set[str]:
    from grpc_reflection.v1alpha import reflection_pb2

    method = f"/{module}.ServerReflection/ServerReflectionInfo"
    with grpc.insecure_channel(address) as ch:
        call = ch.stream_stream(method, request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString)
        responses = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        return {s.name for r in responses for s in r.list_services_response.service}


@pytest.mark.parametrize("module", ["grpc.reflection.v1", "grpc.reflection.v1alpha"])
def test_reflection_v1_and_v1alpha_on_every_service(stack, module):
    expected = {"ingestion": "headwater.v1.IngestionService", "registry": "headwater.v1.SchemaRegistryService",
                "processing": "headwater.v1.ProcessingService", "sink": "headwater.v1.SinkService"}
    for name, service in expected.items():
        names = _reflected(stack.endpoints[name], module)
        assert service in names and "grpc.reflection.v1.ServerReflection" in names, (name, names)
    assert "headwater.v1.NamespaceService" in _reflected(stack.endpoints["ingestion"], module)


def test_closed_pipe_prints_no_traceback(stack):
    assert stack.cli("hub", "create", "piped", "--partitions", "1").returncode == 0
    lines = "".join(json.dumps({"n": i}) + "\n" for i in range(3000))
    sent = subprocess.run([*headwater_cmd(), "send", "piped"], input=lines, cwd=stack.deep, env=stack.env,
                          capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    shell = f"{' '.join(headwater_cmd())} read piped --from earliest | head -n 2"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", shell], cwd=stack.deep, env=stack.env,
                         capture_output=True, text=True, timeout=60)
    assert len(out.stdout.splitlines()) == 2
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr, out.stderr


def test_user_errors_are_one_line(stack):
    out = stack.cli("hub", "create", "zero", "--partitions", "0")
    assert out.returncode == 2 and "at least 1" in out.stderr and "Traceback" not in out.stderr
    assert "zero" not in stack.cli("hub", "list").stdout
    out = stack.cli("send", "anywhere", str(stack.elsewhere / "missing.jsonl"))
    assert out.returncode == 1 and "Traceback" not in out.stderr and "missing.jsonl" in out.stderr, out.stderr


def test_second_up_is_refused_and_leaves_the_running_stack_alone(stack):
    before = {n: (stack.state / n).read_text() for n in ("endpoints.json", "up.pids")}
    out = _run(["up", "-f", str(ROOT / "compose.yaml")], stack.deep, stack.env, timeout=60)
    assert out.returncode == 1
    assert "already running" in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert {n: (stack.state / n).read_text() for n in before} == before
    assert stack.cli("hub", "list").returncode == 0


def _busy_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


def test_up_names_the_busy_port_in_one_line(tmp_path):
    sock, port = _busy_port()
    with sock:
        env = _env(tmp_path, HEADWATER_HOME=str(tmp_path / "other"), HEADWATER_INGESTION_GRPC_PORT=str(port))
        out = _run(["up", "-f", str(ROOT / "compose.yaml")], tmp_path, env)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()], out.stderr
    assert f"ingestion: gRPC port {port} is in use" in out.stderr
    assert not (tmp_path / "other" / "endpoints.json").exists() and not (tmp_path / "other" / "up.pids").exists()


def test_serve_names_the_busy_port(tmp_path):
    sock, port = _busy_port()
    with sock:
        env = _env(tmp_path, HEADWATER_HOME=str(tmp_path / "h"))
        out = _run(["serve", "registry", "--port", str(port), "--metrics-port", "-1"], tmp_path, env)
    assert out.returncode == 1
    assert f"gRPC port {port}" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_perf_skips_an_unreachable_peer_in_one_line(tmp_path):
    sock, port = _busy_port()
    sock.close()  # a port nothing listens on
    env = _env(tmp_path, HEADWATER_HOME=str(tmp_path / "h"))
    out = _run(["perf", "produce", "--events", "2000", "--batch-size", "500", "--producers", "1",
                "--nats-url", f"nats://127.0.0.1:{port}"], tmp_path, env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    assert [line for line in out.stderr.splitlines() if "NATS peer skipped" in line]
    assert "events/s" in out.stdout


def _stubs(stack):
    from headwater.auth import ConnectionString
    from headwater.channel import sync_channel
    from headwater.namespace import discover
    from headwater.v1 import (
        access_pb2_grpc,
        ingestion_pb2_grpc,
        processing_pb2_grpc,
        schema_registry_pb2_grpc,
        secrets_pb2_grpc,
        sink_pb2_grpc,
    )

    conn = ConnectionString.parse(stack.cli("connection-string").stdout.strip())
    ns = discover(conn)
    ingestion, sink = sync_channel(conn), sync_channel(conn, address=ns.sink)
    return {
        "ingestion": ingestion_pb2_grpc.IngestionServiceStub(ingestion),
        "registry": schema_registry_pb2_grpc.SchemaRegistryServiceStub(sync_channel(conn, address=ns.registry)),
        "processing": processing_pb2_grpc.ProcessingServiceStub(sync_channel(conn, address=ns.processing)),
        "sink": sink_pb2_grpc.SinkServiceStub(sink),
        "access": access_pb2_grpc.AccessServiceStub(ingestion),
        "secrets": secrets_pb2_grpc.SecretServiceStub(sink),
    }


def _error(call):
    from headwater.errors import HeadwaterError

    with pytest.raises(grpc.RpcError) as info:
        call()
    return HeadwaterError.from_rpc_error(info.value)


def test_garbage_page_tokens_are_invalid_argument_everywhere(stack):
    from headwater.errors import Reason
    from headwater.v1 import ingestion_pb2 as ipb
    from headwater.v1 import processing_pb2 as ppb
    from headwater.v1 import schema_registry_pb2 as rpb
    from headwater.v1 import sink_pb2 as spb

    s = _stubs(stack)
    assert stack.cli("hub", "create", "paged", "--partitions", "1").returncode == 0
    garbage = ["garbage", "MTA", "eyJrIjoiaW5nZXN0aW9uIiwidiI6ImEifQ", "5"]
    calls = {
        "ListHubs": lambda t: s["ingestion"].ListHubs(ipb.ListHubsRequest(page_token=t), timeout=10),
        "ListConsumerGroups": lambda t: s["ingestion"].ListConsumerGroups(
            ipb.ListConsumerGroupsRequest(parent="hubs/paged", page_token=t), timeout=10),
        "ListJobs": lambda t: s["processing"].ListJobs(ppb.ListJobsRequest(page_token=t), timeout=10),
        "ListSchemaGroups": lambda t: s["registry"].ListSchemaGroups(rpb.ListSchemaGroupsRequest(page_token=t),
                                                                     timeout=10),
        "ListSinks": lambda t: s["sink"].ListSinks(spb.ListSinksRequest(page_token=t), timeout=10),
    }
    for name, call in calls.items():
        call("")  # the first page works
        for token in garbage:
            err = _error(lambda call=call, token=token: call(token))
            assert err.reason is Reason.INVALID_ARGUMENT and err.metadata["field"] == "page_token", (name, token)
    # A real token of one list is not accepted by another service's list.
    from headwater.pagination import encode_page_token

    err = _error(lambda: calls["ListJobs"](encode_page_token("ingestion", "a")))
    assert err.reason is Reason.INVALID_ARGUMENT


def test_not_found_carries_the_same_metadata_keys_in_every_service(stack):
    from headwater.errors import Reason
    from headwater.v1 import ingestion_pb2 as ipb
    from headwater.v1 import processing_pb2 as ppb
    from headwater.v1 import schema_registry_pb2 as rpb
    from headwater.v1 import sink_pb2 as spb

    s = _stubs(stack)
    cases = {
        "ingestion": (lambda: s["ingestion"].GetHub(ipb.GetHubRequest(name="hubs/nope"), timeout=10), "hubs/nope"),
        "processing": (lambda: s["processing"].GetJob(ppb.GetJobRequest(name="jobs/nope"), timeout=10), "jobs/nope"),
        "registry": (lambda: s["registry"].GetSchemaGroup(rpb.GetSchemaGroupRequest(name="nope"), timeout=10),
                     "schemaGroups/nope"),
        "sink": (lambda: s["sink"].GetSink(spb.GetSinkRequest(name="sinks/nope"), timeout=10), "sinks/nope"),
    }
    for service, (call, resource) in cases.items():
        err = _error(call)
        assert err.reason is Reason.RESOURCE_NOT_FOUND, service
        assert err.metadata.get("service") == service and err.metadata.get("resource") == resource, err.metadata
    # The services' other areas too: access policies (ingestion), secrets (sink).
    from headwater.v1 import access_pb2, secrets_pb2

    access, secrets = s["access"], s["secrets"]
    for service, call, resource in (
            ("ingestion", lambda: access.GetPolicy(access_pb2.GetPolicyRequest(name="policies/nope"), timeout=10),
             "policies/nope"),
            ("ingestion", lambda: access.GetPolicy(access_pb2.GetPolicyRequest(name="hubs/h/policies/nope"),
                                                   timeout=10), "hubs/h/policies/nope"),
            ("sink", lambda: secrets.DeleteSecret(secrets_pb2.DeleteSecretRequest(name="secrets/nope"), timeout=10),
             "secrets/nope")):
        err = _error(call)
        assert err.reason is Reason.RESOURCE_NOT_FOUND, resource
        assert err.metadata == {"service": service, "resource": resource}, err.metadata


def test_down_from_anywhere_stops_the_services_and_the_driver(stack):
    from headwater.cli.up import read_pids

    pids = read_pids(stack.state / "up.pids")
    assert set(pids) == {"driver", "ingestion", "registry", "processing", "sink"}
    assert pids["driver"] == stack.proc.pid
    out = stack.cli("down", cwd=stack.deep)
    assert out.returncode == 0, out.stderr
    stack.proc.wait(30)  # the `headwater up` driver exits too
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not (stack.state / "endpoints.json").exists() and not (stack.state / "up.pids").exists()
    assert "nothing started" in stack.cli("down").stdout
