"""Helpers for the Kafka endpoint tests: the real ingestion process, its Kafka port, client settings."""

from __future__ import annotations

import socket
import struct

import grpc

from headwater.auth import Policy, generate_sas_token
from headwater.procs import ServiceProcess
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.integration.ingestion_support import conn_str
from tests.wait import wait_until

KAFKA_LINE = "ingestion kafka on "


def kafka_port(proc: ServiceProcess, timeout: float = 10.0) -> int:
    """The bound Kafka port, read from the service's ``ingestion kafka on host:port`` line."""
    line = wait_until(lambda: next((x for x in list(proc.lines) if KAFKA_LINE in x), None), timeout=timeout,
                      every=0.05, fail=False)
    if line is None:
        raise AssertionError("the service printed no Kafka port:\n" + "\n".join(proc.lines))
    return int(line.rsplit(":", 1)[1])


def create_hub(proc: ServiceProcess, policy: Policy, name: str, partitions: int = 4) -> None:
    token = generate_sas_token(f"headwater://{proc.address}/", policy.name, policy.key)
    with grpc.insecure_channel(proc.address) as ch:
        ingestion_pb2_grpc.IngestionServiceStub(ch).CreateHub(
            ingestion_pb2.CreateHubRequest(hub_id=name, hub=ingestion_pb2.Hub(partition_count=partitions)),
            metadata=[("authorization", token)])


def password(proc: ServiceProcess, policy: Policy) -> str:
    """The SASL password: a connection string, exactly as Event Hubs takes it."""
    return conn_str(proc.address, policy)


def confluent_conf(port: int, proc: ServiceProcess, policy: Policy, **extra) -> dict:
    """librdkafka settings as for Event Hubs (SASL_PLAINTEXT: the test service has no TLS)."""
    return {"bootstrap.servers": f"127.0.0.1:{port}", "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": "$ConnectionString",
            "sasl.password": password(proc, policy), **extra}


def kafka_python_conf(port: int, proc: ServiceProcess, policy: Policy, **extra) -> dict:
    """kafka-python / aiokafka settings as for Event Hubs."""
    return {"bootstrap_servers": f"127.0.0.1:{port}", "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN", "sasl_plain_username": "$ConnectionString",
            "sasl_plain_password": password(proc, policy), **extra}


class Raw:
    """A bare Kafka connection speaking the library's request/response structs."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.correlation = 0

    def call(self, request, response_class, version: int):
        self.correlation += 1
        request.with_header(correlation_id=self.correlation, client_id="raw-test")
        self.sock.sendall(request.encode(version=version, header=True, framed=True))
        size = struct.unpack(">i", self._read(4))[0]
        data = self._read(size)
        resp = response_class.decode(data, version=version, header=True)
        assert resp.header.correlation_id == self.correlation
        return resp

    def _read(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            assert chunk, "the endpoint closed the connection"
            buf += chunk
        return buf

    def close(self) -> None:
        self.sock.close()
