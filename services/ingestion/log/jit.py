"""The ingestion service's compiled kernels (log/_kernels.py): the log's batch framing and
the Kafka endpoint's record codec.

Importing numba and loading the kernels takes about half a second of one core, so the
ingestion service starts doing it, in a thread (:class:`headwater.jit.Kernels`), when it
starts (``preload_kernels``; else the first time a batch large enough to matter arrives),
and uses the Python path until the kernels are ready; small batches always take the
Python path.
"""

from __future__ import annotations

from headwater.jit import Kernels

__all__ = ["KERNELS", "Kernels"]

#: The ingestion service's kernels (log/_kernels.py).
KERNELS = Kernels("headwater.services.ingestion.log._kernels")

if __name__ == "__main__":  # make setup: compile into numba's cache once, so services only load it
    KERNELS.load()
