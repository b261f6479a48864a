"""Service configuration from a file and the environment, with clear errors.

Precedence: defaults < the file given with ``--config`` (YAML or JSON) <
environment variables ``HEADWATER_<SERVICE>_<FIELD>`` (service-specific) and
``HEADWATER_<FIELD>`` (every service). A bad value is refused with the name of
the setting, where it came from and what was expected.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from headwater.auth import Policy

from headwater.errors import HeadwaterError, Reason

__all__ = ["ConfigError", "ServiceConfig", "DEFAULT_PORTS", "default_address", "headwater_home", "home_search",
           "load_config", "local_root_policy", "read_endpoints"]

#: service -> (gRPC port, metrics port), DESIGN.md "Default ports".
DEFAULT_PORTS: dict[str, tuple[int, int]] = {
    "ingestion": (50051, 9101),
    "registry": (50052, 9102),
    "processing": (50053, 9103),
    "sink": (50054, 9104),
}


class ConfigError(HeadwaterError):
    """A configuration value is missing or malformed."""

    def __init__(self, message: str, *, setting: str = "") -> None:
        super().__init__(Reason.INVALID_ARGUMENT, message, metadata={"field": setting})


def home_search(cwd: Path | None = None) -> tuple[Path, str]:
    """Where local state lives, and how it was found (for messages).

    ``$HEADWATER_HOME`` when set; else the nearest ``.headwater`` folder in the current
    directory or above it (as git finds ``.git``); else ``~/.headwater``.
    """
    env = os.environ.get("HEADWATER_HOME")
    if env:
        return Path(env).expanduser().resolve(), f"$HEADWATER_HOME={env}"
    here = (cwd or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / ".headwater"
        if candidate.is_dir():
            return candidate, f"the nearest .headwater above {here}"
    return Path.home() / ".headwater", f"~/.headwater ($HEADWATER_HOME unset, no .headwater in {here} or above)"


def headwater_home() -> Path:
    """Where local state lives: ``$HEADWATER_HOME``, else the nearest ``.headwater`` above the
    current directory, else ``~/.headwater`` (see :func:`home_search`)."""
    return home_search()[0]


def local_root_policy(auth_file: str | os.PathLike[str] | None = None) -> Policy:
    """The root policy of the local policies file, never creating one.

    A client that created ``auth.json`` would invent a key the running services do not
    know; only a service creates it. The error says where it looked.
    """
    from headwater.auth import PolicyStore

    if auth_file:
        path, how = Path(auth_file), "--auth-file"
    else:
        home, how = home_search()
        path = home / "auth.json"
    if not path.exists():
        raise HeadwaterError(
            Reason.UNAUTHORIZED,
            f"no policies file {path} (looked in {how}); the services create it when they start: "
            "run `headwater up`, or set HEADWATER_HOME to the folder the services use, "
            "or pass --connection-string",
            metadata={"resource": str(path)})
    return PolicyStore(path).ensure().root()


def read_endpoints(home: Path | None = None) -> dict[str, str]:
    """The addresses ``headwater up`` wrote to ``$HEADWATER_HOME/endpoints.json`` ({} when none)."""
    try:
        data = json.loads(((home or headwater_home()) / "endpoints.json").read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def default_address(service: str) -> str:
    """Where a client finds ``service`` when not told: ``$HEADWATER_<SERVICE>_ADDRESS``, else
    the address ``headwater up`` wrote to ``$HEADWATER_HOME/endpoints.json`` (removed by
    ``headwater down``), else ``localhost`` and the default port."""
    env = os.environ.get(f"HEADWATER_{service.upper()}_ADDRESS")
    if env:
        return env
    endpoints = read_endpoints()
    if endpoints.get(service):
        return endpoints[service]
    return f"localhost:{DEFAULT_PORTS[service][0]}"


@dataclass
class ServiceConfig:
    """Settings every service has. Services subclass it to add their own."""

    #: Address the servers bind to.
    host: str = "127.0.0.1"
    #: gRPC port; 0 picks a free one (tests).
    grpc_port: int = 0
    #: Prometheus /metrics port; 0 picks a free one, -1 disables it.
    metrics_port: int = 0
    #: Where the service keeps its files (a 0700 folder); default $HEADWATER_HOME/<service>.
    data_dir: str = ""
    #: Folders clients may name paths under (reference inputs, files/Delta sinks, Capture);
    #: default the data folder. See docs/security.md, "Data paths, UDFs and secrets".
    allowed_paths: list[str] = field(default_factory=list)
    #: The secret store (`secret:NAME` references) shared by processing and sink;
    #: default $HEADWATER_HOME/secrets.
    secrets_dir: str = ""
    #: DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    #: "json" (structured, one object a line) or "text".
    log_format: str = "json"
    #: Check shared access signatures on every RPC.
    auth_enabled: bool = True
    #: The policies file (JSON); default $HEADWATER_HOME/auth.json, created with a root policy.
    auth_file: str = ""
    #: The namespace a token's ``sr`` must name: comma-separated URIs or host names
    #: (``headwater://events.example.com/``); host compared, scheme and port ignored.
    #: Empty: this machine (localhost, 127.0.0.1, ::1, the bind host, the host name).
    namespace: str = ""
    #: Longest a token may still be valid, in seconds (its expiry ahead of now); 0 = no limit.
    max_token_lifetime_s: float = 30 * 24 * 3600.0
    #: A refused client is logged at most once per this many seconds.
    auth_refusal_log_interval_s: float = 60.0
    #: Ask the HTTP pages (/metrics; the sink's dashboard) for a token with Listen or the
    #: basic-auth user below. Off by default: they then answer anyone who reaches them.
    http_auth: bool = False
    #: A user and password the HTTP pages accept (Basic auth: browsers, Prometheus basic_auth).
    http_basic_auth_user: str = ""
    http_basic_auth_password: str = ""
    #: Address /metrics binds to; empty means the service's host.
    metrics_host: str = ""
    #: Largest gRPC request accepted, in bytes; 0 = the service's default (ingestion:
    #: max_message_bytes + 64 KiB). Larger requests get RESOURCE_EXHAUSTED before they are buffered.
    max_receive_message_bytes: int = 0
    #: PEM certificate chain and key: when both are set every port serves TLS.
    tls_cert_file: str = ""
    tls_key_file: str = ""
    #: Seconds SIGTERM waits for in-flight RPCs before cancelling them.
    shutdown_grace_s: float = 10.0

    service_name: str = field(default="", repr=False)

    def existing_data_path(self) -> Path:
        """The storage folder, not created (it may not exist yet)."""
        return Path(self.data_dir) if self.data_dir else headwater_home() / self.service_name

    def data_path(self) -> Path:
        path = self.existing_data_path()
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # only the service's user may read its state
            path.chmod(0o700)
        return path

    def secrets_path(self) -> Path:
        return Path(self.secrets_dir) if self.secrets_dir else headwater_home() / "secrets"

    def auth_path(self) -> Path:
        return Path(self.auth_file) if self.auth_file else headwater_home() / "auth.json"


C = TypeVar("C", bound=ServiceConfig)


def _convert(name: str, raw: Any, typ: Any, source: str) -> Any:
    origin = typing.get_origin(typ)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(typ) if a is not type(None)]
        if raw is None:
            return None
        typ = args[0]
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:
            if isinstance(raw, bool):
                raise ValueError
            return int(str(raw).strip())
        if typ is float:
            return float(str(raw).strip())
        if typ is str:
            return str(raw)
        if origin in (list, tuple) or typ in (list, tuple):
            if isinstance(raw, str):
                return [p.strip() for p in raw.split(",") if p.strip()]
            return list(raw)
        if origin is dict or typ is dict:
            if isinstance(raw, str):
                return json.loads(raw)
            return dict(raw)
    except (ValueError, TypeError, json.JSONDecodeError):
        tname = getattr(typ, "__name__", str(typ))
        raise ConfigError(
            f"setting {name!r} from {source}: {raw!r} is not a valid {tname}", setting=name
        ) from None
    return raw


def load_config(
    cls: type[C],
    service: str,
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> C:
    """Build ``cls`` for ``service`` from defaults, a file, the environment and overrides."""
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "service_name"}
    values: dict[str, Any] = {}
    grpc_port, metrics_port = DEFAULT_PORTS.get(service, (0, 0))
    values["grpc_port"], values["metrics_port"] = grpc_port, metrics_port

    if path:
        import yaml  # only with a config file: most starts have none

        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {str(p)!r} does not exist", setting="config")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {str(p)!r} is not valid YAML/JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(p)!r} must hold a mapping of settings")
        section = data.get(service, data)
        for key, raw in section.items():
            if key in DEFAULT_PORTS and isinstance(raw, dict):
                continue  # another service's section
            if key not in fields:
                raise ConfigError(
                    f"config file {str(p)!r}: unknown setting {key!r} for the {service} service "
                    f"(known: {', '.join(sorted(fields))})",
                    setting=key,
                )
            values[key] = _convert(key, raw, hints[key], f"config file {str(p)!r}")

    for name in fields:
        for var in (f"HEADWATER_{name.upper()}", f"HEADWATER_{service.upper()}_{name.upper()}"):
            if var in env:
                values[name] = _convert(name, env[var], hints[name], f"environment variable {var}")
    for name, raw in overrides.items():
        if name not in fields:
            raise ConfigError(f"unknown setting {name!r}", setting=name)
        values[name] = _convert(name, raw, hints[name], "arguments")

    cfg = cls(**values)
    cfg.service_name = service
    if cfg.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"setting 'log_level': {cfg.log_level!r} is not one of DEBUG, INFO, WARNING, ERROR",
                          setting="log_level")
    if cfg.http_auth and not cfg.auth_enabled and not cfg.http_basic_auth_user:
        raise ConfigError("setting 'http_auth' needs auth_enabled (tokens) or http_basic_auth_user",
                          setting="http_auth")
    if bool(cfg.http_basic_auth_user) != bool(cfg.http_basic_auth_password):
        raise ConfigError("settings 'http_basic_auth_user' and 'http_basic_auth_password' go together",
                          setting="http_basic_auth_user")
    if bool(cfg.tls_cert_file) != bool(cfg.tls_key_file):
        raise ConfigError("settings 'tls_cert_file' and 'tls_key_file' go together: set both or neither",
                          setting="tls_cert_file")
    return cfg
