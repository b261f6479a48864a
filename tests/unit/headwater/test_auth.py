"""Shared access signatures: signing, verification, expiry, rights, connection strings."""

from __future__ import annotations

import pytest

from headwater.auth import (
    ConnectionString,
    Policy,
    PolicyStore,
    Right,
    generate_sas_token,
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


def test_root_policy_is_created_once_with_manage(tmp_path):
    a = PolicyStore(tmp_path / "auth.json").ensure().root()
    b = PolicyStore(tmp_path / "auth.json").ensure().root()
    assert a == b and Right.MANAGE in a.rights and len(a.key) >= 40
    assert oct((tmp_path / "auth.json").stat().st_mode & 0o777) == "0o600"


def test_token_round_trip_and_manage_implies_all(store):
    root = store.root()
    token = generate_sas_token("headwater://localhost:50051/trips", root.name, root.key)
    for right in Right:
        sas = verify_sas_token(token, store, right)
    assert sas.entity() == "trips" and sas.policy_name == root.name


def test_each_refusal(store):
    listen = store.get("listen-only")
    token = generate_sas_token("headwater://h/", listen.name, listen.key)
    verify_sas_token(token, store, Right.LISTEN)
    with pytest.raises(HeadwaterError) as info:
        verify_sas_token(token, store, Right.SEND)
    assert info.value.reason is Reason.PERMISSION_DENIED and "Send" in info.value.message
    expired = generate_sas_token("headwater://h/", listen.name, listen.key, ttl_s=-5)
    with pytest.raises(HeadwaterError, match="expired") as info:
        verify_sas_token(expired, store, Right.LISTEN)
    assert info.value.reason is Reason.UNAUTHORIZED
    forged = generate_sas_token("headwater://h/", listen.name, "d3Jvbmc=")
    with pytest.raises(HeadwaterError, match="signature") as info:
        verify_sas_token(forged, store, Right.LISTEN)
    assert info.value.reason is Reason.UNAUTHORIZED
    unknown = generate_sas_token("headwater://h/", "nobody", "eA==")
    with pytest.raises(HeadwaterError, match="unknown shared access policy"):
        verify_sas_token(unknown, store, Right.LISTEN)
    with pytest.raises(HeadwaterError, match="not a SharedAccessSignature"):
        verify_sas_token("Basic abc", store, Right.LISTEN)
    # Tampering with the expiry breaks the signature.
    sas = parse_sas_token(token)
    tampered = token.replace(f"se={sas.expiry}", f"se={sas.expiry + 3600}")
    with pytest.raises(HeadwaterError, match="signature"):
        verify_sas_token(tampered, store, Right.LISTEN)


def test_connection_string_parse_and_sign(store):
    root = store.root()
    text = (f"Endpoint=headwater://localhost:50061/;SharedAccessKeyName={root.name};"
            f"SharedAccessKey={root.key};EntityPath=trips")
    conn = ConnectionString.parse(text)
    assert conn.address == "localhost:50061" and conn.entity_path == "trips"
    assert str(conn) == text
    verify_sas_token(conn.token("trips"), store, Right.SEND)
    assert ConnectionString.parse("Endpoint=headwaters://example:443/").use_tls
    with pytest.raises(HeadwaterError, match="no Endpoint"):
        ConnectionString.parse("SharedAccessKeyName=x")
    with pytest.raises(HeadwaterError, match="Key=Value"):
        ConnectionString.parse("Endpoint=headwater://h:1/;garbage")
