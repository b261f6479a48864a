"""The registry's rules, independent of gRPC: validation, identity by canonical form,
compatibility on registration, paging.

Every method is synchronous (the store is blocking); the servicer runs them in
worker threads.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict

from prometheus_client import Counter

from headwater.errors import HeadwaterError, Reason
from headwater.names import check_name as _check_name
from headwater.pagination import decode_page_token, encode_page_token
from headwater.services.registry import compatibility
from headwater.services.registry.canonical import ParsedSchema, parse_definition
from headwater.services.registry.model import FORMATS, Group, Version
from headwater.services.registry.store.base import SqlStore

__all__ = ["Registry", "normalize_format", "normalize_mode"]

REGISTRATIONS = Counter("headwater_registry_registrations_total",
                        "Schema registrations, by outcome (created, existing, incompatible, invalid).",
                        ["outcome"])

_MAX_PAGE = 1000


def normalize_mode(mode: str) -> str:
    """``full-transitive`` / ``Full_Transitive`` -> ``FULL_TRANSITIVE``; INVALID_ARGUMENT when unknown."""
    value = (mode or "").strip().upper().replace("-", "_")
    if value not in compatibility.MODES:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"unknown compatibility mode {mode!r}: use one of "
                             f"{', '.join(m.lower().replace('_', '-') for m in compatibility.MODES)}",
                             metadata={"field": "compatibility"})
    return value


def normalize_format(fmt: str) -> str:
    value = (fmt or "").strip().lower()
    value = {"jsonschema": "json", "json_schema": "json"}.get(value, value)
    if value not in FORMATS:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"unknown schema format {fmt!r}: use avro or json",
                             metadata={"field": "format"})
    return value


def _page_token(value: str | int) -> str:
    return encode_page_token("registry", str(value))


def _read_token(token: str) -> str:
    return str(decode_page_token(token, "registry"))


def _page_size(size: int) -> int:
    if size < 0:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, "page_size must not be negative",
                             metadata={"field": "page_size"})
    return min(size or 100, _MAX_PAGE)


class Registry:
    """Groups and schema versions over a :class:`SqlStore`."""

    def __init__(self, store: SqlStore, *, default_compatibility: str = "BACKWARD",
                 auto_create_groups: bool = True, max_definition_bytes: int = 1_000_000) -> None:
        self.store = store
        self.default_compatibility = normalize_mode(default_compatibility)
        self.auto_create_groups = auto_create_groups
        self.max_definition_bytes = max_definition_bytes
        self._parsed: OrderedDict[str, ParsedSchema] = OrderedDict()
        self._parsed_lock = threading.Lock()

    # -- validation ------------------------------------------------------------
    @staticmethod
    def check_group_id(group_id: str) -> str:
        return _check_name("schema group", (group_id or "").removeprefix("schemaGroups/"), "group_name")

    @staticmethod
    def check_name(name: str) -> str:
        return _check_name("schema", name or "", "name")

    def _parse(self, fmt: str, definition: str) -> ParsedSchema:
        if len(definition.encode()) > self.max_definition_bytes:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"the definition is {len(definition.encode())} bytes; the limit is "
                                 f"{self.max_definition_bytes}", metadata={"field": "definition"})
        key = fmt + "\0" + definition
        with self._parsed_lock:
            hit = self._parsed.get(key)
            if hit is not None:
                self._parsed.move_to_end(key)
                return hit
        parsed = parse_definition(fmt, definition)
        with self._parsed_lock:
            self._parsed[key] = parsed
            while len(self._parsed) > 1024:
                self._parsed.popitem(last=False)
        return parsed

    def _group_or_404(self, group_id: str) -> Group:
        group = self.store.get_group(self.check_group_id(group_id))
        if group is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"schema group {group_id!r} does not exist",
                                 metadata={"resource": f"schemaGroups/{group_id}"})
        return group

    # -- groups ----------------------------------------------------------------
    def create_group(self, group_id: str, fmt: str, mode: str = "", *, idempotent: bool = False) -> Group:
        group_id = self.check_group_id(group_id)
        now = time.time()
        group = Group(group_id, normalize_format(fmt), normalize_mode(mode) if mode else self.default_compatibility,
                      now, now)
        return self.store.create_group(group, idempotent=idempotent)

    def get_group(self, group_id: str) -> Group:
        return self._group_or_404(group_id)

    def list_groups(self, page_size: int = 0, page_token: str = "") -> tuple[list[Group], str]:
        size = _page_size(page_size)
        after = _read_token(page_token) if page_token else ""
        groups = self.store.list_groups(after, size + 1)
        more = len(groups) > size
        groups = groups[:size]
        return groups, _page_token(groups[-1].group_id) if more else ""

    def set_compatibility(self, group_id: str, mode: str) -> Group:
        self._group_or_404(group_id)
        group = self.store.set_compatibility(self.check_group_id(group_id), normalize_mode(mode), time.time())
        assert group is not None
        return group

    # -- schemas ---------------------------------------------------------------
    def register(self, group_id: str, name: str, definition: str, fmt: str = "") -> tuple[Version, bool]:
        """Register (or find) ``definition``; returns (version, created)."""
        group_id, name = self.check_group_id(group_id), self.check_name(name)
        group = self.store.get_group(group_id)
        if group is None and not self.auto_create_groups:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"schema group {group_id!r} does not exist; "
                                 "create it first (headwater schema group create)",
                                 metadata={"resource": f"schemaGroups/{group_id}"})
        fmt = normalize_format(fmt) if fmt else (group.format if group else "")
        if not fmt:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"schema group {group_id!r} does not exist yet: say the format (avro or json)",
                                 metadata={"field": "format"})
        if group is not None and group.format != fmt:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"schema group {group_id!r} holds {group.format} schemas, not {fmt}",
                                 metadata={"field": "format"})
        try:
            parsed = self._parse(fmt, definition)
        except HeadwaterError:
            REGISTRATIONS.labels("invalid").inc()
            raise

        def missing_group() -> Group:
            now = time.time()
            return Group(group_id, fmt, self.default_compatibility, now, now)

        def make(group: Group, previous: list[Version], number: int) -> Version:
            if group.format != fmt:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"schema group {group_id!r} holds {group.format} schemas, not {fmt}")
            try:
                issues = compatibility.check(group.compatibility, parsed,
                                             [(v.version, self._parse(v.format, v.definition)) for v in previous])
            except RecursionError:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "the definition is nested too deeply to check",
                                     metadata={"field": "definition"}) from None
            if issues:
                REGISTRATIONS.labels("incompatible").inc()
                raise incompatible(group, name, issues)
            return Version(uuid.uuid4().hex, group_id, name, number, fmt, definition, parsed.fingerprint,
                           time.time())

        version, created = self.store.register(group_id, name, parsed.fingerprint, make, missing_group)
        REGISTRATIONS.labels("created" if created else "existing").inc()
        return version, created

    def get_by_id(self, schema_id: str) -> Version:
        version = self.store.get_by_id((schema_id or "").strip().lower())
        if version is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"no schema with id {schema_id!r}",
                                 metadata={"resource": f"schemas/{schema_id}"})
        return version

    def get_version(self, group_id: str, name: str, version: int = 0) -> Version:
        if version < 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "version must be 1 or more (0 for the latest)",
                                 metadata={"field": "version"})
        self._group_or_404(group_id)
        found = self.store.get_version(self.check_group_id(group_id), self.check_name(name), version)
        if found is None:
            what = "any version" if version == 0 else f"version {version}"
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND,
                                 f"schema {name!r} in group {group_id!r} has no {what}",
                                 metadata={"resource": f"schemaGroups/{group_id}/schemas/{name}/versions/{version}"})
        return found

    def lookup(self, group_id: str, name: str, definition: str, fmt: str = "") -> Version:
        group = self._group_or_404(group_id)
        fmt = normalize_format(fmt) if fmt else group.format
        parsed = self._parse(fmt, definition)
        found = self.store.find(group.group_id, self.check_name(name), parsed.fingerprint)
        if found is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND,
                                 f"this definition is not registered as schema {name!r} in group {group_id!r}",
                                 metadata={"resource": f"schemaGroups/{group_id}/schemas/{name}"})
        return found

    def list_versions(self, group_id: str, name: str, page_size: int = 0,
                      page_token: str = "") -> tuple[list[Version], str]:
        group = self._group_or_404(group_id)
        size = _page_size(page_size)
        after = 0
        if page_token:
            try:
                after = int(_read_token(page_token))
            except ValueError:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, "page_token is not one this service gave",
                                     metadata={"field": "page_token"}) from None
        versions = self.store.list_versions(group.group_id, self.check_name(name), after, size + 1)
        if not versions and not page_token:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"no schema {name!r} in group {group_id!r}",
                                 metadata={"resource": f"schemaGroups/{group_id}/schemas/{name}"})
        more = len(versions) > size
        versions = versions[:size]
        return versions, _page_token(versions[-1].version) if more else ""

    def delete_version(self, group_id: str, name: str, version: int, *, idempotent: bool = False) -> Version:
        group = self._group_or_404(group_id)
        deleted = self.store.delete_version(group.group_id, self.check_name(name), version)
        if deleted is not None:
            return deleted
        if idempotent:
            found = self.store.get_any(group.group_id, name, version)
            if found is not None and found[1]:
                return found[0]
        raise HeadwaterError(Reason.RESOURCE_NOT_FOUND,
                             f"schema {name!r} in group {group_id!r} has no version {version}",
                             metadata={"resource": f"schemaGroups/{group_id}/schemas/{name}/versions/{version}"})


def incompatible(group: Group, name: str, issues: list[compatibility.Issue]) -> HeadwaterError:
    """SCHEMA_INCOMPATIBLE naming each broken rule (the metadata carries the first, and the count)."""
    # The status travels in trailing metadata (8 KiB by default): at most 10 issues in full.
    lines = "; ".join(str(i)[:400] for i in issues[:10])
    more = f" (and {len(issues) - 10} more)" if len(issues) > 10 else ""
    err = HeadwaterError(
        Reason.SCHEMA_INCOMPATIBLE,
        f"schema {name!r} is not {group.compatibility} compatible in group {group.group_id!r}: {lines}{more}",
        metadata={"group": group.group_id, "resource": f"schemaGroups/{group.group_id}/schemas/{name}",
                  "mode": group.compatibility,
                  "issue_count": len(issues), "rule": issues[0].rule, "path": issues[0].path[:400],
                  "version": issues[0].version,
                  "issues": json.dumps([{"version": i.version, "path": i.path[:400], "rule": i.rule,
                                         "message": i.message[:400], "direction": i.direction}
                                        for i in issues[:10]])},
    )
    err.issues = issues  # type: ignore[attr-defined]
    return err
