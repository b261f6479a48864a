"""Avro bodies and content types, shared by the sync and async encoders and the Avro serializer plugin.

A body is the Avro binary encoding of one value (no header, no schema); the
content type names the writer schema: ``avro/binary+<schema id>``, the format
azure-schemaregistry-avroencoder uses.
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, TypedDict

from headwater.errors import HeadwaterError, Reason

__all__ = [
    "CONTENT_TYPE_PREFIX",
    "AvroCodec",
    "InvalidContentError",
    "InvalidSchemaError",
    "MessageContent",
    "content_type_for",
    "message_content",
    "schema_id_of",
    "to_message",
]

CONTENT_TYPE_PREFIX = "avro/binary+"


class MessageContent(TypedDict):
    """A body and its content type (azure.schemaregistry.MessageContent)."""

    content: bytes
    content_type: str


class InvalidSchemaError(HeadwaterError):
    """The schema is not a valid Avro schema (or cannot be resolved against the writer's)."""

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(Reason.INVALID_ARGUMENT, message, metadata={k: v for k, v in (details or {}).items()})
        self.details = dict(details or {})


class InvalidContentError(HeadwaterError):
    """A value does not match its schema, or a body cannot be decoded."""

    def __init__(self, message: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(Reason.INVALID_ARGUMENT, message, metadata={k: v for k, v in (details or {}).items()})
        self.details = dict(details or {})


def to_message(message_type: Any, body: bytes, content_type: str, **kwargs: Any) -> Any:
    """``message_type.from_message_content(...)`` (Azure's protocol), or for a type without it
    (an EventData-like class taking the body): ``message_type(body)`` with ``content_type`` set."""
    factory = getattr(message_type, "from_message_content", None)
    if factory is not None:
        return factory(body, content_type, **kwargs)
    message = message_type(body)
    message.content_type = content_type
    return message


def content_type_for(schema_id: str) -> str:
    return CONTENT_TYPE_PREFIX + schema_id


def schema_id_of(content_type: str) -> str:
    """The schema id in ``avro/binary+<id>``; InvalidContentError for anything else."""
    ct = (content_type or "").strip()
    mime, plus, schema_id = ct.partition("+")
    if mime.strip().lower() != "avro/binary" or not plus or not schema_id.strip():
        raise InvalidContentError(f"content type {content_type!r} is not avro/binary+<schema id>",
                                  {"content_type": content_type})
    return schema_id.strip()


def message_content(message: Any) -> tuple[bytes, str]:
    """(body, content type) of a MessageContent dict, an object with ``__message_content__``
    (Azure's protocol), or an event with ``body`` and ``content_type``."""
    if isinstance(message, Mapping):
        content, ctype = message.get("content"), message.get("content_type")
    elif hasattr(message, "__message_content__"):
        mc = message.__message_content__()
        content, ctype = mc["content"], mc["content_type"]
    else:
        content, ctype = getattr(message, "body", None), getattr(message, "content_type", None)
    if content is not None and not isinstance(content, (bytes, bytearray, memoryview)):
        try:
            content = b"".join(content)  # EventData.body may be an iterable of byte chunks
        except TypeError:
            content = None
    if content is None or not ctype:
        raise InvalidContentError("the message has no content and content type: pass a MessageContent "
                                  "({'content': bytes, 'content_type': str}) or an event with body and content_type")
    return bytes(content), str(ctype)


class AvroCodec:
    """Parsed-schema cache plus fastavro's schemaless writer and reader."""

    def __init__(self, cache_size: int = 1024) -> None:
        self._parsed: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._size = cache_size

    def parse(self, definition: str) -> Any:
        with self._lock:
            hit = self._parsed.get(definition)
            if hit is not None:
                return hit
        import fastavro

        try:
            parsed = fastavro.parse_schema(json.loads(definition))
        except Exception as exc:  # noqa: BLE001 - any parser failure is the schema's fault
            raise InvalidSchemaError(f"invalid Avro schema: {exc}", {"schema": definition[:200]}) from None
        with self._lock:
            self._parsed[definition] = parsed
            while len(self._parsed) > self._size:
                self._parsed.popitem(last=False)
        return parsed

    @staticmethod
    def fullname(parsed: Any) -> str:
        name = parsed.get("name") if isinstance(parsed, dict) else None
        if not isinstance(name, str) or not name:
            raise InvalidSchemaError("the schema must be a named type (a record) to be registered by name")
        return name

    def write(self, value: Any, parsed: Any) -> bytes:
        import fastavro
        from fastavro.validation import ValidationError, validate

        buf = io.BytesIO()
        try:
            validate(value, parsed, raise_errors=True)
            fastavro.schemaless_writer(buf, parsed, value)
        except ValidationError as exc:
            raise InvalidContentError(f"the value does not match schema {parsed.get('name', '')}: "
                                      f"{_validation_message(exc)}", {"schema": parsed.get("name", "")}) from None
        except (ValueError, TypeError, AttributeError, KeyError, OverflowError) as exc:
            raise InvalidContentError(f"the value does not match schema {parsed.get('name', '')}: {exc}",
                                      {"schema": parsed.get("name", "")}) from None
        return buf.getvalue()

    @staticmethod
    def read(body: bytes, writer: Any, reader: Any | None = None) -> Any:
        import fastavro

        try:
            stream = io.BytesIO(body)
            value = fastavro.schemaless_reader(stream, writer, reader)
        except Exception as exc:  # noqa: BLE001 - truncated or garbled bytes surface in many types
            raise InvalidContentError(f"cannot decode the body with schema {writer.get('name', '')}: "
                                      f"{type(exc).__name__}: {exc}", {"schema": writer.get("name", "")}) from None
        if stream.tell() != len(body):
            raise InvalidContentError(f"the body has {len(body) - stream.tell()} bytes left over after decoding "
                                      f"with schema {writer.get('name', '')}: wrong schema id?")
        return value


def _validation_message(exc: Exception) -> str:
    errors = getattr(exc, "errors", None) or [exc]
    return "; ".join(str(e) for e in errors[:5])
