"""Fault injection for testing clients (off until a rule is set).

A rule on a hub makes a fraction (``probability``) or a count (``count``) of
matching requests fail with a chosen reason, as the real server would: the
error carries the reason's gRPC code, ErrorInfo and, for transient reasons,
RetryInfo. Rules live in memory: a restart clears them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from headwater.errors import HeadwaterError, Reason

__all__ = ["ALL", "PUBLISH", "READ", "FaultRule", "FaultRules"]

PUBLISH, READ, ALL = "publish", "read", "all"


@dataclass
class FaultRule:
    """One rule."""

    rule_id: str
    hub: str
    operation: str
    reason: Reason
    probability: float = 0.0
    count: int = 0
    partition_id: str = ""
    remaining: int = 0
    injected: int = 0


class FaultRules:
    """The rules of every hub."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rules: dict[str, dict[str, FaultRule]] = {}
        self.rng = rng or random.Random()

    def set(self, rule: FaultRule) -> FaultRule:
        if not 0.0 <= rule.probability <= 1.0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"probability {rule.probability} is not in 0..1",
                                 metadata={"field": "rule.probability"})
        if rule.count < 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"count {rule.count} is negative",
                                 metadata={"field": "rule.count"})
        if rule.count == 0 and rule.probability == 0.0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "a fault rule needs a probability > 0 or a count > 0",
                                 metadata={"field": "rule.probability"})
        rule.remaining = rule.count
        self.rules.setdefault(rule.hub, {})[rule.rule_id] = rule
        return rule

    def list(self, hub: str) -> list[FaultRule]:
        return sorted(self.rules.get(hub, {}).values(), key=lambda r: r.rule_id)

    def clear(self, hub: str, rule_id: str = "") -> int:
        rules = self.rules.get(hub, {})
        if not rule_id:
            n = len(rules)
            self.rules.pop(hub, None)
            return n
        return 1 if rules.pop(rule_id, None) is not None else 0

    def check(self, hub: str, operation: str, partition_id: str = "") -> None:
        """Raise the injected error when a rule fires for this request."""
        rules = self.rules.get(hub)
        if not rules:
            return
        for rule in rules.values():
            if rule.operation not in (ALL, operation):
                continue
            if rule.partition_id and partition_id and rule.partition_id != partition_id:
                continue
            if rule.count:
                if rule.remaining <= 0:
                    continue
                rule.remaining -= 1
            elif self.rng.random() >= rule.probability:
                continue
            rule.injected += 1
            raise HeadwaterError(
                rule.reason, f"injected fault {rule.rule_id!r} on hub {hub!r} ({operation})",
                metadata={"hub": hub, "fault_rule": rule.rule_id},
                retry_after=0.05 if rule.reason in (Reason.SERVICE_BUSY, Reason.QUOTA_EXCEEDED) else None)
