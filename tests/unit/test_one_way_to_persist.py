"""Services and plugins persist state only through headwater/storage.py (#14: one way to
persist, one durability guarantee). A write that bypasses it is found here by its spelling;
the few that are not state (a sink's rolled file published with storage.publish, a deleted
hub's folder moved aside) are listed with their reason."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WRITES = re.compile(r"""\.write_text\(|\.write_bytes\(|os\.replace\(|os\.rename\(|\bopen\([^)]*["'](?:w|wb|a|ab|x|xb|r\+b?)["']""")

ALLOWED = {
    # opened as a temporary file, fsync'd and made visible by headwater.storage.publish on roll
    ("plugins/sinks/files.py", 'f.handle = open(f.tmp, "wb")'),
    # DeleteHub moves the hub's folder out of the way before removing it: a deletion, not state
    ("services/ingestion/metadata.py", "os.replace(folder, graveyard)"),
}


def _writes() -> list[tuple[str, str]]:
    found = []
    for top in ("services", "plugins"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line in path.read_text().splitlines():
                if WRITES.search(line):
                    found.append((rel, line.strip()))
    return found


def test_services_and_plugins_write_files_only_through_storage():
    stray = [(f, line) for f, line in _writes() if not any(f == a and s in line for a, s in ALLOWED)]
    assert stray == [], "write these through headwater.storage (write_atomic/write_new/atomic_file):\n" + \
        "\n".join(f"{f}: {line}" for f, line in stray)


def test_the_pattern_finds_a_bypassing_write():
    assert WRITES.search('tmp.write_text(json.dumps(x))')
    assert WRITES.search('with open(p, "wb") as f:')
    assert not WRITES.search('with open(p, "rb") as f:')
