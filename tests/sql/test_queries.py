"""Data-driven query tests: ``queries/*.sql`` + ``inputs/*.json`` -> ``golden/*.json``.

Header comments of a query file:

- ``-- inputs: NAME`` the events, ``inputs/NAME.json`` (``{alias: [events]}``);
- ``-- references: ALIAS[, ...]`` aliases of that file read as reference inputs;
- ``-- fail: line L, column C: message`` the query must not compile, with that error
  (prefix match on the message); ``-- known_inputs: A[, B]`` compiles it knowing only those
  stream inputs (as a job or ``headwater query test`` does).

``explain/NAME.txt`` holds the plan (``headwater query explain``) of each query that compiles.

Set ``HEADWATER_UPDATE_GOLDEN=1`` to (re)write the golden files, then review the diff.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from headwater.errors import QueryCompileError
from headwater.pluginmanager import get_plugin_manager
from headwater.services.processing.testing import run_query

HERE = Path(__file__).parent
QUERIES = sorted((HERE / "queries").glob("*.sql"))


def _headers(text: str) -> dict[str, str]:
    return {m.group(1).lower(): m.group(2).strip() for m in re.finditer(r"^--\s*(\w+):\s*(.*)$", text, re.M)}


@pytest.fixture(scope="module")
def pm():
    return get_plugin_manager(load_entrypoints=False).collect()


@pytest.mark.parametrize("path", QUERIES, ids=[p.stem for p in QUERIES])
def test_query(path: Path, pm) -> None:
    text = path.read_text()
    h = _headers(text)
    if "fail" in h:
        m = re.match(r"line (\d+), column (\d+): (.*)", h["fail"])
        assert m, "-- fail: needs 'line L, column C: message'"
        with pytest.raises(QueryCompileError) as info:
            if "known_inputs" in h:
                from headwater.services.processing.engine import compile_query

                compile_query(text, pm, inputs=[i.strip() for i in h["known_inputs"].split(",")])
            else:
                run_query(text, {"Input": []}, pm=pm)
        exc = info.value
        assert (exc.line, exc.column) == (int(m.group(1)), int(m.group(2))), str(exc)
        assert exc.message.startswith(m.group(3)), str(exc)
        return
    data = json.loads((HERE / "inputs" / f"{h['inputs']}.json").read_text())
    refs = [r.strip() for r in h.get("references", "").split(",") if r.strip()]
    streams = {k: v for k, v in data.items() if k not in refs}
    out = run_query(text, streams, references={r: data[r] for r in refs}, pm=pm)
    explained = HERE / "explain" / f"{path.stem}.txt"
    from headwater.services.processing.engine import compile_query

    plan = compile_query(text, pm, references=refs).explain()
    if os.environ.get("HEADWATER_UPDATE_GOLDEN"):
        explained.parent.mkdir(exist_ok=True)
        explained.write_text(plan)
    assert plan == explained.read_text()
    golden = HERE / "golden" / f"{path.stem}.json"
    if os.environ.get("HEADWATER_UPDATE_GOLDEN"):
        golden.write_text(json.dumps(_sorted(out), indent=1) + "\n")
    # rows with the same timestamp come in no guaranteed order: compare as multisets
    expected = json.loads(golden.read_text())
    assert _sorted(out) == _sorted(expected)


def _sorted(outputs: dict[str, list]) -> dict[str, list]:
    return {k: sorted(v, key=lambda r: json.dumps(r, sort_keys=True)) for k, v in outputs.items()}
