"""AvroEncoder, the async client and the book's example against a real registry process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from headwater.errors import HeadwaterError, Reason
from headwater.schemaregistry import SchemaRegistryClient, SharedAccessKeyCredential
from headwater.schemaregistry.avroencoder import (
    AvroEncoder,
    InvalidContentError,
    MessageContent,
)
from tests.conftest import ROOT
from tests.integration import registry_support
from tests.integration.registry_support import (
    ONE_TRY,
    TRIP_V1,
    TRIP_V2,
    client,
)

store_args = registry_support.store_args  # the sqlite/postgres fixture


@pytest.fixture
def registry(service_process, store_args, tmp_path):
    return service_process("registry", *store_args)


class FakeEventData:
    """The message protocol azure-schemaregistry-avroencoder uses (EventData implements it)."""

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body, self.content_type = body, content_type

    @classmethod
    def from_message_content(cls, content: bytes, content_type: str, **kwargs) -> FakeEventData:
        return cls(content, content_type)

    def __message_content__(self) -> MessageContent:
        return MessageContent(content=self.body, content_type=self.content_type)


def test_encode_decode_roundtrip_with_auto_register(registry, root_policy):
    with client(registry.address, root_policy) as c:
        encoder = AvroEncoder(client=c, group_name="trips", auto_register=True)
        msg = encoder.encode({"tripId": "t1", "fare": 12.5}, schema=TRIP_V1)
        props = c.get_schema_properties("trips", "demo.Trip", TRIP_V1, "Avro")
        assert msg["content_type"] == f"avro/binary+{props.id}"
        assert encoder.decode(msg) == {"tripId": "t1", "fare": 12.5}
        event = encoder.encode({"tripId": "t2", "fare": 1.0}, schema=TRIP_V1, message_type=FakeEventData)
        assert isinstance(event, FakeEventData)
        assert encoder.decode(event) == {"tripId": "t2", "fare": 1.0}
        # The reader's view: v1 data read with v2 gets v2's default.
        assert encoder.decode(msg, readers_schema=TRIP_V2) == {"tripId": "t1", "fare": 12.5, "tip": 0.0}


def test_decoding_with_a_fresh_client_fetches_the_schema_by_id(registry, root_policy):
    with client(registry.address, root_policy) as c:
        msg = AvroEncoder(client=c, group_name="trips", auto_register=True).encode(
            {"tripId": "t1", "fare": 2.0}, schema=TRIP_V2)
    with client(registry.address, root_policy) as c2:
        assert AvroEncoder(client=c2).decode(msg) == {"tripId": "t1", "fare": 2.0, "tip": 0.0}


def test_value_not_matching_schema_refused(registry, root_policy):
    with client(registry.address, root_policy) as c:
        encoder = AvroEncoder(client=c, group_name="trips", auto_register=True)
        with pytest.raises(InvalidContentError) as err:
            encoder.encode({"tripId": "t1", "fare": "twelve"}, schema=TRIP_V1)
        assert "fare" in str(err.value)
        with pytest.raises(InvalidContentError) as err:
            encoder.encode({"fare": 1.0}, schema=TRIP_V1)
        assert "tripId" in str(err.value)
        msg = encoder.encode({"tripId": "t1", "fare": 1.0}, schema=TRIP_V1)
        with pytest.raises(InvalidContentError):
            encoder.decode({"content": msg["content"][:3], "content_type": msg["content_type"]})
        with pytest.raises(InvalidContentError, match="not avro/binary"):
            encoder.decode({"content": msg["content"], "content_type": "application/json"})


def test_without_auto_register_an_unknown_schema_is_not_found(registry, root_policy):
    with client(registry.address, root_policy, retry_policy=ONE_TRY) as c:
        c.create_schema_group("trips", "Avro", "backward")
        encoder = AvroEncoder(client=c, group_name="trips", auto_register=False)
        with pytest.raises(HeadwaterError) as err:
            encoder.encode({"tripId": "t1", "fare": 1.0}, schema=TRIP_V1)
        assert err.value.reason is Reason.RESOURCE_NOT_FOUND
        c.register_schema("trips", "demo.Trip", TRIP_V1, "Avro")
        assert encoder.decode(encoder.encode({"tripId": "t1", "fare": 1.0}, schema=TRIP_V1))["tripId"] == "t1"


async def test_async_client_and_encoder(registry, root_policy):
    from headwater.schemaregistry.aio import SchemaRegistryClient as AsyncClient
    from headwater.schemaregistry.avroencoder.aio import AvroEncoder as AsyncEncoder

    cred = SharedAccessKeyCredential(root_policy.name, root_policy.key)
    async with AsyncClient(registry.address, cred) as c:
        props = await c.register_schema("trips", "demo.Trip", TRIP_V1, "Avro")
        assert (await c.get_schema(props.id)).definition == TRIP_V1
        assert (await c.get_schema_properties("trips", "demo.Trip", TRIP_V1, "Avro")).id == props.id
        assert [v.version async for v in c.list_schema_versions("trips", "demo.Trip")] == [1]
        encoder = AsyncEncoder(client=c, group_name="trips", auto_register=True)
        msg = await encoder.encode({"tripId": "a", "fare": 3.0}, schema=TRIP_V2)
        assert await encoder.decode(msg) == {"tripId": "a", "fare": 3.0, "tip": 0.0}
        with pytest.raises(HeadwaterError) as err:
            await c.get_schema("f" * 32)
        assert err.value.reason is Reason.RESOURCE_NOT_FOUND


def test_book_example_runs_with_only_import_and_namespace_changed(registry, root_policy, _isolated_home):
    env = {**os.environ, "HEADWATER_HOME": str(_isolated_home), "HEADWATER_REGISTRY_ADDRESS": registry.address}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "book_schema_registry.py")], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.strip().splitlines())
    assert lines["version"] == "1" and lines["definition matches"] == "True"
    assert lines["group"].startswith("book name: com.azure.sampleschema.avro.Trip format: Avro")
    with SchemaRegistryClient(registry.address, SharedAccessKeyCredential(root_policy.name, root_policy.key)) as c:
        assert json.loads(c.get_schema(lines["schema id"]).definition)["name"] == "Trip"
    # Running it again registers nothing new: same id.
    again = subprocess.run([sys.executable, str(ROOT / "examples" / "book_schema_registry.py")], env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert f"schema id: {lines['schema id']}" in again.stdout


def test_encode_into_headwater_eventdata(registry, root_policy):
    from headwater.eventhub import EventData

    with client(registry.address, root_policy) as c:
        encoder = AvroEncoder(client=c, group_name="trips", auto_register=True)
        event = encoder.encode({"tripId": "e1", "fare": 4.0}, schema=TRIP_V1, message_type=EventData)
        assert isinstance(event, EventData) and event.content_type.startswith("avro/binary+")
        assert encoder.decode(event) == {"tripId": "e1", "fare": 4.0}
