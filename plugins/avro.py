"""The Avro serializer: event bodies encoded with registry schemas (``avro/binary+<schema id>``).

Each event names its writer schema in its content type. Decoding fetches that
schema from the registry (once per id) and resolves the data to the *reader's
view*, so a producer can move to a new compatible version mid-stream without
stopping a query:

- ``reader_schema`` given: every event is resolved to it (events it cannot
  read are conversion errors);
- otherwise (the default, ``reader_view="latest"``): each event is resolved to
  the latest version of its schema (group and name) known to the registry;
  the latest is fetched again when an event arrives written with a newer
  version. Older events get the new fields' defaults, so ``SELECT *`` carries
  the fields a new version adds. When the latest cannot read an older
  writer (a FORWARD-only change), the event is decoded with its own schema.
- ``reader_view="writer"``: every event decoded with its own writer schema.

Events that cannot be decoded (not ``avro/binary+<id>``, an unknown id, bytes
that do not match the schema) go to ``on_error`` (the engine counts them as
data conversion errors and keeps a sample) and are dropped; a registry that
cannot be reached raises its transient error instead, so no data is dropped
for a network blip.

The registry is ``client=`` (a :class:`headwater.schemaregistry.SchemaRegistryClient`)
or, for the instance the plugin registers, one built on first use from
``$HEADWATER_REGISTRY_CONNECTION_STRING`` or ``$HEADWATER_REGISTRY_ADDRESS``
(default ``localhost:50052``) with the local key (DefaultAzureCredential).

Files: ``read_file`` reads Avro object container files (``.avro``), which
carry their own schema and need no registry.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

from headwater.errors import HeadwaterError, Reason
from headwater.hookspecs import hookimpl
from headwater.schemaregistry.avroencoder._codec import (
    AvroCodec,
    InvalidContentError,
    schema_id_of,
)
from headwater.serializers import DecodeError, Serializer

__all__ = ["AvroSerializer"]


def _default_client() -> Any:
    from headwater.schemaregistry import DefaultAzureCredential, SchemaRegistryClient

    conn = os.environ.get("HEADWATER_REGISTRY_CONNECTION_STRING", "")
    if conn:
        return SchemaRegistryClient.from_connection_string(conn)
    return SchemaRegistryClient(os.environ.get("HEADWATER_REGISTRY_ADDRESS", "localhost:50052"),
                                DefaultAzureCredential())


class AvroSerializer(Serializer):
    """Avro bodies with registry schemas; see the module docstring."""

    name = "avro"
    content_types = ("avro/binary",)
    file_suffixes = (".avro",)
    magic = b"Obj\x01"  # an object container file
    uses_registry = True

    def __init__(self, client: Any = None, *, reader_schema: str | None = None, reader_view: str = "latest",
                 writer_schema: str | None = None) -> None:
        if reader_view not in ("latest", "writer"):
            raise ValueError(f"reader_view must be 'latest' or 'writer', not {reader_view!r}")
        self._client = client
        self.reader_schema = reader_schema
        self.reader_view = reader_view
        self.writer_schema = writer_schema
        self._codec = AvroCodec()
        self._lock = threading.Lock()
        #: schema id -> (parsed writer, group, name, version)
        self._writers: dict[str, tuple[Any, str, str, int]] = {}
        #: (group, name) -> (parsed latest, version)
        self._latest: dict[tuple[str, str], tuple[Any, int]] = {}

    def configured(self, registry: Any = None, **options: Any) -> AvroSerializer:
        """A copy bound to the ``registry`` client and options (``reader_schema``, ``reader_view``,
        ``writer_schema``)."""
        opts = {"reader_schema": self.reader_schema, "reader_view": self.reader_view,
                "writer_schema": self.writer_schema, **options}
        return AvroSerializer(registry if registry is not None else self._client, **opts)

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = _default_client()
            return self._client

    # -- schemas -------------------------------------------------------------------------
    def _writer(self, schema_id: str) -> tuple[Any, str, str, int]:
        hit = self._writers.get(schema_id)
        if hit is None:
            schema = self.client.get_schema(schema_id)
            p = schema.properties
            hit = (self._codec.parse(schema.definition), p.group_name, p.name, p.version)
            self._writers[schema_id] = hit
        return hit

    def _reader_for(self, group: str, name: str, version: int) -> Any:
        key = (group, name)
        hit = self._latest.get(key)
        if hit is None or hit[1] < version:
            latest = self.client.get_schema(group_name=group, name=name)
            hit = (self._codec.parse(latest.definition), latest.properties.version)
            self._latest[key] = hit
        return hit[0]

    def _plans(self, types: Sequence[str]) -> dict[str, tuple[Any, Any] | InvalidContentError]:
        """(writer, reader or None), or the error, for each distinct content type of a batch.

        Writers are looked up first, so a batch where v1 and v2 events mix reads
        the v1 events in v2's view too.
        """
        writers: dict[str, tuple[Any, str, str, int] | InvalidContentError] = {}
        for ctype in dict.fromkeys(types):
            try:
                schema_id = schema_id_of(ctype)
                try:
                    writers[ctype] = self._writer(schema_id)
                except HeadwaterError as exc:
                    if exc.reason is not Reason.RESOURCE_NOT_FOUND:
                        raise
                    raise InvalidContentError(f"no schema with id {schema_id!r} in the registry") from None
            except InvalidContentError as exc:
                writers[ctype] = exc
        newest: dict[tuple[str, str], int] = {}
        for w in writers.values():
            if not isinstance(w, Exception):
                newest[(w[1], w[2])] = max(newest.get((w[1], w[2]), 0), w[3])
        plans: dict[str, tuple[Any, Any] | InvalidContentError] = {}
        fixed = self._codec.parse(self.reader_schema) if self.reader_schema else None
        for ctype, w in writers.items():
            if isinstance(w, Exception):
                plans[ctype] = w
            elif fixed is not None:
                plans[ctype] = (w[0], fixed)
            elif self.reader_view == "writer":
                plans[ctype] = (w[0], None)
            else:
                reader = self._reader_for(w[1], w[2], newest[(w[1], w[2])])
                plans[ctype] = (w[0], None if reader is w[0] else reader)
        return plans

    # -- Serializer ------------------------------------------------------------------------
    def decode(self, bodies: list[bytes], content_type: str | Sequence[str] = "",
               on_error: Callable[[int, Exception], None] | None = None) -> list[dict[str, Any]]:
        """Rows of ``bodies``; ``content_type`` is one type for all or one per body."""
        return self.decode_with_index(bodies, content_type, on_error)[0]

    def decode_events(self, bodies: list[bytes], content_types: Sequence[str],
                      on_error: Callable[[int, Exception], None] | None = None) -> list[dict[str, Any]]:
        """Rows of events that each carry their own content type (the hub's events)."""
        return self.decode_with_index(bodies, list(content_types), on_error)[0]

    def decode_with_index(self, bodies: list[bytes], content_type: str | Sequence[str] = "",
                          on_error: Callable[[int, Exception], None] | None = None
                          ) -> tuple[list[dict[str, Any]], list[int]]:
        if isinstance(content_type, str):
            types: Sequence[str] = [content_type] * len(bodies)
        else:
            types = content_type
            if len(types) != len(bodies):
                raise ValueError(f"{len(bodies)} bodies but {len(types)} content types")
        plans = self._plans(types)
        rows: list[dict[str, Any]] = []
        index: list[int] = []
        read = self._codec.read
        for i, body in enumerate(bodies):
            plan = plans[types[i]]
            try:
                if isinstance(plan, Exception):
                    raise plan
                writer, reader = plan
                try:
                    row = read(body, writer, reader)
                except InvalidContentError:
                    if reader is None or self.reader_schema:
                        raise
                    row = read(body, writer, None)  # the latest cannot read this writer: its own view
            except InvalidContentError as exc:
                if on_error is None:
                    raise DecodeError(f"event {i}: {exc.message}") from None
                on_error(i, DecodeError(exc.message))
                continue
            rows.append(row)
            index.append(i)
        return rows, index

    def encode(self, rows: list[dict[str, Any]]) -> list[bytes]:
        """One body per row: schemaless with ``writer_schema`` when set (its registry id goes in the
        content type), else one self-describing Avro container per row with an inferred schema."""
        import fastavro

        if self.writer_schema:
            parsed = self._codec.parse(self.writer_schema)
            return [self._codec.write(r, parsed) for r in rows]
        out = []
        for r in rows:
            r = {k: v if v is None or type(v) in _PY_TO_AVRO else str(v) for k, v in r.items()}
            schema = fastavro.parse_schema(_infer_schema(r))
            buf = io.BytesIO()
            fastavro.writer(buf, schema, [r])
            out.append(buf.getvalue())
        return out

    def read_file(self, data: bytes) -> list[dict[str, Any]]:
        """Every record of an Avro object container file."""
        import fastavro

        try:
            # a datum that is not a record fails dict() and is reported as below
            return [dict(cast("dict[str, Any]", r)) for r in fastavro.reader(io.BytesIO(data))]
        except Exception as exc:  # noqa: BLE001 - fastavro raises many kinds for a bad file
            raise DecodeError(f"not an Avro container file: {exc}") from None


_PY_TO_AVRO = {bool: "boolean", int: "long", float: "double", str: "string", bytes: "bytes"}


def _infer_schema(row: dict[str, Any]) -> dict[str, Any]:
    fields = []
    for key, value in row.items():
        typ = _PY_TO_AVRO.get(type(value), "string")
        fields.append({"name": key, "type": ["null", typ], "default": None})
    return {"type": "record", "name": "Row", "namespace": "headwater", "fields": fields}


@hookimpl
def register_serializers(register: Callable[[Any], None]) -> None:
    register(AvroSerializer())
