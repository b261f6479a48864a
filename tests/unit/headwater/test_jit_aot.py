"""The kernels' ahead-of-time route (headwater/jit.py): ``make setup`` builds each kernel
module into an extension that a process loads without numba or LLVM, with the JIT's results;
a stale or missing extension leaves the JIT route."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from headwater import jit
from headwater.services.processing.exec import jsondecode

#: One xdist worker runs these: in a new checkout numba's cache is empty and ``warm_up()``
#: compiles the kernels (about 12 CPU s); a second worker would compile them again at once.
pytestmark = pytest.mark.xdist_group("jit")

JSON = "headwater.services.processing.exec._jsonkernels"
LOG = "headwater.services.ingestion.log._kernels"


def test_a_process_has_the_kernels_without_numba_or_llvm() -> None:
    code = ("import sys; "
            "from headwater.services.processing.exec.jsondecode import KERNELS as J; "
            "from headwater.services.ingestion.log.jit import KERNELS as L; "
            "J.load(); L.load(); "
            "print(J.route, L.route, 'numba' in sys.modules, 'llvmlite' in sys.modules)")
    env = {k: v for k, v in os.environ.items() if k != "HEADWATER_JIT_AOT"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["aot", "aot", "False", "False"], (out.stdout, "built by `make setup`")


def test_the_jit_route_is_still_there() -> None:
    code = ("import sys; from headwater.services.processing.exec.jsondecode import KERNELS as J; J.load(); "
            "print(J.route, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HEADWATER_JIT_AOT": "0"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["jit", "True"]


_BODIES = [b'{"s": "a\\u00e9\\n", "i": 12, "f": 1.5e3, "b": true, "t": "2024-01-01T00:00:01.250Z"}',
           '{"s": "caf\u00e9", "i": -9007199254740993, "f": 0.1, "b": false, "t": "x"}'.encode(),
           b'{"i": 3, "f": 7, "other": [1, {"deep": null}], "s": null}',
           b'{"s": "\\ud83d\\ude00", "f": 123456789012345678901234567890.5, "I": 1}']


@pytest.mark.parametrize("bodies", [_BODIES, _BODIES * 3000, [*_BODIES, b'{"s": "a"'], [*_BODIES, b'{"S": "a"}']])
def test_the_extension_decodes_as_the_jit(monkeypatch, bodies) -> None:
    """The JSON decode with the extension's kernels and with numba's: the same frame (or the
    same refusal), over batches one thread and several threads decode."""
    aot = jit.load_aot(JSON)
    assert aot is not None, "built by `make setup`"
    module = importlib.import_module(JSON)
    module.warm_up()
    schema = {"s": pl.Utf8, "i": pl.Int64, "f": pl.Float64, "b": pl.Boolean, "t": pl.Utf8}
    results = []
    for kernels in (aot, module):
        loaded = jit.Kernels(JSON)
        loaded._mod = kernels
        monkeypatch.setattr(jsondecode, "KERNELS", loaded)
        decoder = jsondecode.TypedDecoder(schema, set(schema), iso="t")
        df = decoder.decode(bodies)
        results.append((df, decoder.micros[1] if decoder.micros else None))
    (a, a_micros), (b, b_micros) = results
    if isinstance(a, pl.DataFrame):
        assert a.equals(b, null_equal=True) and a_micros.equals(b_micros, null_equal=True)
        assert a.height == len(bodies)
    else:
        assert a == b == jsondecode.ROWS


def test_the_ingestion_kernels_come_from_the_extension_with_the_jit_results() -> None:
    aot, module = jit.load_aot(LOG), importlib.import_module(LOG)
    assert aot is not None, "built by `make setup`"
    module.warm_up()
    assert {n for n in module.__all__ if n.isupper()} <= set(vars(aot))
    out_a, out_b = np.zeros(256, np.uint8), np.zeros(256, np.uint8)
    events = np.frombuffer(b"abcdefgh", np.uint8)
    args = (np.array([2, 4], np.int64), np.frombuffer(b"key", np.uint8), 7, 9)
    assert aot.encode_frames(events, *args, out_a, 0, 8) == module.encode_frames(events, *args, out_b, 0, 8)
    assert out_a.tobytes() == out_b.tobytes()


def test_an_argument_of_another_type_is_refused_naming_it() -> None:
    """The extension would read the memory of an array of another type as its own: the loaded
    functions check each argument first."""
    aot = jit.load_aot(JSON)
    assert aot is not None, "built by `make setup`"
    with pytest.raises(TypeError, match=r"classify: argument 0 must be a C-contiguous 1-d uint8 array, not a .* int64"):
        aot.classify(np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="strided"):
        aot.classify(np.zeros(8, np.uint8)[::2])
    with pytest.raises(TypeError, match="takes 1 arguments"):
        aot.classify()
    assert aot.classify(np.frombuffer(b'{"a": 1}', np.uint8)) == (False, False)


def test_an_extension_built_for_another_source_is_not_loaded(monkeypatch, tmp_path) -> None:
    so, desc = jit.aot_paths(JSON)
    assert so.exists() and desc.exists(), "built by `make setup`"
    source = jit._source(JSON)
    edited = tmp_path / source.name
    edited.write_bytes(source.read_bytes() + b"\n# edited\n")
    monkeypatch.setattr(jit, "_source", lambda module: edited)
    assert jit.aot_paths(JSON)[0].name != so.name
    assert jit.load_aot(JSON) is None


def test_an_extension_for_instructions_this_cpu_lacks_is_not_loaded(monkeypatch) -> None:
    monkeypatch.setattr(jit, "_cpu_flags", lambda: {"sse2"})
    assert jit.load_aot(JSON) is None
