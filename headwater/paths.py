"""Paths a client names (reference inputs, files/Delta sinks, Capture) stay under configured roots.

Each service's ``allowed_paths`` setting lists the folders clients may read and
write in; the default is the service's data folder. A relative path resolves
under the first root; ``..``, a symlink that leads out, or an absolute path
outside every root is refused with INVALID_ARGUMENT naming the field.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError, Reason

__all__ = ["DSN_FILES", "allowed_roots", "confine", "confine_dsn_files", "is_remote"]


def allowed_roots(config: object) -> list[Path]:
    """The service's roots: ``allowed_paths`` (resolved), else its data folder."""
    paths = list(getattr(config, "allowed_paths", None) or [])
    if not paths:
        data_path = getattr(config, "data_path", None)
        if data_path is None:
            raise HeadwaterError(Reason.INTERNAL_ERROR, "no allowed_paths and no data folder configured")
        paths = [str(data_path())]
    return [Path(p).expanduser().resolve() for p in paths]


def is_remote(path: str) -> bool:
    """``s3://``, ``az://``, ``abfss://``, ... : object store URIs are not local files."""
    scheme, sep, _ = path.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.isalnum() and scheme.lower() != "file"


def confine(path: str | os.PathLike[str], roots: Sequence[Path], field: str, *, base: Path | None = None) -> Path:
    """``path`` resolved (symlinks followed) if it lies under one of ``roots``.

    A relative ``path`` resolves under ``base`` (default the first root). The
    check is on the resolved path, so ``..`` and symlinks that lead out are
    caught; a path that does not exist yet is resolved as far as it exists.
    """
    text = os.fspath(path)
    if not text or "\x00" in text:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field} must be a path under the allowed folders",
                             metadata={"field": field})
    if text.startswith("file://"):
        text = text.removeprefix("file://")
    p = Path(text).expanduser()
    if not p.is_absolute():
        p = (base or roots[0]) / p
    resolved = p.resolve()
    for root in roots:
        if resolved == root or resolved.is_relative_to(root):
            return resolved
    shown = ", ".join(str(r) for r in roots)
    raise HeadwaterError(Reason.INVALID_ARGUMENT,
                         f"{field} {os.fspath(path)!r} is outside the allowed folders ({shown}): the service reads "
                         "and writes only under its allowed_paths setting", metadata={"field": field})


#: libpq parameters that name files the client library reads on the service's host.
DSN_FILES = ("passfile", "sslcert", "sslkey", "sslrootcert", "sslcrl", "sslcrldir", "servicefile")


def confine_dsn_files(params: dict[str, Any], roots: Sequence[Path], field: str) -> None:
    """Files a PostgreSQL connection names (``sslkey=``, ``passfile=``, ...; ``params`` as
    psycopg's ``conninfo_to_dict`` gives them) lie under ``roots``."""
    for key in DSN_FILES:
        value = params.get(key)
        if value and not (key == "sslrootcert" and value == "system"):
            confine(str(value), roots, field)
