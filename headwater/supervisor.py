"""Supervision of ``headwater up``'s services by compose's ``restart:`` policy.

Policies, as docker compose defines them:

- ``no`` (the default): a service that exits stays down; the others keep running.
- ``always`` / ``unless-stopped``: restarted whenever it exits (``headwater up`` only
  stops services on Ctrl-C or ``headwater down``, so the two behave the same here).
- ``on-failure[:N]``: restarted when it exits with a non-zero code (a signal counts),
  at most N times when N is given.

A restart waits a backoff that doubles from ``initial_backoff_s`` (0.5 s) up to
``max_backoff_s`` (30 s) and falls back to the initial one after the service has run
``reset_after_s`` (10 s); docker does the same (100 ms doubling to 1 min, reset after
10 s up). The service comes back on the address it had (an ephemeral ``--port 0``
is pinned to the port first chosen), so the services that call it find it again.
Services stopped on purpose (``headwater down``) are not restarted. Every exit
and restart is logged on ``headwater up``'s output (and the
``headwater.supervisor`` logger).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from headwater.errors import HeadwaterError, Reason
from headwater.procs import ServiceProcess

__all__ = ["RestartPolicy", "Supervisor", "compose_policies", "policy_of"]

log = logging.getLogger("headwater.supervisor")


@dataclass(frozen=True)
class RestartPolicy:
    """One service's ``restart:`` value."""

    mode: str = "no"
    #: ``on-failure:N``: the most restarts; 0 = no limit.
    max_retries: int = 0

    @classmethod
    def parse(cls, text: str | bool | None, service: str = "") -> RestartPolicy:
        """``no``, ``always``, ``unless-stopped``, ``on-failure`` or ``on-failure:N``."""
        raw = "no" if text is None or text is False else str(text).strip()
        mode, _, count = raw.partition(":")
        where = f"compose service {service!r}: " if service else ""
        if mode not in ("no", "always", "unless-stopped", "on-failure") or (count and mode != "on-failure"):
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"{where}restart {raw!r}: expected no, always, unless-stopped, on-failure[:N]")
        if count and (not count.isdigit() or int(count) < 1):
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"{where}restart {raw!r}: the count after on-failure: must be a whole number >= 1")
        return cls(mode, int(count) if count else 0)

    def restarts(self, exit_code: int | None, restarts_so_far: int) -> bool:
        """Whether a service that exited with ``exit_code`` is started again."""
        if self.mode in ("always", "unless-stopped"):
            return True
        if self.mode == "on-failure":
            return exit_code != 0 and (not self.max_retries or restarts_so_far < self.max_retries)
        return False

    def __str__(self) -> str:
        return f"{self.mode}:{self.max_retries}" if self.max_retries else self.mode


@dataclass
class _State:
    policy: RestartPolicy
    restarts: int = 0
    backoff: float = 0.0
    started: float = field(default_factory=time.monotonic)
    due: float | None = None  # when the pending restart runs
    down: bool = False  # exited and not to be restarted


@dataclass
class Supervisor:
    """Watches started services and restarts them by policy; call :meth:`check` periodically."""

    procs: list[ServiceProcess]
    policies: Mapping[str, RestartPolicy]
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    reset_after_s: float = 10.0
    start_timeout_s: float = 60.0
    #: Called after each restart (``headwater up`` rewrites its pid file).
    on_restart: Callable[[ServiceProcess], None] | None = None
    say: Callable[[str], None] = field(default=lambda text: print(f"headwater up: {text}", flush=True))
    #: True once the stack is being stopped on purpose (``headwater down``): no more restarts.
    stopped: Callable[[], bool] = field(default=lambda: False)
    _state: dict[str, _State] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for proc in self.procs:
            self._state[proc.name] = _State(policy_of(self.policies, proc.name))

    def _log(self, text: str) -> None:
        log.info("%s", text)
        self.say(text)

    def check(self, now: float | None = None) -> None:
        """Notice exits and run the restarts that are due."""
        now = time.monotonic() if now is None else now
        if self.stopped():
            return
        for proc in self.procs:
            st = self._state[proc.name]
            if st.down or proc.alive():
                continue
            if st.due is None:
                code = proc.proc.returncode if proc.proc is not None else None
                ran = now - st.started
                if not st.policy.restarts(code, st.restarts):
                    st.down = True
                    self._log(f"{proc.name} exited (code {code}); restart policy {st.policy}: not restarted")
                    continue
                st.backoff = self.initial_backoff_s if ran >= self.reset_after_s or not st.backoff \
                    else min(st.backoff * 2, self.max_backoff_s)
                st.due = now + st.backoff
                self._log(f"{proc.name} exited (code {code}) after {ran:.1f}s; restarting in {st.backoff:g}s "
                          f"(restart policy {st.policy}, restart {st.restarts + 1})")
            if now >= st.due:
                self._restart(proc, st)

    def _restart(self, proc: ServiceProcess, st: _State) -> None:
        st.due, st.restarts = None, st.restarts + 1
        st.started = time.monotonic()
        proc.argv = _pin_port(list(proc.argv), proc.address)
        try:
            proc.start(self.start_timeout_s)
        except (RuntimeError, HeadwaterError, OSError) as exc:
            # Did not come up: counted as another exit at the next check (with a longer backoff).
            proc.kill()
            self._log(f"{proc.name} restart {st.restarts} failed: {str(exc).splitlines()[0]}")
            return
        if self.on_restart is not None:  # first (up.pids), so whoever reads the line below finds the new pid
            self.on_restart(proc)
        self._log(f"{proc.name} restarted (restart {st.restarts}), healthy at {proc.address}")

    def running(self) -> bool:
        """True while some service runs or will be restarted."""
        return any(p.alive() or not self._state[p.name].down for p in self.procs)

    def restarts(self, name: str) -> int:
        return self._state[name].restarts


def policy_of(policies: Mapping[str, RestartPolicy], name: str) -> RestartPolicy:
    """The policy of the process ``name``: its compose service's, also for a replica
    (``ingestion-2`` is a replica of ``ingestion`` unless a service has that name)."""
    if name in policies:
        return policies[name]
    base, _, number = name.rpartition("-")
    if number.isdigit() and base in policies:
        return policies[base]
    return RestartPolicy()


def compose_policies(compose_file: str, profiles: tuple[str, ...] = ()) -> dict[str, RestartPolicy]:
    """Each service's restart policy in ``compose_file``; a bad value is an error naming the service."""
    from headwater.compose import load_compose

    return {s.name: RestartPolicy.parse(s.restart, s.name) for s in load_compose(compose_file, tuple(profiles))}


def _pin_port(argv: list[str], address: str) -> list[str]:
    """``--port 0`` becomes the port the service first bound, so its address stays the same."""
    port = address.rpartition(":")[2]
    if not port.isdigit():
        return argv
    for i, arg in enumerate(argv[:-1]):
        if arg == "--port" and argv[i + 1] == "0":
            argv[i + 1] = port
    return argv
