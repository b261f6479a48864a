"""The job catalogue: job definitions and alert rules, persisted as one JSON file.

Writes go to a temporary file that is renamed over the old one, so a crash
leaves either the old or the new catalogue, never half of one.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from google.protobuf import json_format

from headwater.errors import HeadwaterError, Reason
from headwater.names import check_name
from headwater.pagination import decode_page_token, encode_page_token
from headwater.secrets import write_private
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
    """Jobs and alert rules by name, kept in ``<data_dir>/jobs.json``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.jobs: dict[str, pb.Job] = {}
        self.rules: dict[str, pb.AlertRule] = {}
        self.requests: dict[str, str] = {}
        if path.exists():
            data = json.loads(path.read_text() or "{}")
            for raw in data.get("jobs", []):
                job = json_format.ParseDict(raw, pb.Job())
                self.jobs[job.name] = job
            for raw in data.get("rules", []):
                rule = json_format.ParseDict(raw, pb.AlertRule())
                self.rules[rule.name] = rule
            self.requests = dict(data.get("requests", {}))

    def _save(self) -> None:
        data = {
            "jobs": [json_format.MessageToDict(j) for j in self.jobs.values()],
            "rules": [json_format.MessageToDict(r) for r in self.rules.values()],
            "requests": self.requests,
        }
        write_private(self.path, json.dumps(data).encode())  # 0600: it holds connection strings

    def get(self, name: str) -> pb.Job:
        job_id(name)
        job = self.jobs.get(name)
        if job is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"job {name!r} does not exist",
                                 metadata={"resource": name})
        return job

    def create(self, job: pb.Job, request_id: str = "") -> pb.Job:
        job_id(job.name, "job.name")
        with self._lock:
            if request_id and self.requests.get(request_id) == job.name and job.name in self.jobs:
                return self.jobs[job.name]
            if job.name in self.jobs:
                raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS, f"job {job.name!r} already exists",
                                     metadata={"resource": job.name})
            self.jobs[job.name] = job
            if request_id:
                self.requests[request_id] = job.name
            self._save()
        return job

    def put(self, job: pb.Job) -> pb.Job:
        with self._lock:
            self.jobs[job.name] = job
            self._save()
        return job

    def delete(self, name: str) -> None:
        self.get(name)
        with self._lock:
            del self.jobs[name]
            for rule in [r for r in self.rules if r.startswith(name + "/")]:
                del self.rules[rule]
            self.requests = {k: v for k, v in self.requests.items() if v != name}
            self._save()

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
        with self._lock:
            if rule.name in self.rules:
                raise HeadwaterError(Reason.RESOURCE_ALREADY_EXISTS, f"alert rule {rule.name!r} already exists",
                                     metadata={"resource": rule.name})
            self.rules[rule.name] = rule
            self._save()
        return rule

    def delete_rule(self, name: str) -> None:
        with self._lock:
            if name not in self.rules:
                raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"alert rule {name!r} does not exist",
                                     metadata={"resource": name})
            del self.rules[name]
            self._save()
