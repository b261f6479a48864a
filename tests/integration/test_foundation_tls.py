"""TLS on every port: gRPC and /metrics serve TLS when a certificate and key are configured."""

from __future__ import annotations

import http.client
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from headwater.channel import sync_channel
from headwater.errors import HeadwaterError, Reason
from headwater.procs import ServiceProcess, free_port, headwater_cmd
from headwater.v1 import processing_pb2 as pb
from headwater.v1 import processing_pb2_grpc as pb_grpc
from tests.conftest import conn_for

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI needed to make a certificate")


@pytest.fixture
def cert(tmp_path):
    key, crt = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(crt), "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
    return crt, key


def test_tls_grpc_and_metrics(cert, root_policy, _isolated_home):
    crt, key = cert
    grpc_port, metrics_port = free_port(), free_port()
    proc = ServiceProcess("processing", [*headwater_cmd(), "serve", "processing", "--port", str(grpc_port),
                                         "--metrics-port", str(metrics_port)],
                          env={"HEADWATER_HOME": str(_isolated_home), "HEADWATER_TLS_CERT_FILE": str(crt),
                               "HEADWATER_TLS_KEY_FILE": str(key)},
                          address=f"localhost:{grpc_port}")
    # Health over plaintext would be refused by the TLS port: wait for the listening line only.
    proc.start(timeout=30, check_health=False)
    try:
        address = f"localhost:{grpc_port}"
        creds = grpc.ssl_channel_credentials(root_certificates=crt.read_bytes())
        with grpc.secure_channel(address, creds) as ch:
            resp = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
        conn = conn_for(address, root_policy)
        with sync_channel(conn, root_certificates=crt.read_bytes()) as ch:
            jobs = pb_grpc.ProcessingServiceStub(ch).ListJobs(pb.ListJobsRequest(), timeout=10).jobs
        assert list(jobs) == []
        # Plaintext is refused on the TLS port.
        with grpc.insecure_channel(address) as ch:
            with pytest.raises(grpc.RpcError) as info:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
        assert HeadwaterError.from_rpc_error(info.value).reason in (Reason.SERVICE_BUSY, Reason.SERVICE_TIMEOUT)
        ctx = ssl.create_default_context(cafile=str(crt))
        body = urllib.request.urlopen(f"https://localhost:{metrics_port}/metrics", context=ctx, timeout=10).read()
        assert b"headwater_rpc_requests_total" in body
    finally:
        proc.kill()


@pytest.mark.parametrize("name,marker", [("sink", "sink dashboard on "), ("ingestion", "ingestion http on ")])
def test_tls_on_the_http_ports(cert, _isolated_home, name, marker):
    """The dashboard and HTTP ingest serve HTTPS with the same certificate."""
    crt, key = cert
    proc = ServiceProcess(name, [*headwater_cmd(), "serve", name, "--port", "0", "--metrics-port", "-1"],
                          env={"HEADWATER_HOME": str(_isolated_home), "HEADWATER_TLS_CERT_FILE": str(crt),
                               "HEADWATER_TLS_KEY_FILE": str(key), "HEADWATER_SINK_DASHBOARD_PORT": "0",
                               "HEADWATER_INGESTION_HTTP_PORT": "0"})
    proc.start(timeout=30, check_health=False)
    try:
        line = next(line for line in proc.lines if marker in line)
        port = int(line.rsplit(":", 1)[1].strip("/"))
        ctx = ssl.create_default_context(cafile=str(crt))
        url = f"https://localhost:{port}/" if name == "sink" else f"https://localhost:{port}/nohub/messages"
        try:
            status = urllib.request.urlopen(url, context=ctx, timeout=10).status
        except urllib.error.HTTPError as exc:  # ingest refuses an unsigned POST: still over TLS
            status = exc.code
        assert status in (200, 401, 404, 405)
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            urllib.request.urlopen(f"http://localhost:{port}/", timeout=5).read()
    finally:
        proc.kill()
