"""The job catalogue: job definitions and alert rules, persisted as one JSON file.

The file is rewritten by a :class:`headwater.storage.BackgroundWriter`: off the
event loop, bursts of changes coalesced into one write, and with the storage
guarantee (a crash leaves the old or the new catalogue, never half of one).
RPCs that change definitions await :meth:`JobCatalog.synced` before they answer,
so an acknowledged change is on disk; state changes of running jobs are written
behind, and :meth:`JobCatalog.close` writes what is pending at shutdown.

A **shared** catalogue (processing replicas in scale-out, one file in the shared
``checkpoint_dir``) is written at once instead, each change a read-modify-write
under an exclusive ``flock`` on ``<file>.lock``, and read again whenever the file
changed (its inode, size or mtime): a job created or started through any replica is
seen by every other, and two replicas changing it at once both keep their change.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

from google.protobuf import json_format

from headwater.errors import HeadwaterError, Reason
from headwater.names import check_name
from headwater.pagination import decode_page_token, encode_page_token
from headwater.storage import BackgroundWriter, write_atomic
from headwater.v1 import processing_pb2 as pb

__all__ = ["JobCatalog", "job_id"]


def job_id(name: str, field: str = "name") -> str:
    """The `{job}` of `jobs/{job}`, or INVALID_ARGUMENT naming the field."""
    parts = (name or "").split("/")
    if len(parts) != 2 or parts[0] != "jobs":
        raise HeadwaterError(
            Reason.INVALID_ARGUMENT,
            f"{field} {name!r} is not a job name: expected jobs/{{job}} with letters, digits, '_', '.', '-'",
            metadata={"field": field},
        )
    return check_name("job", parts[1], field)


class JobCatalog:
    """Jobs and alert rules by name, kept in ``<data_dir>/jobs.json`` (or, ``shared``,
    in a file every processing replica reads and writes)."""

    def __init__(self, path: Path, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self._lock = threading.RLock()  # the writer thread renders under it too
        self._writer = None if shared else BackgroundWriter(path, private=True)  # 0600: it holds connection strings
        self._written: Future[None] | None = None
        self._jobs: dict[str, pb.Job] = {}
        self._rules: dict[str, pb.AlertRule] = {}
        self.requests: dict[str, str] = {}
        self._seen: tuple | None = None  # the file's (inode, size, mtime) when last read
        if shared:
            path.parent.mkdir(parents=True, exist_ok=True)
        self._load()

    def _stamp(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns

    def _load(self) -> None:
        stamp = self._stamp()
        jobs: dict[str, pb.Job] = {}
        rules: dict[str, pb.AlertRule] = {}
        requests: dict[str, str] = {}
        if stamp is not None:
            data = json.loads(self.path.read_text() or "{}")
            for raw in data.get("jobs", []):
                job = json_format.ParseDict(raw, pb.Job())
                jobs[job.name] = job
            for raw in data.get("rules", []):
                rule = json_format.ParseDict(raw, pb.AlertRule())
                rules[rule.name] = rule
            requests = dict(data.get("requests", {}))
        self._jobs, self._rules, self.requests, self._seen = jobs, rules, requests, stamp

    def refresh(self) -> None:
        """Shared: read the file again if another replica changed it."""
        if self.shared and self._stamp() != self._seen:
            with self._lock:
                self._load()

    @property
    def jobs(self) -> dict[str, pb.Job]:
        self.refresh()
        return self._jobs

    @property
    def rules(self) -> dict[str, pb.AlertRule]:
        self.refresh()
        return self._rules

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """One change: under the thread lock (and, shared, the file lock, on the
        current file), saved at the end unless it raised."""
        with self._lock:
            if self._writer is not None:  # not shared
                yield
                self._written = self._writer.submit(self._render)
                return
            with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    if self._stamp() != self._seen:
                        self._load()
                    yield
                    write_atomic(self.path, self._render(), private=True)
                    self._seen = self._stamp()
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def _render(self) -> bytes:
        with self._lock:
            data = {
                "jobs": [json_format.MessageToDict(j) for j in self._jobs.values()],
                "rules": [json_format.MessageToDict(r) for r in self._rules.values()],
                "requests": dict(self.requests),
            }
        return json.dumps(data).encode()


    async def synced(self) -> None:
        """Return once every change so far is durable in jobs.json (raises the write's error)."""
        if self._written is not None:
            await asyncio.wrap_future(self._written)

    def flush(self) -> None:
        """Block until every change so far is durable in jobs.json (for the rare change that
        must be on disk before any caller can observe it)."""
        if self._writer is not None:
            self._writer.flush()
        if self._written is not None:
            self._written.result()

    def close(self) -> None:
        """Write pending changes and stop the writer thread (service shutdown)."""
        if self._writer is not None:
            self._writer.close()

    def get(self, name: str) -> pb.Job:
        job_id(name)
        job = self.jobs.get(name)
        if job is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"job {name!r} does not exist",
                                 metadata={"resource": name})
        return job

    def create(self, job: pb.Job, request_id: str = "") -> pb.Job:
        job_id(job.name, "job.name")
        with self._changing():
            if request_id and self.requests.get(request_id) == job.name and job.name in self._jobs:
                return self._jobs[job.name]
            if job.name in self._jobs:
                raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS, f"job {job.name!r} already exists",
                                     metadata={"resource": job.name})
            self._jobs[job.name] = job
            if request_id:
                self.requests[request_id] = job.name
        return job

    def put(self, job: pb.Job) -> pb.Job:
        with self._changing():
            self._jobs[job.name] = job
        return job

    def set_state(self, name: str, state: pb.JobState, error: str = "", started: bool = False,
                  expect: tuple[int, ...] = ()) -> pb.Job:
        """Set a job's state (and error, start time) on the current record; with
        ``expect``, only when its state is one of those (else it is returned unchanged)."""
        with self._changing():
            cur = self._jobs.get(name)
            if cur is None:
                raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"job {name!r} does not exist",
                                     metadata={"resource": name})
            if expect and cur.state not in expect:
                return cur
            job = pb.Job()
            job.CopyFrom(cur)
            job.state, job.error = state, error
            if started:
                job.start_time.GetCurrentTime()
            self._jobs[name] = job
        return job

    def delete(self, name: str) -> None:
        self.get(name)
        with self._changing():
            self._jobs.pop(name, None)
            for rule in [r for r in self._rules if r.startswith(name + "/")]:
                del self._rules[rule]
            self.requests = {k: v for k, v in self.requests.items() if v != name}

    def page(self, items: list, page_size: int, page_token: str) -> tuple[list, str]:
        size = page_size if page_size > 0 else 50
        size = min(size, 1000)
        start = decode_page_token(page_token, "processing") if page_token else 0
        if not isinstance(start, int) or start < 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "page_token is not valid", metadata={"field": "page_token"})
        chunk = items[start:start + size]
        nxt = encode_page_token("processing", start + size) if start + size < len(items) else ""
        return chunk, nxt

    def add_rule(self, parent: str, rule: pb.AlertRule) -> pb.AlertRule:
        self.get(parent)
        parts = (rule.name or "").split("/")
        if len(parts) != 4 or "/".join(parts[:2]) != parent or parts[2] != "alertRules":
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"rule.name {rule.name!r} must be {parent}/alertRules/{{rule}}",
                                 metadata={"field": "rule.name"})
        check_name("alert rule", parts[3], "rule.name")
        with self._changing():
            if rule.name in self._rules:
                raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS, f"alert rule {rule.name!r} already exists",
                                     metadata={"resource": rule.name})
            self._rules[rule.name] = rule
        return rule

    def delete_rule(self, name: str) -> None:
        with self._changing():
            if name not in self._rules:
                raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"alert rule {name!r} does not exist",
                                     metadata={"resource": name})
            del self._rules[name]
