"""Process-wide interpreter settings belong to entry points (headwater.interpreter), not to the engine."""

import gc
import subprocess
import sys

from headwater.interpreter import GC_THRESHOLD0, RECURSION_LIMIT


def test_library_code_leaves_the_interpreter_alone_and_the_entry_point_tunes_it() -> None:
    # A fresh interpreter (the test process's own settings are conftest's): compile and run a query
    # through the engine as an embedding program would, then call the entry point's tune_interpreter.
    code = (
        "import gc, sys\n"
        "before = (sys.getrecursionlimit(), gc.get_threshold()[0])\n"
        "from headwater.services.processing.engine import compile_query\n"
        "rt = compile_query('SELECT a, COUNT(*) AS n FROM s TIMESTAMP BY t GROUP BY a, TumblingWindow(second, 1)').runtime()\n"
        "rt.feed('s', [{'a': 'x', 't': '2024-01-01T00:00:00Z'}] * 100); rt.flush(); assert rt.take()\n"
        "after = (sys.getrecursionlimit(), gc.get_threshold()[0])\n"
        "from headwater.interpreter import tune_interpreter\n"
        "tune_interpreter(); tune_interpreter()\n"
        "print(before == after, sys.getrecursionlimit(), gc.get_threshold()[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", str(RECURSION_LIMIT), str(GC_THRESHOLD0)]


def test_the_test_process_is_tuned_like_a_service() -> None:
    assert sys.getrecursionlimit() >= RECURSION_LIMIT
    assert gc.get_threshold()[0] >= GC_THRESHOLD0
