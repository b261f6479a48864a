"""The ingestion service loads its compiled batch kernels (log/jit.py) when it starts, so a
burst's first large batches do not take the Python path while they load (`preload_kernels`)."""

from __future__ import annotations

from tests.wait import wait_until


def _loaded(lines) -> bool:
    return any("compiled kernels" in line and "loaded in" in line for line in lines)


def test_the_service_loads_its_compiled_kernels_when_it_starts(service_process):
    proc = service_process("ingestion", env={"HEADWATER_INGESTION_PRELOAD_KERNELS": "1"})
    wait_until(lambda: list(proc.lines), _loaded, timeout=60, what="the kernels' 'loaded' log line")


def test_a_bad_preload_setting_is_refused_naming_it(service_process):
    import pytest

    with pytest.raises(Exception) as info:
        service_process("ingestion", env={"HEADWATER_INGESTION_PRELOAD_KERNELS": "sometimes"})
    assert "preload_kernels" in str(info.value)
