"""Key management from the CLI against real services: create, list, renew, delete policies,
hub-level policies; every service sees a change at once (no restart); auth.json stays 0600."""

from __future__ import annotations

import json
import os
import subprocess

import grpc
import pytest

from headwater.auth import ConnectionString, generate_sas_token
from headwater.v1 import (
    event_pb2,
    ingestion_pb2,
    ingestion_pb2_grpc,
    schema_registry_pb2,
    schema_registry_pb2_grpc,
)
from tests.security.conftest import NAMESPACE
from tests.zygote import run_headwater

OK, DENIED, UNAUTH = grpc.StatusCode.OK, grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED


def cli(stack, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "HEADWATER_HOME": str(stack.home),
           "HEADWATER_INGESTION_ADDRESS": stack.address("ingestion")}
    env.pop("HEADWATER_CONNECTION_STRING", None)
    done = run_headwater(list(args), env=env, timeout=60)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def _code(stack, service, fn, request, token) -> grpc.StatusCode:
    stub_class, method = fn
    return stack.call(service, stub_class, method, request, token, raw_token=True)


PUBLISH = (ingestion_pb2_grpc.IngestionServiceStub, "PublishEvents")
GET_PARTITION = (ingestion_pb2_grpc.IngestionServiceStub, "GetPartitionProperties")
REGISTER = (schema_registry_pb2_grpc.SchemaRegistryServiceStub, "RegisterSchema")
LIST_GROUPS = (schema_registry_pb2_grpc.SchemaRegistryServiceStub, "ListSchemaGroups")


def _publish(hub: str):
    return ingestion_pb2.PublishEventsRequest(hub=hub, events=[event_pb2.EventData(body=b"{}")])


def _register():
    return schema_registry_pb2.RegisterSchemaRequest(group_name="keys", name="s", definition='"string"')


@pytest.fixture(scope="session")
def hub(stack):
    """Hub ``keys`` on the worker's stack, made once for the stack's life (a module fixture
    made it again, ALREADY_EXISTS, when this module's tests were not run one after another)."""
    root = stack.policies["root"]
    md = [("authorization", generate_sas_token(NAMESPACE, root.name, root.key))]
    with grpc.insecure_channel(stack.address("ingestion")) as ch:
        ingestion_pb2_grpc.IngestionServiceStub(ch).CreateHub(
            ingestion_pb2.CreateHubRequest(hub_id="keys", hub=ingestion_pb2.Hub(partition_count=1)), metadata=md)
    return "keys"


def test_policy_lifecycle_from_the_cli(stack, hub):
    created = json.loads(cli(stack, "policy", "create", "sender", "--rights", "send", "--json").stdout)
    assert created["rights"] == "Send" and created["hub"] == "(namespace)"
    primary, secondary = created["primary_key"], created["secondary_key"]
    assert ConnectionString.parse(created["primary_connection_string"]).shared_access_key == primary

    listed = cli(stack, "policy", "list", "--json").stdout
    assert "sender" in listed and primary not in listed and secondary not in listed  # never keys
    assert {p["name"] for p in json.loads(listed)} >= {"RootManageSharedAccessKey", "sender"}

    def token(key: str, entity: str = "") -> str:
        return generate_sas_token(NAMESPACE + entity, "sender", key)

    # Every service accepts the new policy at once (they reload auth.json): Send, and only Send.
    assert _code(stack, "ingestion", PUBLISH, _publish(hub), token(primary)) == OK
    assert _code(stack, "ingestion", GET_PARTITION, ingestion_pb2.GetPartitionPropertiesRequest(
        name=f"hubs/{hub}/partitions/0"), token(primary)) == DENIED
    assert _code(stack, "registry", LIST_GROUPS, schema_registry_pb2.ListSchemaGroupsRequest(),
                 token(primary)) == DENIED
    assert _code(stack, "registry", REGISTER, _register(), token(primary)) not in (DENIED, UNAUTH)

    # Rotation: renew the primary; the old primary stops working everywhere, the secondary goes on.
    renewed = json.loads(cli(stack, "policy", "renew", "sender", "--key", "primary", "--json").stdout)
    assert renewed["primary_key"] != primary and renewed["secondary_key"] == secondary
    for service, fn, request in (("ingestion", PUBLISH, _publish(hub)), ("registry", REGISTER, _register())):
        assert _code(stack, service, fn, request, token(primary)) == UNAUTH
        assert _code(stack, service, fn, request, token(secondary)) not in (DENIED, UNAUTH)
        assert _code(stack, service, fn, request, token(renewed["primary_key"])) not in (DENIED, UNAUTH)

    text = cli(stack, "connection-string", "--policy", "sender", "--secondary").stdout.strip()
    assert ConnectionString.parse(text).shared_access_key == secondary
    root = stack.policies["root"]  # from the service (GetPolicyKeys) with a Manage connection string
    manage = f"Endpoint=headwater://{stack.address('ingestion')}/;SharedAccessKeyName={root.name};" \
             f"SharedAccessKey={root.key}"
    remote = cli(stack, "connection-string", "--policy", "sender", "--connection-string", manage).stdout.strip()
    assert ConnectionString.parse(remote).shared_access_key == renewed["primary_key"]

    cli(stack, "policy", "delete", "sender")
    for service, fn, request in (("ingestion", PUBLISH, _publish(hub)), ("registry", REGISTER, _register())):
        assert _code(stack, service, fn, request, token(secondary)) == UNAUTH
    assert oct((stack.home / "auth.json").stat().st_mode & 0o777) == "0o600"


def test_hub_level_policy_is_valid_for_its_hub_only(stack, hub):
    created = json.loads(cli(stack, "policy", "create", "hub-sender", "--rights", "send", "--hub", hub,
                             "--json").stdout)
    assert created["hub"] == hub
    key = created["primary_key"]
    assert ConnectionString.parse(created["primary_connection_string"]).entity_path == hub
    assert _code(stack, "ingestion", PUBLISH, _publish(hub),
                 generate_sas_token(NAMESPACE + hub, "hub-sender", key)) == OK
    # Its key signs for no other scope: the namespace, another hub, another service.
    for resource in (NAMESPACE, NAMESPACE + "other"):
        assert _code(stack, "ingestion", PUBLISH, _publish(hub),
                     generate_sas_token(resource, "hub-sender", key)) == UNAUTH
    assert _code(stack, "registry", REGISTER, _register(),
                 generate_sas_token(NAMESPACE + hub, "hub-sender", key)) == DENIED
    local = ConnectionString.parse(cli(stack, "connection-string", "--policy", "hub-sender").stdout.strip())
    assert (local.entity_path, local.shared_access_key) == (hub, key)
    assert "hub-sender" not in cli(stack, "policy", "list", "--hub", "nope-hub", "--json", check=False).stdout
    missing = cli(stack, "policy", "create", "x", "--rights", "send", "--hub", "no-such-hub", check=False)
    assert missing.returncode != 0 and "no-such-hub" in missing.stdout + missing.stderr


def test_policy_commands_need_manage_and_clear_input(stack):
    listen = stack.policies["listen"]
    conn = f"Endpoint=headwater://{stack.address('ingestion')}/;SharedAccessKeyName=listen;" \
           f"SharedAccessKey={listen.key}"
    denied = cli(stack, "policy", "list", "--connection-string", conn, check=False)
    assert denied.returncode != 0 and "Manage" in denied.stdout + denied.stderr
    bad = cli(stack, "policy", "create", "x", "--rights", "admin", check=False)
    assert bad.returncode != 0 and "unknown right" in bad.stdout + bad.stderr
    bad = cli(stack, "policy", "create", "bad\nname", "--rights", "send", check=False)
    assert bad.returncode != 0 and "INVALID_ARGUMENT" in bad.stdout + bad.stderr
    root = cli(stack, "policy", "delete", "RootManageSharedAccessKey", check=False)
    assert root.returncode != 0 and "cannot be deleted" in root.stdout + root.stderr
