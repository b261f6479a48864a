"""The asyncio AvroEncoder (azure.schemaregistry.encoder.avroencoder.aio's shape)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from headwater.schemaregistry._common import SchemaFormat
from headwater.schemaregistry.avroencoder._codec import (
    AvroCodec,
    MessageContent,
    content_type_for,
    message_content,
    schema_id_of,
    to_message,
)

__all__ = ["AvroEncoder"]


class AvroEncoder:
    """Async twin of :class:`headwater.schemaregistry.avroencoder.AvroEncoder`; takes the aio client."""

    def __init__(self, *, client: Any, group_name: str | None = None, auto_register: bool = False,
                 **_kwargs: Any) -> None:
        self._client, self._group, self._auto_register = client, group_name, auto_register
        self._codec = AvroCodec()
        self._ids: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.close()

    async def encode(self, content: Mapping[str, Any], *, schema: str, message_type: Any = None,
                     request_options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        parsed = self._codec.parse(schema)
        body = self._codec.write(content, parsed)
        schema_id = self._ids.get(schema)
        if schema_id is None:
            if not self._group:
                raise TypeError("AvroEncoder needs group_name= to encode")
            name = self._codec.fullname(parsed)
            call = self._client.register_schema if self._auto_register else self._client.get_schema_properties
            schema_id = self._ids[schema] = (await call(self._group, name, schema, SchemaFormat.AVRO)).id
        ctype = content_type_for(schema_id)
        if message_type is not None:
            return to_message(message_type, body, ctype, **kwargs)
        return MessageContent(content=body, content_type=ctype)

    async def decode(self, message: Any, *, readers_schema: str | None = None,
                     request_options: Mapping[str, Any] | None = None, **_kwargs: Any) -> dict[str, Any]:
        body, ctype = message_content(message)
        writer = self._codec.parse((await self._client.get_schema(schema_id_of(ctype))).definition)
        reader = self._codec.parse(readers_schema) if readers_schema else None
        decoded: dict[str, Any] = self._codec.read(body, writer, reader)
        return decoded
