"""The ingestion service's compiled kernels (log/_kernels.py): the log's batch framing and
the Kafka endpoint's record codec.

Loading the kernels takes milliseconds from the extension ``make setup`` builds ahead of
time, about half a second of one core from numba's JIT and its cache (where the extension
is missing or stale), so the ingestion service starts doing it, in a thread (:class:`headwater.jit.Kernels`), when it
starts (``preload_kernels``; else the first time a batch large enough to matter arrives),
and uses the Python path until the kernels are ready; small batches always take the
Python path.
"""

from __future__ import annotations

from headwater.jit import Kernels

__all__ = ["KERNELS", "Kernels"]

#: The ingestion service's kernels (log/_kernels.py).
KERNELS = Kernels("headwater.services.ingestion.log._kernels")

if __name__ == "__main__":  # loads them (numba's cache, or the extension `python -m headwater.jit` built)
    KERNELS.load()
