"""A sink's settings between their protobuf forms and the dict the sink plugins validate.

``headwater.v1.Sink`` carries the built-in kinds' settings as typed messages (the
``settings`` oneof: ``memory``, ``dashboard``, ``postgres``, ``files``, ``delta``,
``webhook``, ``hub``) and a third-party kind's as a ``google.protobuf.Struct``
(``config``). Typed messages keep integers integers and survive every language's
protobuf runtime (a Struct keeps numbers as doubles, and @grpc/proto-loader drops
snake_case Struct values silently: docs/clients.md).

Only fields a client set reach the plugin: the scalars are proto3 ``optional``, so an
unset one takes the plugin's default, not the type's zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.message import Message

from headwater.errors import HeadwaterError, Reason
from headwater.v1 import sink_pb2

__all__ = ["TYPED_KINDS", "from_proto", "set_settings"]

#: Sink kind -> the field of ``Sink.settings`` holding its typed settings.
TYPED_KINDS = ("memory", "dashboard", "postgres", "files", "delta", "webhook", "hub")


def _to_dict(msg: Message) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            out[field.name] = dict(value)
        elif field.is_repeated:
            out[field.name] = list(value)
        else:
            out[field.name] = value
    return out


def from_proto(sink: sink_pb2.Sink) -> tuple[str, dict[str, Any]]:
    """``(kind, settings)`` of a ``headwater.v1.Sink`` as a client sent it.

    The typed field names the kind when ``kind`` is empty; a typed field of another kind
    than ``kind``, or typed settings together with a non-empty ``config``, is INVALID_ARGUMENT.
    """
    from google.protobuf import json_format

    which = sink.WhichOneof("settings")
    config = json_format.MessageToDict(sink.config) if sink.HasField("config") else {}
    if which is None:
        return sink.kind, config
    if sink.kind and sink.kind != which:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"sink.{which} holds the settings of a {which!r} sink, but kind is {sink.kind!r}",
                             metadata={"field": f"sink.{which}"})
    if config:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"set sink.{which} or sink.config, not both", metadata={"field": "sink.config"})
    return which, _to_dict(getattr(sink, which))


def _fill(msg: Message, config: Mapping[str, Any]) -> bool:
    """Copy the settings the message has fields for; true when every one fitted (a value of
    another type, or a setting the message lacks, is left out)."""
    fields = msg.DESCRIPTOR.fields_by_name
    complete = True
    for key, value in config.items():
        field = fields.get(key)
        if field is None or value is None:
            complete = False
            continue
        try:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                getattr(msg, key).update({str(k): str(v) for k, v in dict(value).items()})
            elif field.is_repeated:
                getattr(msg, key).extend([value] if isinstance(value, str) else list(value))
            elif field.type in (field.TYPE_INT32, field.TYPE_INT64):
                if isinstance(value, bool) or not float(value).is_integer():
                    raise TypeError(key)
                setattr(msg, key, int(value))
            elif field.type == field.TYPE_DOUBLE:
                if isinstance(value, (bool, str)):
                    raise TypeError(key)
                setattr(msg, key, float(value))
            else:
                setattr(msg, key, value)
        except (TypeError, ValueError):
            msg.ClearField(key)
            complete = False
    return complete


def _struct(config: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(json.loads(json.dumps(dict(config), default=str)))
    return struct


def set_settings(sink: sink_pb2.Sink, kind: str, config: Mapping[str, Any], response: bool = False) -> sink_pb2.Sink:
    """Put a sink's ``kind`` and settings on ``sink`` (a ``headwater.v1.Sink``).

    A request (``response`` false) carries a built-in kind's settings in its typed field when
    every setting fits it, else (and for other kinds) in ``config``, where the kind's plugin
    names what is wrong. A response carries them in ``config`` and, for a built-in kind, in
    its typed field too.
    """
    sink.kind = kind
    typed = getattr(sink, kind) if kind in TYPED_KINDS else None
    if typed is None:
        sink.config.CopyFrom(_struct(config))
        return sink
    typed.SetInParent()
    if _fill(typed, config) and not response:
        return sink
    if not response:
        sink.ClearField(kind)
    sink.config.CopyFrom(_struct(config))
    return sink
