"""Durable files: the one way Headwater services and plugins persist state.

The guarantee (docs/operations.md, "Durability of service files"): when a write
function of this module returns, the file holds the new content and keeps it
through a crash of the process, kill -9 or a power loss, on a local filesystem
that honours ``fsync``; at every moment before, a reader (or a restart) finds
either the whole old content or the whole new content, never a mix or an empty
file. Every write is: a temporary file in the same folder, written and
``fsync``'d, renamed over the target, then the folder ``fsync``'d so the rename
itself is on disk.

:class:`BackgroundWriter` keeps whole-file rewrites of service metadata
(``jobs.json``, ``sinks.json``) off the asyncio event loop: writes are coalesced
on one thread, and a caller that must not acknowledge before the change is on
disk awaits the future of its submission (the same guarantee, once it resolves).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import IO

__all__ = ["BackgroundWriter", "atomic_file", "fsync_dir", "publish", "sweep_temporaries", "write_atomic", "write_new"]

log = logging.getLogger(__name__)


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make renames and creations inside ``folder`` durable (a no-op where folders cannot be synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on a folder; nothing more can be done there
        pass
    finally:
        os.close(fd)


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Rename the finished, already ``fsync``'d ``tmp`` over ``path`` and sync the folder.

    For files written incrementally (a sink's rolled file) before they are made
    visible under their final name.
    """
    os.replace(tmp, path)
    fsync_dir(Path(path).parent)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike[str], *, private: bool = False) -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s new content into; it replaces ``path`` durably on exit.

    ``private`` makes the file 0600 and a folder created here 0700 (files
    holding keys or connection strings); otherwise the file is 0644. On an
    exception the temporary file is removed and ``path`` keeps its old content.
    """
    target = Path(path)
    target.parent.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)  # 0600, unique
    try:
        if not private:
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        publish(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> None:
    """Replace ``path``'s content by ``data`` with the module's guarantee (see :func:`atomic_file`)."""
    with atomic_file(path, private=private) as fh:
        fh.write(data)


def write_new(path: str | os.PathLike[str], data: bytes, *, private: bool = False) -> bool:
    """Create ``path`` with ``data`` unless it exists (False then, the file untouched).

    Same guarantee as :func:`write_atomic`, and of concurrent creators exactly
    one wins: the complete temporary file is hard-linked to the final name.
    """
    target = Path(path)
    target.parent.mkdir(mode=0o700 if private else 0o777, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        if not private:
            os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        fsync_dir(target.parent)
        return True
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


#: A temporary file lives for one write (milliseconds); one older than this was left by a
#: writer killed mid-write (kill -9, power loss), never renamed, and is garbage. The margin
#: keeps a sweep from touching a write in progress in a folder another process shares.
STALE_TEMPORARY_S = 600.0


def sweep_temporaries(folder: str | os.PathLike[str], older_than_s: float = STALE_TEMPORARY_S) -> list[Path]:
    """Remove, under ``folder`` (recursively), the temporary files of this module's writes
    (``.<name>.<random>.tmp``) older than ``older_than_s``: what a writer killed mid-write
    left behind. The files of finished writes are never touched (they carry their final
    names). Returns the removed paths; a service runs this over its data folder at start."""
    import time

    root = Path(folder)
    if not root.is_dir():
        return []
    cutoff = time.time() - older_than_s
    removed: list[Path] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            path = Path(dirpath) / name
            try:
                if path.lstat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except OSError:  # gone meanwhile, or not ours to remove
                continue
    if removed:
        log.info("removed %d temporary file(s) of interrupted writes under %s", len(removed), root)
    return removed


class BackgroundWriter:
    """Rewrites one file on a background thread, coalescing bursts of changes.

    ``submit(render)`` records that the file must be rewritten with what
    ``render()`` returns *when the thread gets to it*; several submissions
    before then are one write (of the newest state). ``render`` runs on the
    writer thread, so it must read its state under the owner's lock. The
    returned future resolves once a write that includes the submission is
    durable, or carries the write's exception. :meth:`close` writes what is
    pending and stops the thread (service shutdown).
    """

    def __init__(self, path: str | os.PathLike[str], *, private: bool = False) -> None:
        self.path = Path(path)
        self.private = private
        self._cond = threading.Condition()
        self._render: Callable[[], bytes] | None = None
        self._waiting: list[Future[None]] = []
        self._busy = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, render: Callable[[], bytes]) -> Future[None]:
        fut: Future[None] = Future()
        with self._cond:
            if self._closed:  # after shutdown: write in the caller, still durable
                self._write(render)
                fut.set_result(None)
                return fut
            self._render = render
            self._waiting.append(fut)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"storage:{self.path.name}", daemon=True)
                self._thread.start()
            self._cond.notify()
        return fut

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every submission so far is written; False if ``timeout`` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._render is None and not self._busy, timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write what is pending, then stop the thread; later submissions write in the caller."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _write(self, render: Callable[[], bytes]) -> None:
        write_atomic(self.path, render(), private=self.private)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._render is not None or self._closed)
                if self._render is None:
                    return
                render, waiting = self._render, self._waiting
                self._render, self._waiting, self._busy = None, [], True
            try:
                self._write(render)
            except BaseException as exc:  # noqa: BLE001 - handed to every waiter
                log.exception("could not write %s", self.path)
                for fut in waiting:
                    fut.set_exception(exc)
            else:
                for fut in waiting:
                    fut.set_result(None)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
