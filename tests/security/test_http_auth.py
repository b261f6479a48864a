"""HTTP ingest applies the gRPC rules: namespace, hub scope, lifetime, one message, before the body."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import grpc
import pytest

from headwater.auth import AUTH_FAILED, generate_sas_token
from headwater.v1 import ingestion_pb2, ingestion_pb2_grpc
from tests.security.conftest import NAMESPACE


@pytest.fixture(scope="module")
def http(stack):
    m = re.search(r"ingestion http on (\S+):(\d+)", stack.procs["ingestion"].output())
    assert m, stack.procs["ingestion"].output()
    root = stack.policies["root"]
    md = [("authorization", generate_sas_token(NAMESPACE, root.name, root.key))]
    with grpc.insecure_channel(stack.address("ingestion")) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        for hub in ("web", "web2"):
            stub.CreateHub(ingestion_pb2.CreateHubRequest(hub_id=hub, hub=ingestion_pb2.Hub(partition_count=1)),
                           metadata=md)
    return f"http://127.0.0.1:{m.group(2)}"


def _post(url: str, token: str | None, body: bytes = b'{"a": 1}') -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", token)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_http_ingest_rules(stack, http):
    root, send, listen = (stack.policies[n] for n in ("root", "send", "listen"))
    assert _post(f"{http}/web/messages", generate_sas_token(NAMESPACE, send.name, send.key))[0] == 201
    assert _post(f"{http}/web/messages", generate_sas_token(NAMESPACE + "web", send.name, send.key))[0] == 201
    refused = [
        None,
        stack.token("forged"),
        stack.token("expired"),
        generate_sas_token("headwater://other.example.com/web", send.name, send.key),
        generate_sas_token(NAMESPACE, send.name, send.key, ttl_s=400 * 24 * 3600),  # past max_token_lifetime_s
    ]
    for token in refused:
        status, body = _post(f"{http}/web/messages", token)
        assert (status, body["error"]["message"]) == (401, AUTH_FAILED), token
    # Refused before the body is read: garbage without a token is 401, not 400.
    assert _post(f"{http}/web/messages", None, b"\xff not json")[0] == 401
    status, body = _post(f"{http}/web2/messages", generate_sas_token(NAMESPACE + "web", root.name, root.key))
    assert status == 403 and "scoped" in body["error"]["message"]
    status, body = _post(f"{http}/web/messages", generate_sas_token(NAMESPACE, listen.name, listen.key))
    assert status == 403 and "Send" in body["error"]["message"]
