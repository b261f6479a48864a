"""AvroEncoder, as azure-schemaregistry-avroencoder has it.

``encode(value, schema=...)`` checks the value against the schema, registers
(``auto_register=True``) or looks up the schema's id, and returns the Avro body
with content type ``avro/binary+<schema id>``: a :class:`MessageContent` dict,
or ``message_type.from_message_content(content, content_type)`` (EventData).
``decode(message)`` reads the id from the content type, fetches the writer
schema (cached) and decodes, optionally resolving to ``readers_schema``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from headwater.schemaregistry._common import SchemaFormat
from headwater.schemaregistry.avroencoder._codec import (
    AvroCodec,
    InvalidContentError,
    InvalidSchemaError,
    MessageContent,
    content_type_for,
    message_content,
    schema_id_of,
    to_message,
)

__all__ = ["AvroEncoder", "InvalidContentError", "InvalidSchemaError", "MessageContent"]


class AvroEncoder:
    """Encodes and decodes Avro event bodies with schemas from a registry.

    :keyword client: a :class:`headwater.schemaregistry.SchemaRegistryClient`.
    :keyword group_name: the schema group to register in or look up from (needed to encode).
    :keyword auto_register: register schemas not yet registered (needs Send) instead of only
        looking them up (Listen).
    """

    def __init__(self, *, client: Any, group_name: str | None = None, auto_register: bool = False,
                 **_kwargs: Any) -> None:
        self._client = client
        self._group = group_name
        self._auto_register = auto_register
        self._codec = AvroCodec()
        self._ids: dict[str, str] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _schema_id(self, definition: str, parsed: Any) -> str:
        schema_id = self._ids.get(definition)
        if schema_id is None:
            if not self._group:
                raise TypeError("AvroEncoder needs group_name= to encode")
            name = self._codec.fullname(parsed)
            if self._auto_register:
                props = self._client.register_schema(self._group, name, definition, SchemaFormat.AVRO)
            else:
                props = self._client.get_schema_properties(self._group, name, definition, SchemaFormat.AVRO)
            schema_id = self._ids[definition] = props.id
        return schema_id

    def encode(self, content: Mapping[str, Any], *, schema: str, message_type: Any = None,
               request_options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        """Encode ``content`` with ``schema``; InvalidContentError when it does not match."""
        if not schema:
            raise TypeError("encode needs schema=")
        parsed = self._codec.parse(schema)
        body = self._codec.write(content, parsed)
        ctype = content_type_for(self._schema_id(schema, parsed))
        if message_type is not None:
            return to_message(message_type, body, ctype, **kwargs)
        return MessageContent(content=body, content_type=ctype)

    def decode(self, message: Any, *, readers_schema: str | None = None,
               request_options: Mapping[str, Any] | None = None, **_kwargs: Any) -> dict[str, Any]:
        """Decode a MessageContent or event; resolve to ``readers_schema`` when given."""
        body, ctype = message_content(message)
        schema_id = schema_id_of(ctype)
        writer = self._codec.parse(self._client.get_schema(schema_id).definition)
        reader = self._codec.parse(readers_schema) if readers_schema else None
        decoded: dict[str, Any] = self._codec.read(body, writer, reader)
        return decoded
