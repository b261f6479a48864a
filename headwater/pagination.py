"""Opaque, validated page tokens (AIP-158), the same in every service.

A token is url-safe base64 of ``{"k": kind, "v": value}`` plus a short checksum, so a client
cannot read meaning into it or hand-craft one, and a garbage, truncated or another
list's token is refused with INVALID_ARGUMENT (``field: page_token``) instead of being
taken as a position. ``kind`` names the list (``hubs``, ``jobs``, ``sinks``, ...).
Tokens are not secret and do not expire; the checksum only tells a token this code
made from anything else.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from headwater.errors import HeadwaterError, Reason

__all__ = ["decode_page_token", "encode_page_token"]

_KEY = b"headwater.v1 page token"
_SUM = 6


def _checksum(body: bytes) -> bytes:
    return hashlib.blake2b(body, key=_KEY, digest_size=_SUM).digest()


def encode_page_token(kind: str, value: Any) -> str:
    """A token for the page after ``value`` of the list ``kind`` (``value``: JSON-serialisable)."""
    body = json.dumps({"k": kind, "v": value}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(_checksum(body) + body).decode().rstrip("=")


def decode_page_token(token: str, kind: str) -> Any:
    """The value :func:`encode_page_token` put in ``token`` for ``kind``; INVALID_ARGUMENT otherwise."""
    def bad(why: str) -> HeadwaterError:
        return HeadwaterError(Reason.INVALID_ARGUMENT,
                              f"page_token is not a token this service gave for this list ({why}): pass the "
                              "next_page_token of the previous response unchanged, or none for the first page",
                              metadata={"field": "page_token"})

    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii") + b"=" * (-len(token) % 4))
    except (ValueError, UnicodeEncodeError):
        raise bad("not base64") from None
    if len(raw) <= _SUM or _checksum(raw[_SUM:]) != raw[:_SUM]:
        raise bad("checksum does not match")
    try:
        data = json.loads(raw[_SUM:])
    except ValueError:
        raise bad("not a token") from None
    if not isinstance(data, dict) or data.get("k") != kind:
        raise bad(f"made for another list than {kind}")
    return data.get("v")
