"""Fault injection for testing clients (off until a rule is set).

A rule on a hub makes a fraction (``probability``) or a count (``count``) of
matching requests fail with a chosen reason, as the real server would: the
error carries the reason's gRPC code, ErrorInfo and, for transient reasons,
RetryInfo. Rules live in memory: a restart clears them. On the NATS backend
they live in the shared key-value bucket instead (``metadata_nats.KvFaults``),
so a rule set through one instance fires on every instance, ``count`` times in all.
"""

from __future__ import annotations

import builtins
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
            if matches(rule, operation, partition_id) and fires(rule, self.rng):
                raise injected_error(rule, hub, operation)

    # The servicer's face (the shared rules of the NATS backend have the same).
    async def set_async(self, rule: FaultRule) -> FaultRule:
        return self.set(rule)

    async def list_async(self, hub: str) -> builtins.list[FaultRule]:
        return self.list(hub)

    async def clear_async(self, hub: str, rule_id: str = "") -> int:
        return self.clear(hub, rule_id)

    async def check_async(self, hub: str, operation: str, partition_id: str = "") -> None:
        self.check(hub, operation, partition_id)


def validate(rule: FaultRule) -> None:
    """INVALID_ARGUMENT naming the field when a rule cannot be set."""
    FaultRules().set(rule)
    rule.injected = 0


def matches(rule: FaultRule, operation: str, partition_id: str) -> bool:
    if rule.operation not in (ALL, operation):
        return False
    return not (rule.partition_id and partition_id and rule.partition_id != partition_id)


def fires(rule: FaultRule, rng: random.Random) -> bool:
    """Whether ``rule`` fires now; counts it (remaining, injected) when it does."""
    if rule.count:
        if rule.remaining <= 0:
            return False
        rule.remaining -= 1
    elif rng.random() >= rule.probability:
        return False
    rule.injected += 1
    return True


def injected_error(rule: FaultRule, hub: str, operation: str) -> HeadwaterError:
    return HeadwaterError(
        rule.reason, f"injected fault {rule.rule_id!r} on hub {hub!r} ({operation})",
        metadata={"resource": f"hubs/{hub}", "fault_rule": rule.rule_id},
        retry_after=0.05 if rule.reason in (Reason.SERVICE_BUSY, Reason.QUOTA_EXCEEDED) else None)
