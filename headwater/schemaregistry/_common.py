"""Shared by the sync and async clients: models, credentials, request and response mapping."""

from __future__ import annotations

import enum
import os
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from headwater.auth import ConnectionString, PolicyStore
from headwater.config import DEFAULT_PORTS, headwater_home
from headwater.errors import HeadwaterError, Reason
from headwater.v1 import schema_registry_pb2 as pb

__all__ = [
    "ApiVersion",
    "CompatibilityMode",
    "DefaultAzureCredential",
    "Schema",
    "SchemaFormat",
    "SchemaGroup",
    "SchemaProperties",
    "SharedAccessKeyCredential",
]

#: A bare host names the namespace endpoint (ingestion), which says where the registry is.
DEFAULT_PORT = DEFAULT_PORTS["ingestion"][0]


class ApiVersion(str, enum.Enum):
    """Contract versions the client speaks (azure-schemaregistry has the same enum)."""

    V1 = "headwater.v1"


class SchemaFormat(str, enum.Enum):
    """Schema formats, spelled as azure-schemaregistry spells them."""

    AVRO = "Avro"
    JSON = "Json"

    @classmethod
    def parse(cls, value: SchemaFormat | str) -> SchemaFormat:
        if isinstance(value, SchemaFormat):
            return value
        text = str(value).strip().lower()
        for member in cls:
            if text in (member.value.lower(), member.name.lower()) or (member is cls.JSON and text == "jsonschema"):
                return member
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"unknown schema format {value!r}: use Avro or Json",
                             metadata={"field": "format"})

    def to_pb(self) -> pb.SchemaFormat:
        return pb.SCHEMA_FORMAT_AVRO if self is SchemaFormat.AVRO else pb.SCHEMA_FORMAT_JSON

    @classmethod
    def from_pb(cls, value: int) -> SchemaFormat:
        return cls.AVRO if value == pb.SCHEMA_FORMAT_AVRO else cls.JSON


class CompatibilityMode(str, enum.Enum):
    """A group's compatibility mode (Confluent's names)."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @classmethod
    def parse(cls, value: CompatibilityMode | str) -> CompatibilityMode:
        if isinstance(value, CompatibilityMode):
            return value
        text = str(value).strip().upper().replace("-", "_")
        try:
            return cls(text)
        except ValueError:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"unknown compatibility mode {value!r}: use one of "
                                 f"{', '.join(m.value.lower().replace('_', '-') for m in cls)}",
                                 metadata={"field": "compatibility"}) from None

    def to_pb(self) -> pb.CompatibilityMode:
        mode: pb.CompatibilityMode = getattr(pb, f"COMPATIBILITY_MODE_{self.value}")
        return mode

    @classmethod
    def from_pb(cls, value: int) -> CompatibilityMode:
        return cls(pb.CompatibilityMode.Name(value).removeprefix("COMPATIBILITY_MODE_"))


def _time(ts: Timestamp | None) -> datetime | None:
    if ts is None or (ts.seconds == 0 and ts.nanos == 0):
        return None
    return ts.ToDatetime(tzinfo=UTC)


@dataclass(frozen=True)
class SchemaProperties:
    """Id, format, group, name and version of a schema version (azure-schemaregistry's SchemaProperties)."""

    id: str
    format: SchemaFormat
    group_name: str
    name: str
    version: int

    @classmethod
    def from_pb(cls, p: pb.SchemaProperties) -> SchemaProperties:
        return cls(p.id, SchemaFormat.from_pb(p.format), p.group_name, p.name, p.version)


@dataclass(frozen=True)
class Schema:
    """A schema version: ``definition`` and ``properties``."""

    definition: str
    properties: SchemaProperties

    @classmethod
    def from_pb(cls, s: pb.Schema) -> Schema:
        return cls(s.definition, SchemaProperties.from_pb(s.properties))


@dataclass(frozen=True)
class SchemaGroup:
    """A schema group: name, format, compatibility mode, times."""

    name: str
    format: SchemaFormat
    compatibility: CompatibilityMode
    created_on: datetime | None = None
    updated_on: datetime | None = None

    @classmethod
    def from_pb(cls, g: pb.SchemaGroup) -> SchemaGroup:
        return cls(g.group_id, SchemaFormat.from_pb(g.format), CompatibilityMode.from_pb(g.compatibility),
                   _time(g.create_time), _time(g.update_time))


class SharedAccessKeyCredential:
    """A shared access policy's name and key; the client signs a SAS token with it for every call."""

    def __init__(self, policy_name: str, key: str) -> None:
        if not policy_name or not key:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "a SharedAccessKeyCredential needs a policy name and a key")
        self.policy_name = policy_name
        self.key = key

    def __repr__(self) -> str:  # never print the key
        return f"SharedAccessKeyCredential({self.policy_name!r}, key=***)"


#: azure.core.credentials' name for the same thing.
AzureNamedKeyCredential = SharedAccessKeyCredential


class DefaultAzureCredential(SharedAccessKeyCredential):
    """The local stand-in for azure.identity's DefaultAzureCredential: finds a key without code changes.

    Tries, in order: ``HEADWATER_SHARED_ACCESS_KEY_NAME`` + ``HEADWATER_SHARED_ACCESS_KEY``;
    the key of ``HEADWATER_CONNECTION_STRING``; the root policy of the local
    policies file (``$HEADWATER_HOME/auth.json``, which ``make up`` creates).
    """

    def __init__(self, **_ignored: Any) -> None:
        name = os.environ.get("HEADWATER_SHARED_ACCESS_KEY_NAME", "")
        key = os.environ.get("HEADWATER_SHARED_ACCESS_KEY", "")
        if not (name and key) and os.environ.get("HEADWATER_CONNECTION_STRING"):
            conn = ConnectionString.parse(os.environ["HEADWATER_CONNECTION_STRING"])
            name, key = conn.shared_access_key_name, conn.shared_access_key
        if not (name and key):
            path = headwater_home() / "auth.json"
            if not path.exists():
                raise HeadwaterError(Reason.UNAUTHORIZED,
                                     "DefaultAzureCredential found no key: set HEADWATER_SHARED_ACCESS_KEY_NAME and "
                                     f"HEADWATER_SHARED_ACCESS_KEY, or HEADWATER_CONNECTION_STRING, or create {path} "
                                     "(make up / headwater connection-string)")
            root = PolicyStore(path).ensure().root()
            name, key = root.name, root.key
        super().__init__(name, key)


def namespace_address(fully_qualified_namespace: str) -> tuple[str, bool]:
    """``host:port`` (and whether to use TLS) from ``host:port``, ``host`` or ``headwater://host:port/``."""
    text = (fully_qualified_namespace or "").strip()
    if not text:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, "fully_qualified_namespace is empty: give host:port")
    tls = False
    if "://" in text:
        parsed = urllib.parse.urlparse(text)
        tls = parsed.scheme in ("headwaters", "grpcs", "https")
        text = parsed.netloc
    text = text.strip("/")
    _host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        return f"{text}:{DEFAULT_PORT}", tls
    return text, tls


def credential_of(conn: ConnectionString) -> SharedAccessKeyCredential:
    """The key credential a connection string carries."""
    if not (conn.shared_access_key_name and conn.shared_access_key):
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             "the connection string needs SharedAccessKeyName and SharedAccessKey")
    return SharedAccessKeyCredential(conn.shared_access_key_name, conn.shared_access_key)


def connection_for(fully_qualified_namespace: str, credential: Any) -> ConnectionString:
    address, tls = namespace_address(fully_qualified_namespace)
    name = getattr(credential, "policy_name", "") or getattr(credential, "name", "")
    key = getattr(credential, "key", "")
    if credential is not None and not (name and key):
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             "credential must be a SharedAccessKeyCredential(policy_name, key) "
                             "(or anything with .policy_name/.name and .key)")
    return ConnectionString(endpoint=f"{'headwaters' if tls else 'headwater'}://{address}/",
                            shared_access_key_name=name, shared_access_key=key, use_tls=tls)


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LruCache(Generic[K, V]):
    """A small thread-safe LRU map (the client's schema caches)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


def register_request(group_name: str, name: str, definition: str, format: Any) -> pb.RegisterSchemaRequest:
    return pb.RegisterSchemaRequest(group_name=group_name, name=name, definition=definition,
                                    format=SchemaFormat.parse(format).to_pb())


def lookup_request(group_name: str, name: str, definition: str, format: Any) -> pb.LookupSchemaRequest:
    return pb.LookupSchemaRequest(group_name=group_name, name=name, definition=definition,
                                  format=SchemaFormat.parse(format).to_pb())


def schema_request(schema_id: str | None, group_name: str | None, name: str | None,
                   version: int | None) -> pb.GetSchemaRequest | pb.GetSchemaVersionRequest:
    if schema_id:
        if group_name or name or version:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "get_schema takes a schema_id or group_name/name/version, "
                                 "not both")
        return pb.GetSchemaRequest(id=schema_id)
    if not (group_name and name):
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             "get_schema needs a schema_id, or group_name, name and version")
    return pb.GetSchemaVersionRequest(group_name=group_name, name=name, version=int(version or 0))
