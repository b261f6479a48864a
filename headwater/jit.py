"""Compiled kernels for byte-level hot paths, loaded in the background.

The log's batch encoding, the Kafka endpoint's record codec and the query engine's JSON
decode are loops over bytes that Python runs at about a microsecond per event. numba
compiles them to machine code. Two routes load that code:

- ahead of time: ``make setup`` (``python -m headwater.jit MODULE...``) compiles a kernel
  module's functions with ``numba.pycc`` into an extension module in the module's
  ``__pycache__``, named by a digest of the module's source and numba's version. A process
  loads that extension (a shared library: about 1 MB) without importing numba or LLVM, so it
  does not pay their ~110 MB of resident memory;
- just in time: where that extension is missing or stale (another source, another numba,
  a CPU without the instructions it was built for), the module itself is imported and its
  ``warm_up()`` compiles or loads numba's cache (``cache=True``): about half a second of one
  core and ~110 MB. ``HEADWATER_JIT_AOT=0`` takes this route always.

A process starts loading in a thread (when it starts, or the first time a batch large
enough to matter arrives) and uses the Python path until the kernels are ready. If neither
route loads, the Python path stays (a warning is logged once).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

__all__ = ["AOT_ENABLED", "Kernels", "aot_paths", "build_aot", "load_aot"]

log = logging.getLogger("headwater.jit")

#: ``HEADWATER_JIT_AOT=0``: never load the ahead-of-time extensions (always numba's JIT)
AOT_ENABLED = os.environ.get("HEADWATER_JIT_AOT", "1").strip().lower() not in ("0", "false", "no", "off")


class Kernels:
    """A kernel module (with a ``warm_up()`` function), loaded in a thread: its ahead-of-time
    extension if one was built for its source, else the module compiled by numba."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._mod: ModuleType | SimpleNamespace | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: BaseException | None = None
        #: "aot" or "jit" once loaded
        self.route: str | None = None

    def get(self) -> Any:
        """The kernels when loaded; otherwise None, and loading starts in the background."""
        mod = self._mod
        if mod is not None:
            return mod
        if self._thread is None and self.error is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._load, name=f"jit {self.module}", daemon=True)
                    self._thread.start()
        return None

    @property
    def loaded(self) -> Any:
        """The kernels if they are loaded, without starting to load them."""
        return self._mod

    def load(self) -> Any:
        """The kernels, waiting for them (tests, warm-up); raises what loading raised."""
        self.get()
        if self._thread is not None:
            self._thread.join()
        if self._mod is None:
            raise RuntimeError(f"the compiled kernels of {self.module} did not load: {self.error}")
        return self._mod

    def _load(self) -> None:
        start = time.perf_counter()
        try:
            aot = load_aot(self.module) if AOT_ENABLED else None
            if aot is not None:
                self.route = "aot"
                self._mod = aot
            else:
                mod = importlib.import_module(self.module)
                mod.warm_up()
                self.route = "jit"
                self._mod = mod
            log.info("compiled kernels %s loaded in %.2f s (%s)", self.module, time.perf_counter() - start, self.route)
        except Exception as exc:  # noqa: BLE001 - no compiler/numba here: the Python path stays
            self.error = exc
            log.warning("compiled kernels %s unavailable, using the Python path: %s", self.module, exc)


def _source(module: str) -> Path:
    spec = importlib.util.find_spec(module)  # imports the parent packages, not the module
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(module)
    return Path(spec.origin)


def aot_paths(module: str) -> tuple[Path, Path]:
    """Where ``module``'s ahead-of-time extension and its description are (or would be)
    for its current source and the installed numba: ``__pycache__/NAME_aot.DIGEST.so``
    and ``.json``."""
    src = _source(module)
    digest = hashlib.sha256(src.read_bytes())
    digest.update(importlib.metadata.version("numba").encode())
    digest.update(sys.implementation.cache_tag.encode())
    stem = f"{src.stem}_aot.{digest.hexdigest()[:16]}"
    return src.parent / "__pycache__" / f"{stem}.so", src.parent / "__pycache__" / f"{stem}.json"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def load_aot(module: str) -> SimpleNamespace | None:
    """``module``'s kernels from its ahead-of-time extension, or None when none was built for
    this source and numba, or it was built for instructions this CPU lacks. The functions
    check their arguments' types (the extension itself would read an array of another type
    as raw memory); the module's constants come from the description."""
    so, desc_path = aot_paths(module)
    if not so.exists() or not desc_path.exists():
        log.info("no ahead-of-time kernels for %s (%s): numba compiles them", module, so.name)
        return None
    desc = json.loads(desc_path.read_text())
    missing = set(desc["cpu_flags"]) - _cpu_flags()
    if missing:
        log.warning("ahead-of-time kernels %s need CPU flags %s: numba compiles them", so.name, sorted(missing))
        return None
    name = desc["extension"]
    loader = importlib.machinery.ExtensionFileLoader(name, str(so))
    spec = importlib.util.spec_from_file_location(name, so, loader=loader)
    if spec is None:
        return None
    ext = importlib.util.module_from_spec(spec)
    loader.exec_module(ext)
    ns = SimpleNamespace(**desc["constants"])
    for fn, args in desc["functions"].items():
        setattr(ns, fn, _checked(getattr(ext, fn), f"{module}.{fn}", args))
    ns.warm_up = lambda: None
    return ns


def _checked(fn: Any, name: str, spec: list[list[Any]]) -> Any:
    """``fn`` that first checks each argument against ``spec`` (per argument: None for a
    scalar, else [dtype, ndim, may be read-only]): a clear TypeError instead of reading memory
    as the wrong type."""
    import numpy as np

    arrays = [(i, np.dtype(s[0]), s[1], s[2]) for i, s in enumerate(spec) if s is not None]
    count = len(spec)

    def call(*args: Any) -> Any:
        if len(args) != count:
            raise TypeError(f"{name} takes {count} arguments, not {len(args)}")
        for i, dtype, ndim, readonly in arrays:
            a = args[i]
            if (not isinstance(a, np.ndarray) or a.dtype != dtype or a.ndim != ndim or not a.flags.c_contiguous
                    or not (readonly or a.flags.writeable)):
                raise TypeError(f"{name}: argument {i} must be a C-contiguous {'' if readonly else 'writable '}"
                                f"{ndim}-d {dtype} array, not {_describe(a)}")
        return fn(*args)

    call.__name__ = name.rsplit(".", 1)[1]
    return call


def _describe(a: Any) -> str:
    if hasattr(a, "dtype") and hasattr(a, "flags"):
        return (f"a {'C-contiguous' if a.flags.c_contiguous else 'strided'} {'writable' if a.flags.writeable else 'read-only'}"
                f" {a.ndim}-d {a.dtype} array")
    return type(a).__name__


def build_aot(module: str) -> Path:
    """Compile ``module``'s kernels with numba's ahead-of-time compiler (``numba.pycc``) into
    the extension :func:`load_aot` loads. Each function (a numba dispatcher named in
    ``__all__``) is exported for the argument types its ``warm_up()`` compiles (one signature:
    read-only and writable arrays differ only to numba's typing), for this CPU, releasing the
    GIL as the JIT's ``nogil=True``. Also fills numba's cache (the JIT route) on the way."""
    llvm: Any = importlib.import_module("llvmlite.binding")  # untyped: Any
    numba: Any = importlib.import_module("numba")
    pycc: Any = importlib.import_module("numba.pycc")
    pycc_compiler: Any = importlib.import_module("numba.pycc.compiler")

    mod = importlib.import_module(module)
    mod.warm_up()
    so, desc_path = aot_paths(module)
    so.parent.mkdir(exist_ok=True)
    ext = so.name.split(".", 1)[0]
    cc = pycc.CC(ext)
    cc.output_dir = str(so.parent)
    cc.output_file = so.name
    cc.target_cpu = llvm.get_host_cpu_name()
    desc: dict[str, Any] = {"module": module, "extension": ext, "numba": numba.__version__,
                            "cpu": cc.target_cpu, "constants": {}, "functions": {}}
    for fn in mod.__all__:
        value = getattr(mod, fn)
        if isinstance(value, (bool, int, float)):
            desc["constants"][fn] = value
        if not isinstance(value, numba.core.registry.CPUDispatcher):
            continue
        sigs = value.signatures
        sig = min(sigs, key=lambda s: sum(isinstance(t, numba.types.Array) and not t.mutable for t in s))
        cc.export(fn, value.overloads[sig].signature)(value.py_func)
        desc["functions"][fn] = [
            None if not isinstance(t, numba.types.Array) else
            [str(t.dtype), t.ndim, any(not s[i].mutable for s in sigs)]
            for i, t in enumerate(sig)]
        if any(isinstance(t, numba.types.Array) and t.layout != "C" for t in sig):
            raise TypeError(f"{module}.{fn}: only C-contiguous arrays can be checked at the call")

    plain = pycc_compiler.compile_extra
    exported = {getattr(mod, fn).py_func: getattr(mod, fn) for fn in desc["functions"]}

    def compile_as_jit(typingctx: Any, targetctx: Any, func: Any, args: Any, return_type: Any, flags: Any,
                       **kwargs: Any) -> Any:
        """pycc compiles every export with one set of flags: each gets its own options instead
        (``_nrt=False``: no reference counting, the kernels' speed), as the JIT compiles it,
        and releases the GIL (pycc's wrappers hold it; the JSON decode runs a batch's ranges in
        threads): none of the kernels touches a Python object."""
        dispatcher = exported[func]
        own = type(flags)()
        dispatcher.targetdescr.options.parse_as_flags(own, dispatcher.targetoptions)
        own.no_compile = flags.no_compile
        own.release_gil = True
        return plain(typingctx, targetctx, func, args, return_type, own, **kwargs)

    pycc_compiler.compile_extra = compile_as_jit
    try:
        cc.compile()
    finally:
        pycc_compiler.compile_extra = plain
    desc["cpu_flags"] = sorted(_cpu_flags() & _isa_flags(llvm.get_host_cpu_features()))
    desc_path.write_text(json.dumps(desc, indent=1))
    for old in so.parent.glob(f"{ext}.*"):
        if old not in (so, desc_path):
            old.unlink()
    return so


def _isa_flags(features: Any) -> set[str]:
    """The /proc/cpuinfo names of the instruction sets LLVM's host features enable."""
    on = {k.replace(".", "_").replace("-", "_") for k, v in features.items() if v}
    return on | {k.replace("_", "") for k in on}


def main(argv: list[str]) -> None:
    """``python -m headwater.jit MODULE...``: build each kernel module's ahead-of-time extension."""
    for module in argv:
        start = time.perf_counter()
        so = build_aot(module)
        print(f"built {so} in {time.perf_counter() - start:.0f} s")  # noqa: T201 - make setup's output


if __name__ == "__main__":
    main(sys.argv[1:])
