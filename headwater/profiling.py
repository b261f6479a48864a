"""A sampling profiler for services and job workers, switched on by the environment.

``HEADWATER_PROFILE_DIR=/some/folder`` makes every process that calls
:func:`headwater.interpreter.tune_interpreter` (each service, each job worker, the CLI)
sample the Python stacks of all its threads every few milliseconds (``HEADWATER_PROFILE_INTERVAL_MS``,
default 5), each sample weighted by the CPU time its thread used since the last one
(so a thread blocked in C weighs nothing and busy C code is counted where it was called),
and write them, every few seconds and at exit, as

- ``{name}-{pid}.folded``: one line per distinct stack, ``thread;frame;frame;... us``
  (flame-graph tools read it), and
- ``{name}-{pid}.txt``: per thread, its CPU time, the top lines by own CPU and the top
  functions by CPU anywhere on the stack.

It works across threads (the engine's worker thread as well as the event loop), which
``cProfile`` does not, and costs one stack walk per thread per sample. Use it to find
where a pipeline spends its time: ``HEADWATER_PROFILE_DIR=/tmp/prof headwater perf
pipeline --rate max``. The folder is the operator's own (an environment variable of
the process, never client input).
"""

from __future__ import annotations

import atexit
import collections
import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

__all__ = ["start_from_env"]

_started = False


def start_from_env(name: str = "") -> bool:
    """Start sampling if ``HEADWATER_PROFILE_DIR`` is set (once per process)."""
    global _started
    folder = os.environ.get("HEADWATER_PROFILE_DIR", "")
    if not folder or _started:
        return False
    _started = True
    interval = float(os.environ.get("HEADWATER_PROFILE_INTERVAL_MS", "5")) / 1000.0
    if not name:
        import multiprocessing

        proc = multiprocessing.current_process().name
        args = [a for a in sys.argv[1:3] if not a.startswith("-")]
        name = "worker" if proc != "MainProcess" else "-".join([Path(sys.argv[0]).name or "python", *args])
    sampler = _Sampler(Path(folder), f"{name}-{os.getpid()}", interval)
    sampler.start()
    atexit.register(sampler.dump)
    return True


class _Sampler(threading.Thread):
    def __init__(self, folder: Path, stem: str, interval: float) -> None:
        super().__init__(name="headwater-profiler", daemon=True)
        self.folder, self.stem, self.interval = folder, stem, interval
        self.stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
        self.samples = 0
        self._lock = threading.Lock()

    def run(self) -> None:
        me = threading.get_ident()
        last_dump = time.monotonic()
        clocks: dict[int, tuple[int, int]] = {}  # thread ident -> (clock id, CPU ns at the last sample)
        while True:
            time.sleep(self.interval)
            names = {t.ident: t.name for t in threading.enumerate()}
            frames = sys._current_frames()
            with self._lock:
                self.samples += 1
                for ident, frame in frames.items():
                    if ident == me:
                        continue
                    # Weighted by the CPU time the thread used since the last sample: a
                    # thread blocked in C (a poll, a read) weighs nothing, busy C code does.
                    try:
                        cid = clocks[ident][0] if ident in clocks else time.pthread_getcpuclockid(ident)
                        cpu = time.clock_gettime_ns(cid)
                    except (OSError, OverflowError):
                        continue
                    prev = clocks.get(ident, (cid, cpu))[1]
                    clocks[ident] = (cid, cpu)
                    used_us = (cpu - prev) // 1000
                    if used_us <= 0:
                        continue
                    stack = []
                    f: types.FrameType | None = frame
                    while f is not None:
                        code = f.f_code
                        stack.append(f"{Path(code.co_filename).name}:{code.co_name}:{f.f_lineno}")
                        f = f.f_back
                    kind = names.get(ident, "?").rstrip("0123456789_-")
                    self.stacks[(kind, *reversed(stack))] += used_us
                for ident in [i for i in clocks if i not in frames]:
                    del clocks[ident]
            if time.monotonic() - last_dump > 5:
                last_dump = time.monotonic()
                self.dump()

    def dump(self) -> None:
        with self._lock:
            stacks = dict(self.stacks)
            samples = self.samples
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / f"{self.stem}.folded").write_text(
                "".join(f"{';'.join(s)} {n}\n" for s, n in sorted(stacks.items(), key=lambda kv: -kv[1])))
            (self.folder / f"{self.stem}.txt").write_text(_report(stacks, samples))
        except OSError:
            pass


def _report(stacks: dict[tuple[str, ...], int], samples: int) -> str:
    """Per thread kind: CPU ms, then the top lines by own CPU and functions by inclusive CPU."""
    by_kind: dict[str, dict[str, Any]] = {}
    for stack, us in stacks.items():
        kind, frames = stack[0], stack[1:]
        d = by_kind.setdefault(kind, {"cpu": 0, "own": collections.Counter(), "incl": collections.Counter()})
        d["cpu"] += us
        if frames:
            d["own"][frames[-1]] += us
        for fr in {":".join(x.split(":")[:2]) for x in frames}:
            d["incl"][fr] += us
    total = sum(d["cpu"] for d in by_kind.values())
    lines = [f"{samples} samples, {total / 1000:.0f} ms CPU (each sample weighted by the CPU its thread used)"]
    for kind, d in sorted(by_kind.items(), key=lambda kv: -kv[1]["cpu"]):
        cpu = max(1, d["cpu"])
        lines.append(f"\n== thread {kind}: {d['cpu'] / 1000:.0f} ms CPU")
        lines.append("-- own (function:line)")
        lines += [f"{n / 1000:10.0f} ms {100.0 * n / cpu:5.1f}%  {f}" for f, n in d["own"].most_common(40)]
        lines.append("-- inclusive (function)")
        lines += [f"{n / 1000:10.0f} ms {100.0 * n / cpu:5.1f}%  {f}" for f, n in d["incl"].most_common(60)]
    return "\n".join(lines) + "\n"
