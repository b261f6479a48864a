"""Shared access signatures: signing, verification as Event Hubs does it, policies, connection strings."""

from __future__ import annotations

import json

import pytest

from headwater.auth import (
    AUTH_FAILED,
    Authenticator,
    ConnectionString,
    Namespace,
    Policy,
    PolicyStore,
    RefusalLog,
    Right,
    client_host,
    generate_sas_token,
    parse_rights,
    parse_sas_token,
    verify_sas_token,
)
from headwater.errors import HeadwaterError, Reason


@pytest.fixture
def store(tmp_path):
    s = PolicyStore(tmp_path / "auth.json").ensure()
    s.put(Policy("listen-only", "bGlzdGVu", frozenset({Right.LISTEN})))
    s.put(Policy("sender", "c2VuZA==", frozenset({Right.SEND})))
    return s


def _auth(store, **kw) -> Authenticator:
    return Authenticator(store, Namespace("headwater://events.example.com/"), **kw)


def test_root_policy_is_created_once_with_manage_and_two_keys(tmp_path):
    a = PolicyStore(tmp_path / "auth.json").ensure().root()
    b = PolicyStore(tmp_path / "auth.json").ensure().root()
    assert a == b and Right.MANAGE in a.rights and len(a.key) >= 40 and a.secondary_key != a.key
    assert oct((tmp_path / "auth.json").stat().st_mode & 0o777) == "0o600"


def test_token_round_trip_and_manage_implies_all(store):
    root = store.root()
    token = generate_sas_token("headwater://localhost:50051/trips", root.name, root.key)
    for right in Right:
        sas = verify_sas_token(token, store, right)
    assert sas.entity() == "trips" and sas.policy_name == root.name


def _refused(auth, token, **kw) -> str:
    with pytest.raises(HeadwaterError) as info:
        auth.authenticate(token, **kw)
    assert info.value.reason is Reason.UNAUTHORIZED and info.value.message == AUTH_FAILED
    return info.value.detail


def test_every_authentication_failure_has_one_message(store):
    auth = _auth(store)
    ns = "headwater://events.example.com/"
    listen = store.get("listen-only")
    good = generate_sas_token(ns, listen.name, listen.key)
    assert auth.authenticate(good).policy.name == "listen-only"
    details = [
        _refused(auth, None),
        _refused(auth, "Basic abc"),
        _refused(auth, generate_sas_token(ns, listen.name, listen.key, ttl_s=-5)),
        _refused(auth, generate_sas_token(ns, listen.name, "d3Jvbmc=")),
        _refused(auth, generate_sas_token(ns, "nobody", "eA==")),
        _refused(auth, generate_sas_token("headwater://other.example.com/", listen.name, listen.key)),
        _refused(auth, generate_sas_token(ns + "hub/partitions/0", listen.name, listen.key)),
        _refused(auth, "SharedAccessSignature " + "x" * 5000),
    ]
    assert len(set(details)) == len(details)  # the log says which check failed; the client never does
    sas = parse_sas_token(good)
    tampered = good.replace(f"se={sas.expiry}", f"se={sas.expiry + 3600}")
    assert "signed" in _refused(auth, tampered)


def test_rights_and_scope_are_separate_from_authentication(store):
    auth = _auth(store)
    listen = store.get("listen-only")
    caller = auth.authenticate(generate_sas_token("sb://EVENTS.example.com:9999/trips", listen.name, listen.key))
    assert caller.entity == "trips"  # scheme, case of the host and port do not matter
    caller.require(Right.LISTEN)
    with pytest.raises(HeadwaterError) as info:
        caller.require(Right.SEND)
    assert info.value.reason is Reason.PERMISSION_DENIED and "Send" in info.value.message
    with pytest.raises(HeadwaterError, match="namespace-scoped"):
        caller.require_namespace("CreateHub")
    caller.require_entity("trips")
    with pytest.raises(HeadwaterError, match="scoped to 'trips'"):
        caller.require_entity("other")


def test_maximum_lifetime(store):
    auth = _auth(store, max_lifetime_s=3600)
    root = store.root()
    ns = "headwater://events.example.com/"
    auth.authenticate(generate_sas_token(ns, root.name, root.key, ttl_s=3600))
    assert "max_token_lifetime_s" in _refused(auth, generate_sas_token(ns, root.name, root.key, ttl_s=10**10))
    _auth(store).authenticate(generate_sas_token(ns, root.name, root.key, ttl_s=10**8))  # 0 = no limit


def test_secondary_key_and_renew(store):
    auth = _auth(store)
    ns = "headwater://events.example.com/"
    root = store.root()
    auth.authenticate(generate_sas_token(ns, root.name, root.secondary_key))
    renewed = store.renew(root.name, "", "primary")
    assert renewed.key != root.key and renewed.secondary_key == root.secondary_key
    _refused(auth, generate_sas_token(ns, root.name, root.key))
    auth.authenticate(generate_sas_token(ns, root.name, root.secondary_key))


def test_hub_policy_signs_only_for_its_hub(store):
    auth = _auth(store)
    ns = "headwater://events.example.com/"
    hub_policy = store.create(Policy("trips-send", "a2V5", parse_rights(["send"]), hub="trips"))
    assert auth.authenticate(generate_sas_token(ns + "trips", hub_policy.name, hub_policy.key)).entity == "trips"
    _refused(auth, generate_sas_token(ns, hub_policy.name, hub_policy.key))
    _refused(auth, generate_sas_token(ns + "other", hub_policy.name, hub_policy.key))
    with pytest.raises(HeadwaterError) as info:
        store.create(Policy("trips-send", "a2V5", parse_rights(["listen"]), hub="trips"))
    assert info.value.reason is Reason.RESOURCE_ALREADY_EXISTS


def test_store_reloads_changes_from_another_process(tmp_path):
    a = PolicyStore(tmp_path / "auth.json").ensure()
    b = PolicyStore(tmp_path / "auth.json").ensure()
    b.create(Policy("new", "a2V5", parse_rights(["listen"])))
    assert a.get("new") is not None
    a.delete("new")
    assert b.get("new") is None
    assert oct((tmp_path / "auth.json").stat().st_mode & 0o777) == "0o600"
    data = json.loads((tmp_path / "auth.json").read_text())
    assert {"primary_key", "secondary_key", "rights", "hub"} <= set(data["policies"][0])
    with pytest.raises(HeadwaterError) as info:
        a.delete(a.root().name)
    assert info.value.reason is Reason.PRECONDITION_FAILED


def test_parse_rights():
    assert parse_rights(["manage"]) == frozenset(Right)
    assert parse_rights(["Send", "listen"]) == {Right.SEND, Right.LISTEN}
    with pytest.raises(HeadwaterError, match="unknown right"):
        parse_rights(["admin"])
    with pytest.raises(HeadwaterError, match="at least one right"):
        parse_rights([""])


def test_refusal_log_once_per_client_per_interval(caplog):
    import logging

    refusals = RefusalLog(logging.getLogger("t"), interval_s=60)
    assert refusals.note("10.0.0.1", "GetHub", "x")
    assert not any(refusals.note("10.0.0.1", "GetHub", "x") for _ in range(100))
    assert refusals.note("10.0.0.2", "GetHub", "x")
    assert client_host("ipv4:10.0.0.1:5555") == "10.0.0.1"
    assert client_host("ipv6:%5B::1%5D:5555") == "::1"


def test_default_namespace_is_this_machine(store):
    auth = Authenticator(store, Namespace())
    root = store.root()
    for host in ("localhost", "127.0.0.1", "[::1]"):
        auth.authenticate(generate_sas_token(f"headwater://{host}:50051/", root.name, root.key))
    _refused(auth, generate_sas_token("headwater://evil.example.com/", root.name, root.key))


def test_connection_string_parse_and_sign(store):
    root = store.root()
    text = (f"Endpoint=headwater://localhost:50061/;SharedAccessKeyName={root.name};"
            f"SharedAccessKey={root.key};EntityPath=trips")
    conn = ConnectionString.parse(text)
    assert conn.address == "localhost:50061" and conn.entity_path == "trips"
    assert conn.namespace_uri == "headwater://localhost/"
    assert str(conn) == text
    assert parse_sas_token(conn.token("trips")).resource == "headwater://localhost/trips"
    verify_sas_token(conn.token("trips"), store, Right.SEND)
    assert ConnectionString.parse("Endpoint=headwaters://example:443/").use_tls
    with pytest.raises(HeadwaterError, match="no Endpoint"):
        ConnectionString.parse("SharedAccessKeyName=x")
    with pytest.raises(HeadwaterError, match="Key=Value"):
        ConnectionString.parse("Endpoint=headwater://h:1/;garbage")


def test_connection_string_as_a_credential(store):
    auth = _auth(store)
    root = store.root()
    hub_policy = store.create(Policy("hub-listen", "a2V5", parse_rights(["listen"]), hub="trips"))
    base = "Endpoint=sb://events.example.com/;SharedAccessKeyName={};SharedAccessKey={}"
    assert auth.authenticate_connection_string(base.format(root.name, root.secondary_key)).entity == ""
    caller = auth.authenticate_connection_string(base.format("hub-listen", hub_policy.key) + ";EntityPath=trips")
    assert caller.entity == "trips" and caller.policy.hub == "trips"
    for bad in (base.format(root.name, "d3Jvbmc="), base.format("hub-listen", hub_policy.key),
                "Endpoint=sb://evil.example.com/;SharedAccessKeyName=x;SharedAccessKey=y", "garbage"):
        with pytest.raises(HeadwaterError) as info:
            auth.authenticate_connection_string(bad)
        assert info.value.message == AUTH_FAILED
    token = generate_sas_token("headwater://events.example.com/", root.name, root.key)
    assert auth.authenticate_connection_string(
        f"Endpoint=sb://events.example.com/;SharedAccessSignature={token}").policy.name == root.name
