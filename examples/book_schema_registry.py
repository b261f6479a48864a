"""The book's section 9 (Schema drift) registry example, run against Headwater.

Changed from the book: the two imports (``azure.schemaregistry`` and
``azure.identity`` -> ``headwater.schemaregistry``) and the namespace (the
namespace endpoint's ``host:port``, the one ``headwater connection-string``
prints, instead of ``<SCHEMA-NAMESPACE>.servicebus.windows.net``: the client
asks it where the registry is). The namespace is ``$HEADWATER_NAMESPACE``, else
``$HEADWATER_REGISTRY_ADDRESS`` (a registry's own address works too), else the
endpoint of ``$HEADWATER_CONNECTION_STRING``, else the local stack's
(``$HEADWATER_HOME/endpoints.json`` from ``headwater up``, else localhost:50051).
The book's placeholders ``<SCHEMA_GROUPNAME>`` and ``<SCHEMA_NAME>`` are filled
from the environment. ``DefaultAzureCredential`` finds the local root key
(``$HEADWATER_HOME/auth.json``) or ``HEADWATER_SHARED_ACCESS_KEY_NAME`` /
``HEADWATER_SHARED_ACCESS_KEY``.

Run: ``make up`` (or ``headwater up``), then ``python examples/book_schema_registry.py``.
"""

# ruff: noqa: I001 - the book's two imports stay one line each, as in the book
import os

from headwater.schemaregistry import SchemaRegistryClient
from headwater.schemaregistry import DefaultAzureCredential

from headwater.namespace import local_namespace

SCHEMA_NAMESPACE = (os.environ.get("HEADWATER_NAMESPACE") or os.environ.get("HEADWATER_REGISTRY_ADDRESS")
                    or local_namespace())
SCHEMA_GROUPNAME = os.environ.get("SCHEMA_GROUPNAME", "book")
SCHEMA_NAME = os.environ.get("SCHEMA_NAME", "com.azure.sampleschema.avro.Trip")

# --- the book, section 9 ---------------------------------------------------------------
sampleSchema = """
{"namespace": "com.azure.sampleschema.avro",
"type": "record",
"name": "Trip",
"fields": [
  {"name": "tripId", "type": "string"},
  {"name": "startLocation", "type": "string"},
  {"name": "endLocation", "type": "string"}
]
}"""
schema_registry_client = SchemaRegistryClient(
    fully_qualified_namespace=SCHEMA_NAMESPACE,
    credential=DefaultAzureCredential())
with schema_registry_client:
    schema_properties = schema_registry_client.register_schema(
        SCHEMA_GROUPNAME, SCHEMA_NAME, sampleSchema, "Avro")
schema_id = schema_properties.id
with schema_registry_client:
    schema = schema_registry_client.get_schema(schema_id)
    definition = schema.definition
    properties = schema.properties
# --- end of the book's code ------------------------------------------------------------

print(f"schema id: {schema_id}")
print(f"version: {properties.version}")
print(f"group: {properties.group_name} name: {properties.name} format: {properties.format.value}")
print(f"definition matches: {definition == sampleSchema}")
