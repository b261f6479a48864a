"""Read compose.yaml and turn its services into local process specs.

Only what Headwater's compose file uses is understood: ``services.<name>``
with ``command``, ``environment`` (mapping or list), ``depends_on`` (list or
mapping with conditions), ``profiles``, ``image``/``build``, YAML anchors and
merge keys, ``restart``, ``${VAR:-default}`` substitution (from the environment, then ``<profile>.env``
files next to the compose file), ``deploy.replicas``. Services whose command is not ``headwater ...`` (PostgreSQL, NATS)
are containers only: locally, the machine's own servers stand in for them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from headwater.errors import HeadwaterError, Reason

__all__ = ["ComposeService", "load_compose", "start_order"]


@dataclass
class ComposeService:
    name: str
    command: list[str]
    environment: dict[str, str] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    image: str = ""
    #: compose's ``restart:`` policy (``no``, ``always``, ``unless-stopped``, ``on-failure[:N]``).
    restart: str = "no"
    #: ``deploy.replicas``: how many processes ``headwater up`` starts.
    replicas: int = 1

    @property
    def is_headwater(self) -> bool:
        return bool(self.command) and self.command[0] == "headwater"


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(text: str, env: Mapping[str, str] | None = None) -> str:
    """``${VAR}`` and ``${VAR:-default}`` as docker compose substitutes them."""
    env = os.environ if env is None else env
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), text)


def _env(raw: dict[str, Any] | list[Any] | None) -> dict[str, str]:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return {str(k): "" if v is None else str(v) for k, v in raw.items()}
    out = {}
    for item in raw:
        key, _, value = str(item).partition("=")
        out[key] = value
    return out


def profile_env(path: str | Path, profiles: tuple[str, ...] = ()) -> dict[str, str]:
    """The variables of ``<profile>.env`` files next to the compose file (what
    ``docker compose --env-file <profile>.env`` reads); the environment wins."""
    out: dict[str, str] = {}
    for profile in profiles:
        env_file = Path(path).parent / f"{profile}.env"
        if env_file.exists():
            for line in env_file.read_text().splitlines():
                key, sep, value = line.strip().partition("=")
                if sep and not key.startswith("#"):
                    out[key.strip()] = value.strip()
    return {**out, **os.environ}


def load_compose(path: str | Path, profiles: tuple[str, ...] = ()) -> list[ComposeService]:
    """The services of ``path`` active under ``profiles``, in start order."""
    path = Path(path)
    if not path.exists():
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"compose file {str(path)!r} does not exist")
    try:
        doc = yaml.safe_load(interpolate(path.read_text(), profile_env(path, tuple(profiles)))) or {}
    except yaml.YAMLError as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"compose file {str(path)!r}: {exc}") from None
    services = []
    for name, spec in (doc.get("services") or {}).items():
        spec = spec or {}
        command = spec.get("command") or []
        if isinstance(command, str):
            command = command.split()
        deps = spec.get("depends_on") or []
        deps = list(deps) if isinstance(deps, (list, dict)) else [deps]
        svc = ComposeService(name=name, command=[str(c) for c in command],
                             environment=_env(spec.get("environment")), depends_on=[str(d) for d in deps],
                             profiles=list(spec.get("profiles") or []), image=str(spec.get("image", "")),
                             restart=str(spec.get("restart") or "no"),
                             replicas=int((spec.get("deploy") or {}).get("replicas") or 1))
        if svc.profiles and not set(svc.profiles) & set(profiles):
            continue
        services.append(svc)
    return start_order(services)


def start_order(services: list[ComposeService]) -> list[ComposeService]:
    """Dependencies first; a cycle or an unknown dependency is an error."""
    by_name = {s.name: s for s in services}
    order: list[ComposeService] = []
    state: dict[str, int] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"compose depends_on cycle: {' -> '.join(chain + (name,))}")
        if name not in by_name:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"compose service {chain[-1]!r} depends on unknown service {name!r}")
        state[name] = 1
        for dep in by_name[name].depends_on:
            visit(dep, chain + (name,))
        state[name] = 2
        order.append(by_name[name])

    for s in services:
        visit(s.name, ())
    return order
