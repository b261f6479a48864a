"""Fault injection for the sink and processing services (off until a rule is set).

Ingestion's rules are set per hub through its RPCs (docs/ingestion.md). The sink
and processing services read theirs from a JSON file named by the setting
``faults_file`` (``HEADWATER_SINK_FAULTS_FILE``, ``HEADWATER_PROCESSING_FAULTS_FILE``),
read again whenever it changes, so a test or a chaos drill can make a running
service slow or failing and then heal it::

    [{"id": "slow", "operation": "write", "target": "mem", "delay_s": 3},
     {"id": "busy", "operation": "flush", "reason": "SERVICE_BUSY", "count": 2}]

A rule matches calls of its ``operation`` (``all`` for every one) on its
``target`` (a sink id, a hub; empty for any). It fires for the next ``count``
matching calls, or for a fraction ``probability`` of them (1 when neither is
given). A firing rule waits ``delay_s`` seconds (a slow peer), then, when it has a
``reason``, fails the call with that reason as the real code would (transient
reasons carry a ``retry_after``). docs/errors.md lists the operations of each
service.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headwater.errors import HeadwaterError, Reason

__all__ = ["FaultFile", "FileFaultRule"]

log = logging.getLogger(__name__)


@dataclass
class FileFaultRule:
    """One rule of a faults file."""

    rule_id: str
    operation: str = "all"
    target: str = ""
    reason: Reason | None = None
    delay_s: float = 0.0
    probability: float = 1.0
    count: int = 0
    fired: int = field(default=0, compare=False)

    @classmethod
    def parse(cls, raw: Any, where: str) -> FileFaultRule:
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: a rule must be an object")
        unknown = set(raw) - {"id", "operation", "target", "reason", "delay_s", "probability", "count"}
        if unknown:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
        reason = raw.get("reason")
        try:
            rule = cls(str(raw.get("id", where)), str(raw.get("operation", "all")), str(raw.get("target", "")),
                       Reason[reason] if reason else None, float(raw.get("delay_s", 0)),
                       float(raw.get("probability", 1.0)), int(raw.get("count", 0)))
        except KeyError:
            raise ValueError(f"{where}: reason {reason!r} is not an error reason (docs/errors.md)") from None
        if not 0 <= rule.probability <= 1 or rule.count < 0 or rule.delay_s < 0:
            raise ValueError(f"{where}: probability must be in 0..1, count and delay_s >= 0")
        if rule.reason is None and not rule.delay_s:
            raise ValueError(f"{where}: a rule needs a reason (fail) or a delay_s (slow)")
        return rule

    def fires(self, rng: random.Random) -> bool:
        if self.count:
            if self.fired >= self.count:
                return False
        elif self.probability < 1 and rng.random() >= self.probability:
            return False
        self.fired += 1
        return True


class FaultFile:
    """The rules of one service, from ``path`` (none when the path is empty)."""

    def __init__(self, path: str | os.PathLike[str] = "", rng: random.Random | None = None) -> None:
        self.path = Path(path) if path else None
        self.rng = rng or random.Random()
        self.rules: list[FileFaultRule] = []
        self._stamp: tuple[int, int] | None = None

    def _refresh(self) -> None:
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self.rules, self._stamp = [], None
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            data = json.loads(self.path.read_text() or "[]")
            if not isinstance(data, list):
                raise ValueError("the file must hold a JSON array of rules")
            self.rules = [FileFaultRule.parse(r, f"rule {i}") for i, r in enumerate(data)]
        except ValueError as exc:  # a bad file must not take the service down: say so, inject nothing
            log.error("faults file %s ignored: %s", self.path, exc)
            self.rules = []

    def firing(self, operation: str, target: str = "") -> FileFaultRule | None:
        """The first rule that fires for this call, counted."""
        self._refresh()
        for rule in self.rules:
            if rule.operation not in ("all", operation) or (rule.target and rule.target != target):
                continue
            if rule.fires(self.rng):
                return rule
        return None

    async def check(self, operation: str, target: str = "") -> None:
        """Delay and/or fail this call when a rule fires."""
        if self.path is None:
            return
        rule = self.firing(operation, target)
        if rule is None:
            return
        if rule.delay_s:
            await asyncio.sleep(rule.delay_s)
        if rule.reason is not None:
            transient = rule.reason in (Reason.SERVICE_BUSY, Reason.QUOTA_EXCEEDED)
            raise HeadwaterError(rule.reason, f"injected fault {rule.rule_id!r} ({operation} {target})".rstrip(),
                                 metadata={"fault_rule": rule.rule_id}, retry_after=0.05 if transient else None)
