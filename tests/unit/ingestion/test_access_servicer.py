"""AccessService over a policies file, without gRPC: names, pagination, keys only where documented."""

from __future__ import annotations

import pytest

from headwater.auth import PolicyStore
from headwater.errors import HeadwaterError, Reason
from headwater.services.ingestion.access import AccessServicer
from headwater.v1 import access_pb2 as pb


@pytest.fixture
def servicer(tmp_path):
    return AccessServicer(PolicyStore(tmp_path / "auth.json").ensure(), hub_exists=lambda hub: True)


async def test_pages_cover_every_policy_once(servicer):
    for name, parent in (("b", ""), ("a", ""), ("x", "hubs/h1"), ("y", "hubs/h2")):
        resp = await servicer.CreatePolicy(pb.CreatePolicyRequest(parent=parent, policy_id=name,
                                                                  rights=[pb.ACCESS_RIGHT_LISTEN]), None)
        assert resp.keys.primary_key and resp.keys.secondary_key and resp.keys.key_name == name
    seen, token = [], ""
    while True:
        page = await servicer.ListPolicies(pb.ListPoliciesRequest(page_size=1, page_token=token), None)
        seen += [p.name for p in page.policies]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(["policies/a", "policies/b", "hubs/h1/policies/x", "hubs/h2/policies/y",
                           "policies/RootManageSharedAccessKey"])
    only = await servicer.ListPolicies(pb.ListPoliciesRequest(parent="hubs/h1"), None)
    assert [p.name for p in only.policies] == ["hubs/h1/policies/x"]


async def test_refusals_are_invalid_argument_or_not_found(servicer):
    for request in (pb.CreatePolicyRequest(policy_id="ok", rights=[]),
                    pb.CreatePolicyRequest(policy_id="ok", rights=[pb.ACCESS_RIGHT_UNSPECIFIED]),
                    pb.CreatePolicyRequest(policy_id="bad\n", rights=[pb.ACCESS_RIGHT_SEND]),
                    pb.CreatePolicyRequest(parent="hubs/../x", policy_id="ok", rights=[pb.ACCESS_RIGHT_SEND])):
        with pytest.raises(HeadwaterError) as info:
            await servicer.CreatePolicy(request, None)
        assert info.value.reason is Reason.INVALID_ARGUMENT
    with pytest.raises(HeadwaterError) as info:
        await servicer.RegenerateKey(pb.RegenerateKeyRequest(name="policies/nope", key_type=pb.KEY_TYPE_PRIMARY),
                                     None)
    assert info.value.reason is Reason.RESOURCE_NOT_FOUND
    with pytest.raises(HeadwaterError) as info:
        await servicer.RegenerateKey(pb.RegenerateKeyRequest(name="policies/RootManageSharedAccessKey"), None)
    assert info.value.reason is Reason.INVALID_ARGUMENT
    got = await servicer.GetPolicy(pb.GetPolicyRequest(name="policies/RootManageSharedAccessKey"), None)
    assert set(got.policy.rights) == {pb.ACCESS_RIGHT_SEND, pb.ACCESS_RIGHT_LISTEN, pb.ACCESS_RIGHT_MANAGE}
