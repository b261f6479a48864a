"""Fixtures for the security tests: one real stack per test module, and tokens of every kind.

``stack`` starts the four services as real processes sharing one
``$HEADWATER_HOME`` (so one ``auth.json``) once per module, with policies
``send`` (Send), ``listen`` (Listen), ``manage`` (Manage) and the root policy.
``stack.token(kind)`` signs a token of one of :data:`TOKEN_KINDS` for the
namespace (or for ``entity``):

- ``none``: no token; ``forged``: the root policy's name, a key it does not
  have; ``expired``; ``other-namespace``: signed by the root key for another
  host; ``other-hub``: the root key, scoped to a hub the request is not about;
- ``send``, ``listen``, ``manage``: namespace-scoped tokens of those policies.

``stack.call(service, stub_class, method, request, kind)`` makes one RPC with
that token and returns the gRPC status code (``grpc.StatusCode.OK`` on success).

``stack`` is session-scoped: each xdist worker starts one stack and every
security module on that worker shares it (use names of your own: hubs, policies,
sinks). A module that needs services configured differently starts its own with
``start_stack(tmp_path_factory, env={...})`` in a module-scoped fixture (and marks
itself ``pytest.mark.xdist_group`` so one worker runs it).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from headwater.auth import Policy, PolicyStore, Right, generate_sas_token, new_key
from headwater.procs import ServiceProcess, start_local_services, stop_local_services

TOKEN_KINDS = ("none", "forged", "expired", "other-namespace", "other-hub", "send", "listen", "manage")
SERVICES = ("ingestion", "registry", "sink", "processing")
#: The namespace tokens name in these tests (the services accept localhost by default).
NAMESPACE = "headwater://localhost/"


@dataclass
class Stack:
    """Four services sharing one home; ``policies`` by name."""

    home: Path
    procs: dict[str, ServiceProcess]
    policies: dict[str, Policy] = field(default_factory=dict)

    def address(self, service: str) -> str:
        return self.procs[service].address

    @property
    def store(self) -> PolicyStore:
        return PolicyStore(self.home / "auth.json").ensure()

    def add_policy(self, name: str, *rights: Right, hub: str = "") -> Policy:
        policy = Policy(name, new_key(), frozenset(rights), secondary_key=new_key(), hub=hub)
        self.store.put(policy)
        self.policies[name] = policy
        return policy

    def token(self, kind: str, entity: str = "", ttl_s: int = 600) -> str | None:
        """A token of ``kind`` (see :data:`TOKEN_KINDS`); ``entity`` scopes the good ones to a hub."""
        root = self.policies["root"]
        resource = NAMESPACE + entity
        if kind == "none":
            return None
        if kind == "forged":
            return generate_sas_token(resource, root.name, new_key(), ttl_s)
        if kind == "expired":
            return generate_sas_token(resource, root.name, root.key, -60)
        if kind == "other-namespace":
            return generate_sas_token("headwater://other.example.com/" + entity, root.name, root.key, ttl_s)
        if kind == "other-hub":
            return generate_sas_token(NAMESPACE + "some-other-hub", root.name, root.key, ttl_s)
        policy = self.policies[kind]
        return generate_sas_token(resource, policy.name, policy.key, ttl_s)

    def call(self, service: str, stub_class: type, method: str, request, kind_or_token: str | None,
             *, raw_token: bool = False, timeout: float = 10.0) -> grpc.StatusCode:
        """One RPC with a token; returns the status code (OK when it succeeded)."""
        token = kind_or_token if raw_token else self.token(kind_or_token or "none")
        md = [("authorization", token)] if token else []
        with grpc.insecure_channel(self.address(service)) as ch:
            fn = getattr(stub_class(ch), method)
            try:
                result = fn(request, metadata=md, timeout=timeout)
                if hasattr(result, "__iter__") and not hasattr(result, "ListFields"):
                    for _ in result:  # a server stream: the first message (or error) is enough
                        break
                    result.cancel()
            except grpc.RpcError as exc:
                return exc.code()
        return grpc.StatusCode.OK


def start_stack(tmp_path_factory, env: dict[str, str] | None = None) -> Stack:
    """The four services as real processes sharing a new home, with send/listen/manage policies.
    Stop with :func:`stop_stack`."""
    home = tmp_path_factory.mktemp("security-home")
    store = PolicyStore(home / "auth.json").ensure()
    procs = start_local_services(SERVICES, home, env=env)
    st = Stack(home, procs, {"root": store.root()})
    st.add_policy("send", Right.SEND)
    st.add_policy("listen", Right.LISTEN)
    st.add_policy("manage", Right.MANAGE)
    return st


def stop_stack(st: Stack) -> None:
    stop_local_services(st.procs)


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """The four services as real processes, once per test session (per xdist worker)."""
    st = start_stack(tmp_path_factory)
    try:
        yield st
    finally:
        stop_stack(st)
