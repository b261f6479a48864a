"""Shared access policies and signatures, as Event Hubs has them.

A policy has a name, two keys (primary and secondary, so keys rotate without
downtime) and rights (``Send``, ``Listen``, ``Manage``; Manage includes the
other two). A policy belongs to the namespace (valid for every hub) or to one
hub. A client proves it holds a policy's key with a shared access signature
(SAS) token::

    SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded signature>&se=<expiry>&skn=<policy>

where ``signature = base64(HMAC-SHA256(key, url_encode(resource) + "\\n" + expiry))``,
the Azure format (docs/security.md has the exact rules). The token travels in
the ``authorization`` metadata of every RPC (and the ``Authorization`` header of
HTTP ingest). The resource names the namespace (``headwater://host/``), which
covers every hub, or one hub (``headwater://host/trips``), which covers only
that hub; :class:`Authenticator` checks it against the namespace the service is
configured with.

A connection string carries what the SDK needs to sign::

    Endpoint=headwater://localhost:50051/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=...;EntityPath=trips
"""

from __future__ import annotations

import base64
import contextlib
import enum
import fcntl
import hashlib
import hmac
import json
import logging
import os
import secrets
import socket
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.storage import write_atomic, write_new

__all__ = [
    "AUTH_FAILED",
    "Authenticator",
    "Caller",
    "HttpAuth",
    "ConnectionString",
    "Namespace",
    "Policy",
    "PolicyStore",
    "RefusalLog",
    "Right",
    "ROOT_POLICY",
    "generate_sas_token",
    "new_key",
    "parse_rights",
    "parse_sas_token",
    "SasToken",
]

log = logging.getLogger("headwater.auth")

ROOT_POLICY = "RootManageSharedAccessKey"
DEFAULT_TOKEN_TTL_S = 3600
#: The one message every authentication failure gets (no hint which check failed:
#: no policy-name enumeration); the service log has the reason.
AUTH_FAILED = ("unauthorized: send a valid SharedAccessSignature token for this namespace "
               "in the 'authorization' metadata (see docs/security.md)")
#: Longest token considered; anything longer is refused unparsed.
MAX_TOKEN_CHARS = 4096


class Right(enum.StrEnum):
    """What a policy allows."""

    SEND = "Send"
    LISTEN = "Listen"
    MANAGE = "Manage"


def parse_rights(items: Iterable[str]) -> frozenset[Right]:
    """``["send", "Listen"]`` -> rights; Manage brings Send and Listen, as Azure requires."""
    by_name = {r.value.lower(): r for r in Right}
    rights: set[Right] = set()
    for item in items:
        name = str(item).strip().lower()
        if not name:
            continue
        if name not in by_name:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"unknown right {item!r}: rights are Send, Listen, Manage",
                                 metadata={"field": "rights"})
        rights.add(by_name[name])
    if not rights:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, "a policy needs at least one right (Send, Listen, Manage)",
                             metadata={"field": "rights"})
    if Right.MANAGE in rights:
        rights |= {Right.SEND, Right.LISTEN}
    return frozenset(rights)


@dataclass(frozen=True)
class Policy:
    """A shared access policy: ``name``, primary ``key``, ``secondary_key``, ``rights``
    and ``hub`` ('' for a namespace-level policy)."""

    name: str
    key: str
    rights: frozenset[Right]
    secondary_key: str = ""
    hub: str = ""
    create_time: float = 0.0
    modify_time: float = 0.0

    @property
    def primary_key(self) -> str:
        return self.key

    def keys(self) -> tuple[str, ...]:
        return tuple(k for k in (self.key, self.secondary_key) if k)

    def allows(self, right: Right) -> bool:
        return right in self.rights or Right.MANAGE in self.rights

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "hub": self.hub, "rights": sorted(r.value for r in self.rights),
                "primary_key": self.key, "secondary_key": self.secondary_key,
                "create_time": self.create_time, "modify_time": self.modify_time}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        try:
            rights = frozenset(Right(r) for r in data["rights"])
        except ValueError as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"policy {data.get('name')!r}: {exc}; "
                                 "rights are Send, Listen, Manage") from None
        return cls(name=str(data["name"]), key=str(data.get("primary_key") or data["key"]), rights=rights,
                   secondary_key=str(data.get("secondary_key", "")), hub=str(data.get("hub", "")),
                   create_time=float(data.get("create_time", 0.0)),
                   modify_time=float(data.get("modify_time", 0.0)))


def new_key() -> str:
    """A new random key: 32 bytes, base64 (Azure's key length)."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


class PolicyStore:
    """Policies kept in a JSON file (mode 0600), created with a root (Manage) policy on first use.

    Every service reads the same file and reloads it when it changes (inode,
    mtime or size), so a policy created, renewed or deleted through the access
    RPCs (served by ingestion) or by hand holds on every service at once.
    Writers take an exclusive ``flock`` on ``<file>.lock`` and replace the
    file atomically; several services starting at once create it with O_EXCL,
    so only one of them writes the root key.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._stamp: tuple[int, int, int] | None = None
        self._policies: dict[tuple[str, str], Policy] = {}

    def ensure(self) -> PolicyStore:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            now = time.time()
            root = Policy(ROOT_POLICY, new_key(), frozenset(Right), secondary_key=new_key(),
                          create_time=now, modify_time=now)
            body = json.dumps({"policies": [root.to_json()]}, indent=2)
            write_new(self.path, body.encode(), private=True)  # another process may have made it first
        self._load()
        return self

    def _load(self) -> None:
        for _ in range(50):  # another process may be mid-write of a new file
            try:
                st = self.path.stat()
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if stamp == self._stamp:
                    return
                data = json.loads(self.path.read_text() or "null")
                if data is None:
                    raise ValueError("empty")
                policies = {}
                for p in data.get("policies", []):
                    policy = Policy.from_json(p)
                    policies[(policy.hub, policy.name)] = policy
                self._policies = policies
                self._stamp = stamp
                return
            except (ValueError, KeyError):
                time.sleep(0.02)
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"policies file {self.path} is not valid JSON")

    def get(self, name: str, hub: str = "") -> Policy | None:
        self._load()
        return self._policies.get((hub, name))

    def snapshot(self) -> tuple[tuple[int, int, int] | None, dict[tuple[str, str], Policy]]:
        """The file's current (inode, mtime, size) stamp and policies by (hub, name), reloaded if changed."""
        self._load()
        return self._stamp, self._policies

    def all(self, hub: str | None = None) -> list[Policy]:
        """Every policy (``hub=None``), or those of one scope ('' the namespace's)."""
        self._load()
        out = [p for p in self._policies.values() if hub is None or p.hub == hub]
        return sorted(out, key=lambda p: (p.hub, p.name))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._stamp = None  # re-read under the lock: another process may have written
            self._load()
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _write(self) -> None:
        body = json.dumps({"policies": [p.to_json() for p in self.all()]}, indent=2).encode()
        write_atomic(self.path, body, private=True)
        self._stamp = None

    def put(self, policy: Policy) -> None:
        """Add or replace ``policy`` (by hub and name)."""
        with self._locked():
            now = time.time()
            if not policy.create_time:
                policy = replace(policy, create_time=now)
            if not policy.secondary_key:
                policy = replace(policy, secondary_key=new_key())
            self._policies[(policy.hub, policy.name)] = replace(policy, modify_time=now)
            self._write()

    def create(self, policy: Policy) -> Policy:
        """Add ``policy``; ALREADY_EXISTS when its hub already has one of that name."""
        with self._locked():
            if (policy.hub, policy.name) in self._policies:
                raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS,
                                     f"policy {policy.name!r} already exists" + _scope(policy.hub),
                                     metadata={"resource": _resource(policy.name, policy.hub)})
            now = time.time()
            policy = replace(policy, secondary_key=policy.secondary_key or new_key(),
                             create_time=now, modify_time=now)
            self._policies[(policy.hub, policy.name)] = policy
            self._write()
            return policy

    def renew(self, name: str, hub: str, which: str) -> Policy:
        """A new ``primary`` or ``secondary`` key for a policy; the other key keeps working."""
        if which not in ("primary", "secondary"):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"key must be primary or secondary, not {which!r}",
                                 metadata={"field": "key"})
        with self._locked():
            policy = self._must(name, hub)
            if which == "primary":
                policy = replace(policy, modify_time=time.time(), key=new_key())
            else:
                policy = replace(policy, modify_time=time.time(), secondary_key=new_key())
            self._policies[(hub, name)] = policy
            self._write()
            return policy

    def delete(self, name: str, hub: str = "") -> None:
        with self._locked():
            self._must(name, hub)
            if not hub and name == ROOT_POLICY:
                raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                     f"{ROOT_POLICY} cannot be deleted: the CLI and the services use it; "
                                     "renew its keys instead", metadata={"resource": _resource(name, hub)})
            del self._policies[(hub, name)]
            self._write()

    def delete_hub(self, hub: str) -> int:
        """Drop every policy of ``hub`` (the hub was deleted); returns how many."""
        if not hub or not any(p.hub == hub for p in self.all(hub)):
            return 0
        with self._locked():
            gone = [k for k in self._policies if k[0] == hub]
            for k in gone:
                del self._policies[k]
            self._write()
            return len(gone)

    def _must(self, name: str, hub: str) -> Policy:
        policy = self._policies.get((hub, name))
        if policy is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"no policy {name!r}" + _scope(hub),
                                 metadata={"resource": _resource(name, hub)})
        return policy

    def root(self) -> Policy:
        policy = self.get(ROOT_POLICY)
        if policy is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"no {ROOT_POLICY} policy in {self.path}")
        return policy


def _scope(hub: str) -> str:
    return f" on hub {hub!r}" if hub else " in the namespace"


def _resource(name: str, hub: str) -> str:
    """A policy's resource name, as errors carry it."""
    return f"hubs/{hub}/policies/{name}" if hub else f"policies/{name}"


def _sign(key: str, encoded_resource: str, expiry: int | str) -> str:
    to_sign = f"{encoded_resource}\n{expiry}".encode()
    digest = hmac.new(key.encode(), to_sign, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def generate_sas_token(resource: str, policy_name: str, key: str, ttl_s: int = DEFAULT_TOKEN_TTL_S,
                       now: float | None = None) -> str:
    """A SAS token for ``resource`` signed with ``key``, valid ``ttl_s`` seconds."""
    expiry = int((time.time() if now is None else now) + ttl_s)
    encoded = urllib.parse.quote_plus(resource)
    sig = _sign(key, encoded, expiry)
    return (
        "SharedAccessSignature "
        f"sr={encoded}&sig={urllib.parse.quote_plus(sig)}"
        f"&se={expiry}&skn={urllib.parse.quote_plus(policy_name)}"
    )


@dataclass(frozen=True)
class SasToken:
    """A parsed (not verified) token; ``raw_resource`` is ``sr`` as sent (still URL-encoded)."""

    resource: str
    signature: str
    expiry: int
    policy_name: str
    raw_resource: str = ""

    def entity(self) -> str:
        """The entity path the token is scoped to, or '' for the whole namespace."""
        parsed = urllib.parse.urlparse(self.resource)
        return parsed.path.strip("/") if parsed.scheme else self.resource.strip("/")


def parse_sas_token(token: str) -> SasToken:
    """Parse (not verify) a token; raises UNAUTHORIZED (:data:`AUTH_FAILED`) when it is not one."""
    text = (token or "").strip()
    if len(text) > MAX_TOKEN_CHARS:
        raise _failed(f"token longer than {MAX_TOKEN_CHARS} characters")
    if text.lower().startswith("bearer "):
        text = text[7:].strip()
    prefix = "SharedAccessSignature "
    if not text.startswith(prefix):
        raise _failed("not a SharedAccessSignature token")
    raw: dict[str, str] = {}
    for part in text[len(prefix):].split("&"):
        k, _, v = part.partition("=")
        raw.setdefault(k.strip(), v.strip())
    try:
        return SasToken(urllib.parse.unquote_plus(raw["sr"]), urllib.parse.unquote_plus(raw["sig"]),
                        int(raw["se"]), urllib.parse.unquote_plus(raw["skn"]), raw_resource=raw["sr"])
    except (KeyError, ValueError):
        raise _failed("token lacks sr, sig, se or skn") from None


class AuthFailure(HeadwaterError):
    """UNAUTHORIZED with :data:`AUTH_FAILED`; ``detail`` (why) is for the service log only."""

    def __init__(self, detail: str) -> None:
        super().__init__(Reason.UNAUTHORIZED, AUTH_FAILED)
        self.detail = detail


def _failed(detail: str) -> AuthFailure:
    return AuthFailure(detail)


_LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


class Namespace:
    """The host names a token's ``sr`` may name: this namespace.

    Configured with the ``namespace`` setting, a comma-separated list of URIs
    or host names (``headwater://events.example.com/``). The host is compared
    case-insensitively; the scheme and the port are not part of a namespace's
    identity (its four services listen on four ports; Azure's namespace is a
    host name too). Unset, the namespace is this machine: ``localhost``,
    ``127.0.0.1``, ``::1``, the bind ``host`` when it is a specific address,
    and the machine's host name.
    """

    def __init__(self, setting: str = "", bind_host: str = "") -> None:
        names: set[str] = set()
        for item in (setting or "").split(","):
            item = item.strip()
            if item:
                names.add(self._host(item if "://" in item else f"x://{item}"))
        self.configured = bool(names)
        if not names:
            names.update(_LOCAL_NAMES)
            if bind_host and bind_host not in ("0.0.0.0", "::", ""):
                names.add(bind_host.lower())
            with contextlib.suppress(OSError):
                names.add(socket.gethostname().lower())
        names.discard("")
        self.hosts = frozenset(names)

    @staticmethod
    def _host(uri: str) -> str:
        try:
            return (urllib.parse.urlsplit(uri).hostname or "").lower()
        except ValueError:
            return ""

    def entity_of(self, resource: str) -> str | None:
        """'' for a namespace-scoped ``sr``, the hub for an entity-scoped one, None when
        ``sr`` names another namespace or a deeper path."""
        if "://" not in resource:
            return None
        try:
            parts = urllib.parse.urlsplit(resource)
        except ValueError:
            return None
        if (parts.hostname or "").lower() not in self.hosts or parts.query or parts.fragment:
            return None
        path = parts.path.strip("/")
        if "/" in path:
            return None
        return path

    def uri(self) -> str:
        """The namespace URI clients should sign (the first configured name)."""
        return f"headwater://{sorted(self.hosts)[0] if self.configured else 'localhost'}/"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the verified policy and the entity ('' namespace) the token covers."""

    policy: Policy
    entity: str
    token: str

    def require(self, right: Right) -> None:
        if not self.policy.allows(right):
            raise HeadwaterError(
                Reason.PERMISSION_DENIED,
                f"this operation needs the {right.value!r} right; the token's policy has "
                f"{', '.join(sorted(r.value for r in self.policy.rights))}",
                metadata={"right": right.value},
            )

    def require_namespace(self, what: str) -> None:
        if self.entity:
            raise HeadwaterError(
                Reason.PERMISSION_DENIED,
                f"{what} needs a namespace-scoped token; this token is scoped to hub {self.entity!r}",
                metadata={"right": "namespace"})

    def require_entity(self, hub: str) -> None:
        if self.entity and self.entity != hub:
            raise HeadwaterError(Reason.PERMISSION_DENIED,
                                 f"the token is scoped to {self.entity!r}, not hub {hub!r}",
                                 metadata={"right": "entity"})


class Authenticator:
    """Verifies tokens the way Event Hubs does: a policy of this namespace (or of the hub
    the token names) signed ``sr`` and ``se`` with its primary or secondary key; ``sr``
    names this namespace; the token has not expired and does not live longer than
    ``max_lifetime_s`` (0: no limit). Every failure is :class:`AuthFailure`."""

    #: Verified tokens remembered (a client sends the same token on every call until it renews it).
    CACHE_SIZE = 4096

    def __init__(self, store: PolicyStore, namespace: Namespace | None = None, max_lifetime_s: float = 0.0,
                 clock_skew_s: float = 300.0) -> None:
        self.store = store
        self.namespace = namespace or Namespace()
        self.max_lifetime_s = max_lifetime_s
        self.clock_skew_s = clock_skew_s
        self._verified: dict[str, tuple[object, Caller, int]] = {}

    def authenticate(self, token: str | None, now: float | None = None) -> Caller:
        if not token:
            raise _failed("no token")
        stamp, policies = self.store.snapshot()  # a changed file (renewed, deleted) drops what was verified
        now = time.time() if now is None else now
        hit = self._verified.get(token)
        if hit is not None and hit[0] == stamp and hit[2] >= now:
            return hit[1]
        sas = parse_sas_token(token)
        entity = self.namespace.entity_of(sas.resource)
        if entity is None:
            raise _failed(f"sr {sas.resource[:200]!r} does not name this namespace")
        candidates = [p for p in ((policies.get((entity, sas.policy_name)) if entity else None),
                                  policies.get(("", sas.policy_name))) if p is not None]
        policy = self._match(candidates, sas)
        if policy is None:
            raise _failed(f"no policy {sas.policy_name[:100]!r} signed this token")
        if sas.expiry < now:
            raise _failed("token expired")
        if self.max_lifetime_s > 0 and sas.expiry > now + self.max_lifetime_s + self.clock_skew_s:
            raise _failed(f"token expiry is more than max_token_lifetime_s={self.max_lifetime_s:g} ahead")
        caller = Caller(policy, entity, token)
        if len(self._verified) >= self.CACHE_SIZE:
            self._verified.clear()
        self._verified[token] = (stamp, caller, sas.expiry)
        return caller

    def authenticate_connection_string(self, text: str, now: float | None = None) -> Caller:
        """A connection string as a credential (Kafka's SASL PLAIN ``$ConnectionString``, as Event
        Hubs takes it): its ``SharedAccessSignature`` is checked as a token; otherwise its
        Endpoint must name this namespace and its key be the current primary or secondary key
        of the policy (the ``EntityPath`` hub's, then the namespace's). Failures: :class:`AuthFailure`."""
        try:
            conn = ConnectionString.parse(text)
        except HeadwaterError:
            raise _failed("not a connection string") from None
        if conn.shared_access_signature:
            return self.authenticate(conn.shared_access_signature, now)
        entity = self.namespace.entity_of(conn.namespace_uri + conn.entity_path)
        if entity is None:
            raise _failed("the connection string's Endpoint does not name this namespace")
        _stamp, policies = self.store.snapshot()
        name = conn.shared_access_key_name
        candidates = [p for p in ((policies.get((entity, name)) if entity else None), policies.get(("", name)))
                      if p is not None]
        for policy in candidates:
            if any(hmac.compare_digest(k.encode(), conn.shared_access_key.encode()) for k in policy.keys()):
                return Caller(policy, entity, "")
        raise _failed(f"no policy {name[:100]!r} has this key")

    @staticmethod
    def _match(candidates: list[Policy], sas: SasToken) -> Policy | None:
        forms = {sas.raw_resource, urllib.parse.quote_plus(sas.resource)}
        found = None
        for policy in candidates:
            for key in policy.keys():
                for form in forms:  # compare every one: no timing hint which matched
                    if hmac.compare_digest(_sign(key, form, sas.expiry), sas.signature) and found is None:
                        found = policy
        return found


def verify_sas_token(token: str, store: PolicyStore, right: Right, now: float | None = None,
                     namespace: Namespace | None = None) -> SasToken:
    """Check a token as :class:`Authenticator` does, then ``right``; returns the parsed token."""
    caller = Authenticator(store, namespace).authenticate(token, now)
    caller.require(right)
    return parse_sas_token(token)


class HttpAuth:
    """Optional authentication of the HTTP pages (the dashboard, ``/metrics``): an
    ``Authorization`` header with a SAS token of a policy with Listen (any scope), or
    ``Basic`` credentials of the configured user. ``check`` returns True when allowed."""

    def __init__(self, auth: Authenticator | None, user: str = "", password: str = "") -> None:
        self.auth, self.user, self.password = auth, user, password

    def check(self, authorization: str) -> bool:
        header = (authorization or "").strip()
        if header.lower().startswith("basic ") and self.user:
            try:
                given = base64.b64decode(header[6:].strip(), validate=True).decode()
            except (ValueError, UnicodeDecodeError):
                return False
            user, _, password = given.partition(":")
            ok_user = hmac.compare_digest(user.encode(), self.user.encode())
            ok_password = hmac.compare_digest(password.encode(), self.password.encode())
            return ok_user and ok_password
        if self.auth is None or not header:
            return False
        try:
            self.auth.authenticate(header).require(Right.LISTEN)
        except HeadwaterError:
            return False
        return True


class RefusalLog:
    """Logs refused requests at most once per client per ``interval_s`` (with a count of
    the others), never a traceback: a flood of bad tokens cannot flood the log."""

    def __init__(self, logger: logging.Logger, interval_s: float = 60.0, max_clients: int = 10_000) -> None:
        self.logger, self.interval_s, self.max_clients = logger, interval_s, max_clients
        self._last: dict[str, tuple[float, int]] = {}

    def note(self, client: str, what: str, detail: str) -> bool:
        """Record one refusal; returns True when it was logged."""
        now = time.monotonic()
        last, suppressed = self._last.get(client, (-1e18, 0))
        if now - last < self.interval_s:
            self._last[client] = (last, suppressed + 1)
            return False
        if len(self._last) >= self.max_clients:
            self._last = {c: v for c, v in self._last.items() if now - v[0] < self.interval_s}
            if len(self._last) >= self.max_clients:
                self._last.clear()
        self._last[client] = (now, 0)
        self.logger.warning("refused %s from %s: %s%s", what, client, detail,
                            f" ({suppressed} more refused since the last report)" if suppressed else "",
                            extra={"fields": {"client": client, "method": what, "suppressed": suppressed}})
        return True


def client_host(peer: str) -> str:
    """``ipv4:1.2.3.4:5678`` -> ``1.2.3.4`` (the port changes per connection; the host is the client)."""
    kind, _, rest = (peer or "").partition(":")
    if kind == "ipv6":
        return urllib.parse.unquote(rest).rsplit(":", 1)[0].strip("[]")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    return peer or "unknown"


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
        """The namespace tokens are signed for: the endpoint's scheme and host, no port
        (a namespace is a host name; its services listen on several ports)."""
        parsed = urllib.parse.urlparse(self.endpoint)
        host = parsed.hostname or "localhost"
        return f"{parsed.scheme}://{f'[{host}]' if ':' in host else host}/"

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
