"""compose's restart policies under `headwater up`: parsing, decisions, and a real service restarted."""

from __future__ import annotations

import pytest

from headwater.compose import load_compose
from headwater.errors import HeadwaterError
from headwater.procs import ServiceProcess, headwater_cmd, wait_healthy
from headwater.supervisor import RestartPolicy, Supervisor
from tests.wait import wait_until


@pytest.mark.parametrize("text,code,so_far,restarts", [
    ("no", 1, 0, False),
    ("always", 0, 9, True),
    ("unless-stopped", 0, 0, True),
    ("on-failure", 0, 0, False),  # a clean exit is not a failure
    ("on-failure", -9, 5, True),
    ("on-failure:2", 1, 1, True),
    ("on-failure:2", 1, 2, False),  # at most 2 restarts
])
def test_policy_decides_like_compose(text, code, so_far, restarts):
    assert RestartPolicy.parse(text).restarts(code, so_far) is restarts


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:0", "on-failure:x"])
def test_a_bad_policy_names_the_service_and_the_value(text):
    with pytest.raises(HeadwaterError) as info:
        RestartPolicy.parse(text, "sink")
    assert "compose service 'sink'" in info.value.message and repr(text) in info.value.message


def test_compose_restart_is_read(tmp_path):
    (tmp_path / "c.yaml").write_text(
        "services:\n  a: {command: [headwater, serve, sink], restart: 'on-failure:3'}\n"
        "  b: {command: [headwater, serve, registry], restart: no}\n  c: {command: [headwater, serve, x]}\n")
    got = {s.name: RestartPolicy.parse(s.restart) for s in load_compose(tmp_path / "c.yaml")}
    assert got == {"a": RestartPolicy("on-failure", 3), "b": RestartPolicy("no"), "c": RestartPolicy("no")}


def test_a_killed_service_comes_back_on_its_address_until_the_limit(tmp_path):
    proc = ServiceProcess("registry", [*headwater_cmd(), "serve", "registry", "--port", "0", "--metrics-port", "-1"],
                          env={"HEADWATER_HOME": str(tmp_path)}).start()
    said: list[str] = []
    restarted: list[int] = []
    sup = Supervisor([proc], {"registry": RestartPolicy.parse("on-failure:1")}, initial_backoff_s=0.2,
                     say=said.append, on_restart=lambda p: restarted.append(p.pid))
    try:
        address, first = proc.address, proc.pid
        proc.kill()
        wait_until(lambda: (sup.check(), restarted)[1], timeout=60, every=0.05, what="a restart", fail=False)
        assert said[0].startswith("registry exited (code -9)") and "restarting in 0.2s" in said[0]
        assert said[1] == f"registry restarted (restart 1), healthy at {address}"
        assert restarted == [proc.pid] and proc.pid != first and proc.address == address
        assert "--port" in proc.argv and proc.argv[proc.argv.index("--port") + 1] == address.rpartition(":")[2]
        wait_healthy(address, timeout=10)
        proc.kill()  # on-failure:1 allows one restart only
        proc.proc.wait(10)
        sup.check()
        assert said[-1] == "registry exited (code -9); restart policy on-failure:1: not restarted"
        assert not sup.running() and sup.restarts("registry") == 1
    finally:
        proc.kill()


def test_replicas_get_their_services_policy():
    from headwater.supervisor import policy_of

    policies = {"ingestion": RestartPolicy("always"), "processing": RestartPolicy("on-failure", 2),
                "nats-1": RestartPolicy("unless-stopped")}
    assert policy_of(policies, "ingestion-2") == RestartPolicy("always")
    assert policy_of(policies, "processing-1") == RestartPolicy("on-failure", 2)
    assert policy_of(policies, "nats-1") == RestartPolicy("unless-stopped")  # a service of that name: its own
    assert policy_of(policies, "sink-2") == RestartPolicy()  # no such service: not restarted
    sup = Supervisor([ServiceProcess("ingestion-2", ["true"]), ServiceProcess("sink", ["true"])], policies)
    assert sup._state["ingestion-2"].policy == RestartPolicy("always")
    assert sup._state["sink"].policy == RestartPolicy()
