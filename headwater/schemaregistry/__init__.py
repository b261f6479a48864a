"""The Schema Registry SDK, in the names of azure-schemaregistry.

::

    from headwater.schemaregistry import SchemaRegistryClient, SharedAccessKeyCredential

    client = SchemaRegistryClient("localhost:50052", SharedAccessKeyCredential(name, key))
    with client:
        props = client.register_schema("trips", "Trip", definition, "Avro")
        schema = client.get_schema(props.id)

``headwater.schemaregistry.avroencoder.AvroEncoder`` encodes and decodes
events with registered Avro schemas; ``headwater.schemaregistry.aio`` has the
asyncio client.
"""

from __future__ import annotations

from headwater.schemaregistry._client import SchemaRegistryClient
from headwater.schemaregistry._common import (
    ApiVersion,
    AzureNamedKeyCredential,
    CompatibilityMode,
    DefaultAzureCredential,
    Schema,
    SchemaFormat,
    SchemaGroup,
    SchemaProperties,
    SharedAccessKeyCredential,
)

__all__ = [
    "ApiVersion",
    "AzureNamedKeyCredential",
    "CompatibilityMode",
    "DefaultAzureCredential",
    "Schema",
    "SchemaFormat",
    "SchemaGroup",
    "SchemaProperties",
    "SchemaRegistryClient",
    "SharedAccessKeyCredential",
]
