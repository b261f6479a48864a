"""Shared access policies and signatures, as Event Hubs has them.

A policy has a name, a key and rights (``Send``, ``Listen``, ``Manage``;
Manage includes the other two). A client proves it holds a policy's key with a
shared access signature (SAS) token::

    SharedAccessSignature sr=<resource>&sig=<signature>&se=<expiry>&skn=<policy>

where ``signature = base64(HMAC-SHA256(key, url_encode(resource) + "\\n" + expiry))``,
the Azure format. The token travels in the ``authorization`` metadata of every
RPC (and the ``Authorization`` header of HTTP ingest). The resource is the
namespace (``headwater://host:port/``), which covers every hub, or one entity
(``headwater://host:port/trips``), which covers only that hub.

A connection string carries what the SDK needs to sign::

    Endpoint=headwater://localhost:50051/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=...;EntityPath=trips
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import os
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from headwater.errors import HeadwaterError, Reason

__all__ = [
    "ConnectionString",
    "Policy",
    "PolicyStore",
    "Right",
    "ROOT_POLICY",
    "generate_sas_token",
    "parse_sas_token",
    "SasToken",
]

ROOT_POLICY = "RootManageSharedAccessKey"
DEFAULT_TOKEN_TTL_S = 3600


class Right(enum.StrEnum):
    """What a policy allows."""

    SEND = "Send"
    LISTEN = "Listen"
    MANAGE = "Manage"


@dataclass(frozen=True)
class Policy:
    """A shared access policy: ``name``, ``key`` and ``rights``."""

    name: str
    key: str
    rights: frozenset[Right]

    def allows(self, right: Right) -> bool:
        return right in self.rights or Right.MANAGE in self.rights

    def to_json(self) -> dict:
        return {"name": self.name, "key": self.key, "rights": sorted(r.value for r in self.rights)}

    @classmethod
    def from_json(cls, data: dict) -> Policy:
        try:
            rights = frozenset(Right(r) for r in data["rights"])
        except ValueError as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"policy {data.get('name')!r}: {exc}; "
                                 "rights are Send, Listen, Manage") from None
        return cls(name=str(data["name"]), key=str(data["key"]), rights=rights)


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


class PolicyStore:
    """Policies kept in a JSON file, created with a root (Manage) policy on first use.

    Several services start at once on one machine: the file is created with
    O_EXCL so only one of them writes the root key, and the others read it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._mtime = -1.0
        self._policies: dict[str, Policy] = {}

    def ensure(self) -> PolicyStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            body = json.dumps({"policies": [Policy(ROOT_POLICY, new_key(), frozenset(Right)).to_json()]},
                              indent=2)
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                pass
            else:
                with os.fdopen(fd, "w") as fh:
                    fh.write(body)
                    fh.flush()
                    os.fsync(fh.fileno())
        self._load()
        return self

    def _load(self) -> None:
        for _ in range(50):  # another process may be mid-write of a new file
            try:
                mtime = self.path.stat().st_mtime
                if mtime == self._mtime:
                    return
                data = json.loads(self.path.read_text() or "null")
                if data is None:
                    raise ValueError("empty")
                self._policies = {p["name"]: Policy.from_json(p) for p in data.get("policies", [])}
                self._mtime = mtime
                return
            except (ValueError, KeyError):
                time.sleep(0.02)
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"policies file {self.path} is not valid JSON")

    def get(self, name: str) -> Policy | None:
        self._load()
        return self._policies.get(name)

    def all(self) -> list[Policy]:
        self._load()
        return list(self._policies.values())

    def put(self, policy: Policy) -> None:
        self._load()
        self._policies[policy.name] = policy
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"policies": [p.to_json() for p in self._policies.values()]}, indent=2))
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
        self._mtime = -1.0

    def root(self) -> Policy:
        policy = self.get(ROOT_POLICY)
        if policy is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"no {ROOT_POLICY} policy in {self.path}")
        return policy


def _sign(key: str, resource: str, expiry: int) -> str:
    to_sign = f"{urllib.parse.quote_plus(resource)}\n{expiry}".encode()
    digest = hmac.new(key.encode(), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def generate_sas_token(resource: str, policy_name: str, key: str, ttl_s: int = DEFAULT_TOKEN_TTL_S,
                       now: float | None = None) -> str:
    """A SAS token for ``resource`` signed with ``key``, valid ``ttl_s`` seconds."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    sig = _sign(key, resource, expiry)
    return (
        "SharedAccessSignature "
        f"sr={urllib.parse.quote_plus(resource)}&sig={urllib.parse.quote_plus(sig)}"
        f"&se={expiry}&skn={urllib.parse.quote_plus(policy_name)}"
    )


@dataclass(frozen=True)
class SasToken:
    resource: str
    signature: str
    expiry: int
    policy_name: str

    def entity(self) -> str:
        """The entity path the token is scoped to, or '' for the whole namespace."""
        parsed = urllib.parse.urlparse(self.resource)
        return parsed.path.strip("/") if parsed.scheme else self.resource.strip("/")


def parse_sas_token(token: str) -> SasToken:
    """Parse (not verify) a token; raises UNAUTHORIZED when it is not one."""
    text = token.strip()
    if text.lower().startswith("bearer "):
        text = text[7:].strip()
    prefix = "SharedAccessSignature "
    if not text.startswith(prefix):
        raise HeadwaterError(Reason.UNAUTHORIZED, "authorization is not a SharedAccessSignature token")
    fields = dict(urllib.parse.parse_qsl(text[len(prefix):], keep_blank_values=True))
    try:
        return SasToken(fields["sr"], fields["sig"], int(fields["se"]), fields["skn"])
    except (KeyError, ValueError):
        raise HeadwaterError(Reason.UNAUTHORIZED,
                             "SharedAccessSignature token must carry sr, sig, se and skn") from None


def verify_sas_token(token: str, store: PolicyStore, right: Right, now: float | None = None) -> SasToken:
    """Check signature, expiry and right; raise UNAUTHORIZED or PERMISSION_DENIED."""
    sas = parse_sas_token(token)
    policy = store.get(sas.policy_name)
    if policy is None:
        raise HeadwaterError(Reason.UNAUTHORIZED, f"unknown shared access policy {sas.policy_name!r}")
    expected = _sign(policy.key, sas.resource, sas.expiry)
    if not hmac.compare_digest(expected, sas.signature):
        raise HeadwaterError(Reason.UNAUTHORIZED,
                             f"the token's signature does not match policy {sas.policy_name!r}")
    if sas.expiry < (time.time() if now is None else now):
        raise HeadwaterError(Reason.UNAUTHORIZED, "the token has expired; sign a new one")
    if not policy.allows(right):
        raise HeadwaterError(
            Reason.PERMISSION_DENIED,
            f"policy {policy.name!r} has rights {sorted(r.value for r in policy.rights)}; "
            f"this operation needs {right.value!r}",
            metadata={"right": right.value},
        )
    return sas


@dataclass
class ConnectionString:
    """A parsed connection string (``Endpoint=...;SharedAccessKeyName=...;...``)."""

    endpoint: str
    shared_access_key_name: str = ""
    shared_access_key: str = ""
    shared_access_signature: str = ""
    entity_path: str = ""
    use_tls: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ConnectionString:
        parts: dict[str, str] = {}
        for piece in text.strip().strip(";").split(";"):
            if not piece.strip():
                continue
            key, sep, value = piece.partition("=")
            if not sep:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"connection string part {piece!r} is not Key=Value")
            parts[key.strip().lower()] = value.strip()
        endpoint = parts.pop("endpoint", "")
        if not endpoint:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "connection string has no Endpoint=")
        parsed = urllib.parse.urlparse(endpoint)
        if parsed.scheme not in ("headwater", "headwaters", "sb", "grpc", "grpcs", "http", "https"):
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"connection string Endpoint {endpoint!r} must look like headwater://host:port/")
        use_tls = parsed.scheme in ("headwaters", "grpcs", "https") or parts.pop("usetls", "").lower() == "true"
        return cls(
            endpoint=endpoint,
            shared_access_key_name=parts.pop("sharedaccesskeyname", ""),
            shared_access_key=parts.pop("sharedaccesskey", ""),
            shared_access_signature=parts.pop("sharedaccesssignature", ""),
            entity_path=parts.pop("entitypath", ""),
            use_tls=use_tls,
            extra=parts,
        )

    @property
    def address(self) -> str:
        """``host:port`` for a gRPC channel (``a:p,b:q`` when the endpoint names several instances)."""
        parsed = urllib.parse.urlparse(self.endpoint)
        if "," in parsed.netloc:
            return parsed.netloc
        host = parsed.hostname or "localhost"
        port = parsed.port or 50051
        return f"{host}:{port}"

    @property
    def namespace_uri(self) -> str:
        parsed = urllib.parse.urlparse(self.endpoint)
        return f"{parsed.scheme}://{parsed.netloc}/"

    def token(self, entity: str = "", ttl_s: int = DEFAULT_TOKEN_TTL_S) -> str | None:
        if self.shared_access_signature:
            return self.shared_access_signature
        if not self.shared_access_key:
            return None
        return generate_sas_token(self.namespace_uri + entity, self.shared_access_key_name,
                                  self.shared_access_key, ttl_s)

    def __str__(self) -> str:
        parts = [f"Endpoint={self.endpoint}"]
        if self.shared_access_key_name:
            parts.append(f"SharedAccessKeyName={self.shared_access_key_name}")
        if self.shared_access_key:
            parts.append(f"SharedAccessKey={self.shared_access_key}")
        if self.shared_access_signature:
            parts.append(f"SharedAccessSignature={self.shared_access_signature}")
        if self.entity_path:
            parts.append(f"EntityPath={self.entity_path}")
        return ";".join(parts)
