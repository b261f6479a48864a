"""headwater.v1.AccessService: shared access policies over the policies file.

Served by the ingestion service (the namespace). The file is the one every
service reads (:class:`headwater.auth.PolicyStore` reloads it when it changes),
so a policy created, renewed or deleted here holds on every service at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from google.protobuf import timestamp_pb2

from headwater.auth import Policy, PolicyStore, Right, new_key, parse_rights
from headwater.errors import HeadwaterError, Reason
from headwater.names import check_name
from headwater.v1 import access_pb2, access_pb2_grpc

__all__ = ["AccessServicer", "policy_name", "split_policy_name"]

log = logging.getLogger("headwater.access")

_RIGHTS = {access_pb2.ACCESS_RIGHT_SEND: Right.SEND, access_pb2.ACCESS_RIGHT_LISTEN: Right.LISTEN,
           access_pb2.ACCESS_RIGHT_MANAGE: Right.MANAGE}
_RIGHT_VALUES = {v: k for k, v in _RIGHTS.items()}


def policy_name(policy: Policy) -> str:
    return f"hubs/{policy.hub}/policies/{policy.name}" if policy.hub else f"policies/{policy.name}"


def _parent_hub(parent: str, field: str = "parent") -> str:
    if not parent:
        return ""
    parts = parent.split("/")
    if len(parts) != 2 or parts[0] != "hubs":
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field} {parent[:80]!r} must be empty (the namespace) "
                             "or hubs/{hub}", metadata={"field": field})
    return check_name("hub", parts[1], field)


def split_policy_name(name: str, field: str = "name") -> tuple[str, str]:
    """``policies/p`` -> ('', 'p'); ``hubs/h/policies/p`` -> ('h', 'p')."""
    parts = name.split("/")
    if len(parts) == 2 and parts[0] == "policies":
        return "", check_name("policy", parts[1], field)
    if len(parts) == 4 and parts[0] == "hubs" and parts[2] == "policies":
        return check_name("hub", parts[1], field), check_name("policy", parts[3], field)
    raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field} {name[:80]!r} must be policies/{{policy}} or "
                         "hubs/{hub}/policies/{policy}", metadata={"field": field})


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromNanoseconds(int(seconds * 1e9))
    return t


def _proto(policy: Policy) -> access_pb2.AccessPolicy:
    return access_pb2.AccessPolicy(
        name=policy_name(policy), hub=f"hubs/{policy.hub}" if policy.hub else "",
        rights=sorted(_RIGHT_VALUES[r] for r in policy.rights),
        create_time=_ts(policy.create_time), update_time=_ts(policy.modify_time))


def _keys(policy: Policy) -> access_pb2.AccessKeys:
    return access_pb2.AccessKeys(key_name=policy.name, primary_key=policy.key, secondary_key=policy.secondary_key)


class AccessServicer(access_pb2_grpc.AccessServiceServicer):
    """Create, list, delete policies and rotate their keys (every RPC needs Manage)."""

    def __init__(self, store: PolicyStore, hub_exists: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self.hub_exists = hub_exists

    def _get(self, name: str) -> Policy:
        hub, policy_id = split_policy_name(name)
        policy = self.store.get(policy_id, hub)
        if policy is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, f"no policy {name!r}", metadata={
                "resource": f"hubs/{hub}/policies/{policy_id}" if hub else f"policies/{policy_id}"})
        return policy

    async def CreatePolicy(self, request, context):
        hub = _parent_hub(request.parent)
        if hub and self.hub_exists is not None:
            self.hub_exists(hub)  # RESOURCE_NOT_FOUND when it does not exist
        name = check_name("policy", request.policy_id, "policy_id")
        unknown = [r for r in request.rights if r not in _RIGHTS]
        if unknown:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"rights: {unknown[0]} is not Send, Listen or Manage",
                                 metadata={"field": "rights"})
        rights = parse_rights(_RIGHTS[r].value for r in request.rights)
        policy = self.store.create(Policy(name, new_key(), rights, secondary_key=new_key(), hub=hub))
        log.info("policy created", extra={"fields": {"policy": policy_name(policy),
                                                     "rights": sorted(r.value for r in rights)}})
        return access_pb2.CreatePolicyResponse(policy=_proto(policy), keys=_keys(policy))

    async def GetPolicy(self, request, context):
        return access_pb2.GetPolicyResponse(policy=_proto(self._get(request.name)))

    async def ListPolicies(self, request, context):
        if request.page_size < 0:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "page_size must be >= 0", metadata={"field": "page_size"})
        hub = _parent_hub(request.parent) if request.parent else None
        policies = sorted(self.store.all(hub), key=policy_name)  # the page token is the last name
        if request.page_token:
            policies = [p for p in policies if policy_name(p) > request.page_token]
        size = min(request.page_size or 100, 1000)
        page = policies[:size]
        token = policy_name(page[-1]) if len(policies) > size else ""
        return access_pb2.ListPoliciesResponse(policies=[_proto(p) for p in page], next_page_token=token)

    async def DeletePolicy(self, request, context):
        hub, policy_id = split_policy_name(request.name)
        self.store.delete(policy_id, hub)
        log.info("policy deleted", extra={"fields": {"policy": request.name}})
        return access_pb2.DeletePolicyResponse()

    async def RegenerateKey(self, request, context):
        hub, policy_id = split_policy_name(request.name)
        which = {access_pb2.KEY_TYPE_PRIMARY: "primary", access_pb2.KEY_TYPE_SECONDARY: "secondary"}.get(
            request.key_type)
        if which is None:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "key_type must be KEY_TYPE_PRIMARY or KEY_TYPE_SECONDARY",
                                 metadata={"field": "key_type"})
        policy = self.store.renew(policy_id, hub, which)
        log.info("policy key regenerated", extra={"fields": {"policy": request.name, "key": which}})
        return access_pb2.RegenerateKeyResponse(keys=_keys(policy))

    async def GetPolicyKeys(self, request, context):
        return access_pb2.GetPolicyKeysResponse(keys=_keys(self._get(request.name)))
