"""Compiled kernels for byte-level hot paths, loaded in the background.

The log's batch encoding, the Kafka endpoint's record codec and the query engine's JSON
decode are loops over bytes that Python runs at about a microsecond per event. numba
compiles them to machine code (``cache=True``: once per installation, later processes
load the cached code). Importing numba and loading the kernels takes about half a second
of one core, so a process starts doing it in a thread (when it starts, or the first time
a batch large enough to matter arrives) and uses the Python path until the kernels are
ready. If numba cannot load, the
Python path stays (a warning is logged once).
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from types import ModuleType

__all__ = ["Kernels"]

log = logging.getLogger("headwater.jit")


class Kernels:
    """A kernel module (with a ``warm_up()`` function) imported and compiled in a thread."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._mod: ModuleType | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def get(self) -> ModuleType | None:
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
    def loaded(self) -> ModuleType | None:
        """The kernels if they are loaded, without starting to load them."""
        return self._mod

    def load(self) -> ModuleType:
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
            mod = importlib.import_module(self.module)
            mod.warm_up()
            self._mod = mod
            log.info("compiled kernels %s loaded in %.2f s", self.module, time.perf_counter() - start)
        except Exception as exc:  # noqa: BLE001 - no compiler/numba here: the Python path stays
            self.error = exc
            log.warning("compiled kernels %s unavailable, using the Python path: %s", self.module, exc)
