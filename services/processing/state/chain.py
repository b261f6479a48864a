"""Incremental checkpoints: a checkpoint file refers to the unchanged sections of earlier ones.

A job's (or a partition task's) checkpoint folder holds ``state-{epoch}.bin`` files in the
snapshot format (:mod:`.snapshot`, schema version 5). Every section carries its content
hash (``sha``). A checkpoint taken with the :class:`Base` of the last durable one writes
only the sections whose hash the base does not hold; the others are references
(``file``, ``at``, ``length``, ``sha``) to the bytes in the earlier file that holds them,
and the header lists those files with their sizes (``files``). References are always to
the file that physically holds the bytes, never to a reference: the chain is flat, so a
restore reads at most one range per section, and the files a checkpoint needs are exactly
its own and its ``files`` (no reference counts to keep: only the latest checkpoint is kept).

Crash safety follows from the order of the runner's writes (runtime.py ``_write_checkpoint``):
the new file is durable (:func:`headwater.storage.write_atomic`) before ``checkpoint.json``
names it, and the files it refers to are older, durable files that :func:`collect` removes
only once a checkpoint that no longer refers to them is named in ``checkpoint.json``.

"Changed" is decided by content, never by a flag an operator might forget to set: each
section's bytes are hashed (SHA-256, ~1.4 GB/s), so a missed mutation cannot be lost. What
is saved beyond the write is the conversion of the vectorised operators' tables: a table
that is the same (immutable) polars object, of the same shape, as the one the base's
section was written from is neither converted nor hashed again (:meth:`Base.unchanged`).

The chain is bounded: a checkpoint is written whole (the unchanged sections' bytes copied
from the files that hold them) when it would refer to :data:`MAX_FILES` files or more, or
when the files it keeps would hold more than :data:`MAX_AMPLIFICATION` times its live
state (plus :data:`SLACK_BYTES`): old files kept alive for a few small sections.
"""

from __future__ import annotations

import struct
import weakref
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from headwater.services.processing.state.snapshot import MAGIC, Captured, SnapshotError, digest, read_header

__all__ = ["Base", "MAX_AMPLIFICATION", "MAX_FILES", "SLACK_BYTES", "collect", "read_file_header",
           "referenced_files", "resolve"]

#: A checkpoint referring to this many files (its own included) is written whole instead.
MAX_FILES = 8
#: ... and one whose files would hold more than this many times its state (plus the slack).
MAX_AMPLIFICATION = 2.0
SLACK_BYTES = 1 << 20


def read_file_header(path: Path) -> dict:
    """The header of a checkpoint file, without reading its sections."""
    with open(path, "rb") as f:
        head = f.read(9)
        if len(head) < 9 or head[:4] != MAGIC:
            raise SnapshotError(f"{path.name} is not a query snapshot")
        (n,) = struct.unpack("<I", head[5:9])
        return read_header(head + f.read(n))


def _read_range(folder: Path, file: str, at: int, length: int, sha: str | None) -> bytes:
    if "/" in file or file.startswith("."):
        raise SnapshotError(f"the snapshot refers to {file!r}, not a checkpoint file of its folder")
    try:
        with open(folder / file, "rb") as f:
            f.seek(at)
            data = f.read(length)
    except FileNotFoundError:
        raise SnapshotError(f"the checkpoint refers to {file}, which is missing from {folder}") from None
    if len(data) != length or (sha is not None and digest(data) != sha):
        raise SnapshotError(f"the checkpoint's bytes {at}..{at + length} of {file} are damaged (their hash differs)")
    return data


class Base:
    """What the last durable checkpoint (``folder/file``) holds: where the bytes of each
    section hash are, the size of each file it keeps, and which table objects its sections
    were written from (``captured``: the :class:`Captured` that wrote it, if this process did)."""

    def __init__(self, folder: Path, file: str, header: dict, captured: Captured | None = None,
                 max_files: int = MAX_FILES, max_amplification: float = MAX_AMPLIFICATION) -> None:
        self.folder, self.file = Path(folder), file
        self.max_files, self.max_amplification = max_files, max_amplification
        start = header["_body"]
        #: section hash -> (file, offset in it, length)
        self.by_sha: dict[str, tuple[str, int, int]] = {}
        #: file -> its size (this checkpoint's and the ones it refers to)
        self.files: dict[str, int] = dict(header.get("files", {}))
        size = start
        for sec in header["sections"]:
            if "file" in sec:
                loc = (sec["file"], sec["at"], sec["length"])
            else:
                loc = (file, start + sec["offset"], sec["length"])
                size = max(size, start + sec["offset"] + sec["length"])
            if sec.get("sha"):  # schema versions before 5 have none: the next checkpoint is whole
                self.by_sha.setdefault(sec["sha"], loc)
        self.files[file] = size
        #: id of a table a section was written from -> (the table, its shape, the section's
        #: hash); by object, not by section name (names number the frames in order, so an
        #: operator's one more table renames the others')
        self.idents: dict[int, tuple[weakref.ref, tuple[int, int], str]] = {}
        if captured is not None:
            shas = {sec["name"]: sec.get("sha") for sec in header["sections"]}
            for name, (ref, shape) in captured.refs.items():
                sha, df = shas.get(name), ref()
                if sha and df is not None:
                    self.idents[id(df)] = (ref, shape, sha)

    @classmethod
    def of_file(cls, folder: Path, file: str, captured: Captured | None = None, **limits: Any) -> Base:
        return cls(folder, file, read_file_header(Path(folder) / file), captured, **limits)

    def unchanged(self, df: pl.DataFrame) -> str | None:
        """The hash of ``df``'s section when it is the very table the base wrote (polars
        frames are immutable: the same object of the same shape holds the same rows; the
        weak reference tells a new object at a reused address apart)."""
        ident = self.idents.get(id(df))
        if ident is None:
            return None
        ref, shape, sha = ident
        if ref() is df and df.shape == shape and sha in self.by_sha:
            return sha
        return None

    def compact(self, parts: list[tuple[str, int | None]]) -> bool:
        """Whether a checkpoint of these sections (hash, size; None: held by the base) is to
        be written whole: it would keep too many files, or files mostly of dead bytes."""
        used: set[str] = set()
        new = live = 0
        for sha, n in parts:
            loc = self.by_sha.get(sha)
            if loc is not None:
                used.add(loc[0])
                live += loc[2]
            else:
                new += n or 0
                live += n or 0
        kept = new + sum(self.files.get(f, 0) for f in used)
        return len(used) + 1 > self.max_files or kept > self.max_amplification * live + SLACK_BYTES

    def read(self, sha: str) -> bytes:
        """The bytes of a section the base holds (verified against their hash)."""
        file, at, length = self.by_sha[sha]
        return _read_range(self.folder, file, at, length, sha)


def resolve(blob: bytes, folder: Path) -> bytes:
    """``blob`` with the sections it refers to read from ``folder``: a self-contained blob
    (``blob`` itself when it refers to nothing). SnapshotError when a file is missing or damaged."""
    header = read_header(blob)
    if not any("file" in sec for sec in header["sections"]):
        return blob
    start = header.pop("_body")
    header.pop("files", None)
    body: list[bytes | memoryview] = []
    sections = []
    offset = 0
    view = memoryview(blob)
    for sec in header["sections"]:
        sec = dict(sec)
        if "file" in sec:
            data: bytes | memoryview = _read_range(Path(folder), sec.pop("file"), sec.pop("at"), sec["length"],
                                                   sec.get("sha"))
        else:
            data = view[start + sec["offset"]:start + sec["offset"] + sec["length"]]
        sec["offset"] = offset
        offset += sec["length"]
        sections.append(sec)
        body.append(data)
    header["sections"] = sections
    head = orjson.dumps(header)
    return b"".join([blob[:5], struct.pack("<I", len(head)), head, *body])


def referenced_files(blob: bytes) -> set[str]:
    """The earlier checkpoint files ``blob`` refers to (none for a blob of another format)."""
    try:
        return set(read_header(blob).get("files", {}))
    except SnapshotError:
        return set()


def collect(folder: Path, file: str, blob: bytes) -> list[str]:
    """Remove the checkpoint files that the checkpoint ``file`` (content ``blob``), now the
    durable latest, does not need. Returns the names removed."""
    keep = {file} | referenced_files(blob)
    gone = []
    for old in Path(folder).glob("state-*.bin"):
        if old.name not in keep:
            old.unlink(missing_ok=True)
            gone.append(old.name)
    return gone
