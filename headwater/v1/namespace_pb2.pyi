from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetNamespaceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNamespaceResponse(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: Namespace
    def __init__(self, namespace: _Optional[_Union[Namespace, _Mapping]] = ...) -> None: ...

class Namespace(_message.Message):
    __slots__ = ("uri", "ingestion_address", "registry_address", "processing_address", "sink_address", "http_ingest_url", "dashboard_url", "tls")
    URI_FIELD_NUMBER: _ClassVar[int]
    INGESTION_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SINK_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HTTP_INGEST_URL_FIELD_NUMBER: _ClassVar[int]
    DASHBOARD_URL_FIELD_NUMBER: _ClassVar[int]
    TLS_FIELD_NUMBER: _ClassVar[int]
    uri: str
    ingestion_address: str
    registry_address: str
    processing_address: str
    sink_address: str
    http_ingest_url: str
    dashboard_url: str
    tls: bool
    def __init__(self, uri: _Optional[str] = ..., ingestion_address: _Optional[str] = ..., registry_address: _Optional[str] = ..., processing_address: _Optional[str] = ..., sink_address: _Optional[str] = ..., http_ingest_url: _Optional[str] = ..., dashboard_url: _Optional[str] = ..., tls: _Optional[bool] = ...) -> None: ...
