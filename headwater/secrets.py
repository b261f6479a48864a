"""Secrets by reference: a store readable only by the services, and redaction of what clients read.

Where secrets live: one folder shared by the processing and sink services
(setting ``secrets_dir``, default ``$HEADWATER_HOME/secrets``), a 0700 folder
with one 0600 file per secret, so one name serves both a job's input
connection string and a sink's DSN. The layout is the one of a mounted
Kubernetes Secret volume (a file per key), so an operator may mount one there.
The sink service serves ``SecretService`` (``headwater secret set|list|delete``)
over it; values are written, never returned.

A job or sink setting whose value is ``secret:NAME`` is resolved by the service
when it connects. Pasted values are kept in the service's definitions file
(0600 inside a 0700 folder). Either way every Get/List response shows ``***``
in place of the value (a ``secret:NAME`` reference is shown as it is: it holds
no secret).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError, Reason
from headwater.storage import write_atomic

__all__ = ["MASK", "PREFIX", "SecretStore", "is_reference", "keep_references", "redact", "redact_config",
           "redact_job", "resolve", "resolve_config", "unmask_job", "write_private"]

#: What a client sees in place of a secret value.
MASK = "***"
#: A value that names a secret instead of carrying it.
PREFIX = "secret:"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
#: Sink settings that carry secrets (any kind): the whole value, or each value of a mapping, is masked.
SECRET_SETTINGS = frozenset({"dsn", "connection_string", "password", "headers", "storage_options", "token",
                             "api_key", "secret"})


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as a 0600 file (its folder 0700 when created here), with
    :mod:`headwater.storage`'s guarantee."""
    write_atomic(path, data, private=True)


def _name(name: str, field: str = "name") -> str:
    sid = name.removeprefix("secrets/")
    if not _NAME.fullmatch(sid or ""):
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"secret name {name!r} is not valid: letters, digits, '.', '_', '-', at most 63, "
                             "starting with a letter or digit", metadata={"field": field})
    return sid


class SecretStore:
    """Named secrets, one 0600 file each in a 0700 folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def _ensure(self) -> None:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self.folder.chmod(0o700)

    def set(self, name: str, value: str) -> str:
        sid = _name(name)
        if not value:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "a secret's value must not be empty",
                                 metadata={"field": "value"})
        if value.startswith(PREFIX):
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "a secret's value cannot itself be a secret: reference",
                                 metadata={"field": "value"})
        self._ensure()
        write_private(self.folder / sid, value.encode())
        return sid

    def get(self, name: str, field: str = "name") -> str:
        sid = _name(name, field)
        try:
            return (self.folder / sid).read_text()
        except FileNotFoundError:
            raise HeadwaterError(Reason.INVALID_ARGUMENT if field != "name" else Reason.RESOURCE_NOT_FOUND,
                                 f"{field}: secret {sid!r} does not exist (headwater secret set {sid})",
                                 metadata={"field": field, "resource": f"secrets/{sid}"}) from None

    def list(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.name for p in self.folder.iterdir() if p.is_file() and _NAME.fullmatch(p.name))

    def delete(self, name: str, allow_missing: bool = False) -> None:
        sid = _name(name)
        try:
            (self.folder / sid).unlink()
        except FileNotFoundError:
            if not allow_missing:
                raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"secret {sid!r} does not exist",
                                     metadata={"resource": f"secrets/{sid}"}) from None


def is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def resolve(value: str, store: SecretStore | None, field: str) -> str:
    """``secret:NAME`` -> the secret's value (INVALID_ARGUMENT naming ``field`` when missing); else ``value``."""
    if not is_reference(value):
        return value
    if store is None:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field}: secret references need the service's secret store",
                             metadata={"field": field})
    return store.get(value[len(PREFIX):].strip(), field)


def resolve_config(config: Mapping[str, Any], store: SecretStore | None) -> dict[str, Any]:
    """A sink's settings with every ``secret:NAME`` (top level, or a value of a mapping setting) resolved."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out[key] = {k: resolve(v, store, f"{key}.{k}") if is_reference(v) else v for k, v in value.items()}
        else:
            out[key] = resolve(value, store, key) if is_reference(value) else value
    return out


def keep_references(original: Mapping[str, Any], resolved: Mapping[str, Any],
                    normalised: Mapping[str, Any]) -> dict[str, Any]:
    """``normalised`` settings with each ``secret:NAME`` of ``original`` put back where the
    validation kept the resolved value as it was (so the definition stores the name)."""
    out = dict(normalised)
    for key, value in original.items():
        if is_reference(value) and out.get(key) == resolved.get(key):
            out[key] = value
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            inner = dict(out[key])
            for k, v in value.items():
                if is_reference(v) and inner.get(k) == resolved[key].get(k):
                    inner[k] = v
            out[key] = inner
    return out


def redact(value: str) -> str:
    """What a reader sees of a secret value: ``***``, or the ``secret:NAME`` reference, or empty."""
    if not value or is_reference(value):
        return value
    return MASK


def redact_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A sink's settings as Get/List show them: secret settings masked."""
    out = dict(config)
    for key, value in config.items():
        if key.lower() not in SECRET_SETTINGS:
            continue
        if isinstance(value, Mapping):
            out[key] = {k: redact(v) if isinstance(v, str) else MASK for k, v in value.items()}
        elif isinstance(value, str):
            out[key] = redact(value)
        elif value is not None:
            out[key] = MASK
    return out


def unmask_job(job: Any, old: Any) -> Any:
    """UpdateJob with a job read back from GetJob: a ``***`` connection string keeps the stored
    value of the input or output of the same alias (as Azure keeps secrets a PATCH leaves out)."""
    before = {("i", i.alias.lower()): i.connection_string for i in old.inputs}
    before |= {("o", o.alias.lower()): o.connection_string for o in old.outputs}
    for tag, items in (("i", job.inputs), ("o", job.outputs)):
        for item in items:
            if item.connection_string == MASK:
                item.connection_string = before.get((tag, item.alias.lower()), "")
    dsns = {i.alias.lower(): i.dsn for i in old.inputs}
    for item in job.inputs:
        if item.dsn == MASK:
            item.dsn = dsns.get(item.alias.lower(), "")
    return job


def redact_job(job: Any) -> Any:
    """A copy of a ``headwater.v1.Job`` with its connection strings masked (GetJob, ListJobs, ...)."""
    shown = type(job)()
    shown.CopyFrom(job)
    for item in (*shown.inputs, *shown.outputs):
        item.connection_string = redact(item.connection_string)
    for item in shown.inputs:  # a reference input's PostgreSQL connection may carry a password
        item.dsn = redact(item.dsn)
    return shown
