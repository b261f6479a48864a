import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SchemaFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEMA_FORMAT_UNSPECIFIED: _ClassVar[SchemaFormat]
    SCHEMA_FORMAT_AVRO: _ClassVar[SchemaFormat]
    SCHEMA_FORMAT_JSON: _ClassVar[SchemaFormat]

class CompatibilityMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPATIBILITY_MODE_UNSPECIFIED: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_NONE: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_BACKWARD: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_BACKWARD_TRANSITIVE: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_FORWARD: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_FORWARD_TRANSITIVE: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_FULL: _ClassVar[CompatibilityMode]
    COMPATIBILITY_MODE_FULL_TRANSITIVE: _ClassVar[CompatibilityMode]
SCHEMA_FORMAT_UNSPECIFIED: SchemaFormat
SCHEMA_FORMAT_AVRO: SchemaFormat
SCHEMA_FORMAT_JSON: SchemaFormat
COMPATIBILITY_MODE_UNSPECIFIED: CompatibilityMode
COMPATIBILITY_MODE_NONE: CompatibilityMode
COMPATIBILITY_MODE_BACKWARD: CompatibilityMode
COMPATIBILITY_MODE_BACKWARD_TRANSITIVE: CompatibilityMode
COMPATIBILITY_MODE_FORWARD: CompatibilityMode
COMPATIBILITY_MODE_FORWARD_TRANSITIVE: CompatibilityMode
COMPATIBILITY_MODE_FULL: CompatibilityMode
COMPATIBILITY_MODE_FULL_TRANSITIVE: CompatibilityMode

class SchemaGroup(_message.Message):
    __slots__ = ("name", "group_id", "format", "compatibility", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    group_id: str
    format: SchemaFormat
    compatibility: CompatibilityMode
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., group_id: _Optional[str] = ..., format: _Optional[_Union[SchemaFormat, str]] = ..., compatibility: _Optional[_Union[CompatibilityMode, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SchemaProperties(_message.Message):
    __slots__ = ("id", "format", "group_name", "name", "version", "resource_name", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_NAME_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    format: SchemaFormat
    group_name: str
    name: str
    version: int
    resource_name: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., format: _Optional[_Union[SchemaFormat, str]] = ..., group_name: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., resource_name: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Schema(_message.Message):
    __slots__ = ("definition", "properties")
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    definition: str
    properties: SchemaProperties
    def __init__(self, definition: _Optional[str] = ..., properties: _Optional[_Union[SchemaProperties, _Mapping]] = ...) -> None: ...

class CompatibilityIssue(_message.Message):
    __slots__ = ("version", "path", "rule", "message", "direction")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    version: int
    path: str
    rule: str
    message: str
    direction: str
    def __init__(self, version: _Optional[int] = ..., path: _Optional[str] = ..., rule: _Optional[str] = ..., message: _Optional[str] = ..., direction: _Optional[str] = ...) -> None: ...

class CreateSchemaGroupRequest(_message.Message):
    __slots__ = ("group_id", "format", "compatibility", "request_id")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    format: SchemaFormat
    compatibility: CompatibilityMode
    request_id: str
    def __init__(self, group_id: _Optional[str] = ..., format: _Optional[_Union[SchemaFormat, str]] = ..., compatibility: _Optional[_Union[CompatibilityMode, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class CreateSchemaGroupResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: SchemaGroup
    def __init__(self, group: _Optional[_Union[SchemaGroup, _Mapping]] = ...) -> None: ...

class GetSchemaGroupRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetSchemaGroupResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: SchemaGroup
    def __init__(self, group: _Optional[_Union[SchemaGroup, _Mapping]] = ...) -> None: ...

class ListSchemaGroupsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchemaGroupsResponse(_message.Message):
    __slots__ = ("groups", "next_page_token")
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[SchemaGroup]
    next_page_token: str
    def __init__(self, groups: _Optional[_Iterable[_Union[SchemaGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetCompatibilityRequest(_message.Message):
    __slots__ = ("name", "compatibility", "request_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMPATIBILITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    compatibility: CompatibilityMode
    request_id: str
    def __init__(self, name: _Optional[str] = ..., compatibility: _Optional[_Union[CompatibilityMode, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class SetCompatibilityResponse(_message.Message):
    __slots__ = ("group",)
    GROUP_FIELD_NUMBER: _ClassVar[int]
    group: SchemaGroup
    def __init__(self, group: _Optional[_Union[SchemaGroup, _Mapping]] = ...) -> None: ...

class RegisterSchemaRequest(_message.Message):
    __slots__ = ("group_name", "name", "definition", "format", "request_id")
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    group_name: str
    name: str
    definition: str
    format: SchemaFormat
    request_id: str
    def __init__(self, group_name: _Optional[str] = ..., name: _Optional[str] = ..., definition: _Optional[str] = ..., format: _Optional[_Union[SchemaFormat, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class RegisterSchemaResponse(_message.Message):
    __slots__ = ("properties", "created")
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    properties: SchemaProperties
    created: bool
    def __init__(self, properties: _Optional[_Union[SchemaProperties, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetSchemaRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: Schema
    def __init__(self, schema: _Optional[_Union[Schema, _Mapping]] = ...) -> None: ...

class GetSchemaVersionRequest(_message.Message):
    __slots__ = ("group_name", "name", "version")
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    group_name: str
    name: str
    version: int
    def __init__(self, group_name: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetSchemaVersionResponse(_message.Message):
    __slots__ = ("schema",)
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    schema: Schema
    def __init__(self, schema: _Optional[_Union[Schema, _Mapping]] = ...) -> None: ...

class LookupSchemaRequest(_message.Message):
    __slots__ = ("group_name", "name", "definition", "format")
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DEFINITION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    group_name: str
    name: str
    definition: str
    format: SchemaFormat
    def __init__(self, group_name: _Optional[str] = ..., name: _Optional[str] = ..., definition: _Optional[str] = ..., format: _Optional[_Union[SchemaFormat, str]] = ...) -> None: ...

class LookupSchemaResponse(_message.Message):
    __slots__ = ("properties",)
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    properties: SchemaProperties
    def __init__(self, properties: _Optional[_Union[SchemaProperties, _Mapping]] = ...) -> None: ...

class ListSchemaVersionsRequest(_message.Message):
    __slots__ = ("group_name", "name", "page_size", "page_token")
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    group_name: str
    name: str
    page_size: int
    page_token: str
    def __init__(self, group_name: _Optional[str] = ..., name: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSchemaVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[SchemaProperties]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[SchemaProperties, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteSchemaVersionRequest(_message.Message):
    __slots__ = ("group_name", "name", "version", "request_id")
    GROUP_NAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    group_name: str
    name: str
    version: int
    request_id: str
    def __init__(self, group_name: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteSchemaVersionResponse(_message.Message):
    __slots__ = ("properties",)
    PROPERTIES_FIELD_NUMBER: _ClassVar[int]
    properties: SchemaProperties
    def __init__(self, properties: _Optional[_Union[SchemaProperties, _Mapping]] = ...) -> None: ...
