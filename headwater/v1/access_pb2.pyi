import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AccessRight(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACCESS_RIGHT_UNSPECIFIED: _ClassVar[AccessRight]
    ACCESS_RIGHT_SEND: _ClassVar[AccessRight]
    ACCESS_RIGHT_LISTEN: _ClassVar[AccessRight]
    ACCESS_RIGHT_MANAGE: _ClassVar[AccessRight]

class KeyType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    KEY_TYPE_UNSPECIFIED: _ClassVar[KeyType]
    KEY_TYPE_PRIMARY: _ClassVar[KeyType]
    KEY_TYPE_SECONDARY: _ClassVar[KeyType]
ACCESS_RIGHT_UNSPECIFIED: AccessRight
ACCESS_RIGHT_SEND: AccessRight
ACCESS_RIGHT_LISTEN: AccessRight
ACCESS_RIGHT_MANAGE: AccessRight
KEY_TYPE_UNSPECIFIED: KeyType
KEY_TYPE_PRIMARY: KeyType
KEY_TYPE_SECONDARY: KeyType

class AccessPolicy(_message.Message):
    __slots__ = ("name", "rights", "hub", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RIGHTS_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    rights: _containers.RepeatedScalarFieldContainer[AccessRight]
    hub: str
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., rights: _Optional[_Iterable[_Union[AccessRight, str]]] = ..., hub: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AccessKeys(_message.Message):
    __slots__ = ("key_name", "primary_key", "secondary_key")
    KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_KEY_FIELD_NUMBER: _ClassVar[int]
    SECONDARY_KEY_FIELD_NUMBER: _ClassVar[int]
    key_name: str
    primary_key: str
    secondary_key: str
    def __init__(self, key_name: _Optional[str] = ..., primary_key: _Optional[str] = ..., secondary_key: _Optional[str] = ...) -> None: ...

class CreatePolicyRequest(_message.Message):
    __slots__ = ("parent", "policy_id", "rights")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    RIGHTS_FIELD_NUMBER: _ClassVar[int]
    parent: str
    policy_id: str
    rights: _containers.RepeatedScalarFieldContainer[AccessRight]
    def __init__(self, parent: _Optional[str] = ..., policy_id: _Optional[str] = ..., rights: _Optional[_Iterable[_Union[AccessRight, str]]] = ...) -> None: ...

class CreatePolicyResponse(_message.Message):
    __slots__ = ("policy", "keys")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    policy: AccessPolicy
    keys: AccessKeys
    def __init__(self, policy: _Optional[_Union[AccessPolicy, _Mapping]] = ..., keys: _Optional[_Union[AccessKeys, _Mapping]] = ...) -> None: ...

class GetPolicyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPolicyResponse(_message.Message):
    __slots__ = ("policy",)
    POLICY_FIELD_NUMBER: _ClassVar[int]
    policy: AccessPolicy
    def __init__(self, policy: _Optional[_Union[AccessPolicy, _Mapping]] = ...) -> None: ...

class ListPoliciesRequest(_message.Message):
    __slots__ = ("parent", "page_size", "page_token")
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    parent: str
    page_size: int
    page_token: str
    def __init__(self, parent: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPoliciesResponse(_message.Message):
    __slots__ = ("policies", "next_page_token")
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    policies: _containers.RepeatedCompositeFieldContainer[AccessPolicy]
    next_page_token: str
    def __init__(self, policies: _Optional[_Iterable[_Union[AccessPolicy, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeletePolicyRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeletePolicyResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegenerateKeyRequest(_message.Message):
    __slots__ = ("name", "key_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    key_type: KeyType
    def __init__(self, name: _Optional[str] = ..., key_type: _Optional[_Union[KeyType, str]] = ...) -> None: ...

class RegenerateKeyResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: AccessKeys
    def __init__(self, keys: _Optional[_Union[AccessKeys, _Mapping]] = ...) -> None: ...

class GetPolicyKeysRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetPolicyKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: AccessKeys
    def __init__(self, keys: _Optional[_Union[AccessKeys, _Mapping]] = ...) -> None: ...
