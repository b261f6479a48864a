"""SDK pieces that need no server: namespaces, credentials, formats, modes, content types."""

from __future__ import annotations

import pytest

from headwater.auth import PolicyStore
from headwater.errors import HeadwaterError
from headwater.schemaregistry import (
    CompatibilityMode,
    DefaultAzureCredential,
    SchemaFormat,
    SharedAccessKeyCredential,
)
from headwater.schemaregistry._common import connection_for, namespace_address
from headwater.schemaregistry.avroencoder._codec import (
    InvalidContentError,
    message_content,
    schema_id_of,
)


@pytest.mark.parametrize("text,address,tls", [
    ("localhost:50052", "localhost:50052", False),
    ("registry.example", "registry.example:50051", False),  # the namespace endpoint
    ("headwater://h:1234/", "h:1234", False),
    ("headwaters://h:1234/", "h:1234", True),
])
def test_namespace_forms(text, address, tls):
    assert namespace_address(text) == (address, tls)


def test_credentials(monkeypatch, _isolated_home):
    cred = SharedAccessKeyCredential("p", "s3cret")
    assert "s3cret" not in repr(cred)
    conn = connection_for("localhost:1", cred)
    assert conn.shared_access_key_name == "p" and conn.address == "localhost:1"
    with pytest.raises(HeadwaterError):
        SharedAccessKeyCredential("", "k")
    with pytest.raises(HeadwaterError, match="SharedAccessKeyCredential"):
        connection_for("localhost:1", object())
    # DefaultAzureCredential: environment first, then the local root policy.
    monkeypatch.setenv("HEADWATER_SHARED_ACCESS_KEY_NAME", "envpolicy")
    monkeypatch.setenv("HEADWATER_SHARED_ACCESS_KEY", "envkey")
    assert DefaultAzureCredential().policy_name == "envpolicy"
    monkeypatch.delenv("HEADWATER_SHARED_ACCESS_KEY_NAME")
    monkeypatch.setenv("HEADWATER_CONNECTION_STRING", "Endpoint=headwater://h:1/;SharedAccessKeyName=cs;SharedAccessKey=x")
    assert DefaultAzureCredential().policy_name == "cs"
    monkeypatch.delenv("HEADWATER_CONNECTION_STRING")
    with pytest.raises(HeadwaterError, match="found no key"):
        DefaultAzureCredential()
    root = PolicyStore(_isolated_home / "auth.json").ensure().root()
    assert (DefaultAzureCredential().policy_name, DefaultAzureCredential().key) == (root.name, root.key)


def test_formats_and_modes_parse_leniently_and_refuse_clearly():
    assert SchemaFormat.parse("avro") is SchemaFormat.AVRO and SchemaFormat.parse("Json") is SchemaFormat.JSON
    assert CompatibilityMode.parse("full-transitive") is CompatibilityMode.FULL_TRANSITIVE
    with pytest.raises(HeadwaterError, match="unknown schema format"):
        SchemaFormat.parse("protobuf")
    with pytest.raises(HeadwaterError, match="unknown compatibility mode"):
        CompatibilityMode.parse("sideways")
    for mode in CompatibilityMode:
        assert CompatibilityMode.from_pb(mode.to_pb()) is mode


def test_content_types_and_messages():
    assert schema_id_of("avro/binary+abc") == "abc"
    assert schema_id_of("Avro/Binary + abc ") == "abc"
    for bad in ("avro/binary", "application/json+abc", "", "avro/binary+"):
        with pytest.raises(InvalidContentError):
            schema_id_of(bad)
    assert message_content({"content": b"x", "content_type": "t"}) == (b"x", "t")

    class Event:
        body = (b"a", b"b")
        content_type = "t"

    assert message_content(Event()) == (b"ab", "t")
    with pytest.raises(InvalidContentError, match="no content"):
        message_content({"content": b"x"})
