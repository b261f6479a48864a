"""`headwater sink show` prints whole-number settings as written (max_rows 0, not 0.0):
the config travels as a google.protobuf.Struct, which keeps every number as a double."""

from __future__ import annotations

import json

from headwater.cli import sink as sink_cli
from headwater.v1 import sink_pb2


def _sink() -> sink_pb2.Sink:
    s = sink_pb2.Sink(name="sinks/counts", kind="memory")
    s.config.update({"max_rows": 0, "roll_size_mb": 1.5, "nested": {"n": 3, "xs": [1, 2.25]}, "path": "a"})
    return s


def test_text_shows_whole_numbers_as_ints():
    text = sink_cli._sink_text(_sink())
    config = json.loads(text.split("config: ", 1)[1].splitlines()[0])
    assert config == {"max_rows": 0, "roll_size_mb": 1.5, "nested": {"n": 3, "xs": [1, 2.25]}, "path": "a"}
    assert '"max_rows": 0,' in text and "0.0" not in text


def test_json_shows_whole_numbers_as_ints():
    d = sink_cli._sink_dict(_sink())
    assert d["config"]["max_rows"] == 0 and isinstance(d["config"]["max_rows"], int)
    assert d["config"]["nested"]["xs"] == [1, 2.25] and isinstance(d["config"]["nested"]["xs"][0], int)
    assert d["config"]["roll_size_mb"] == 1.5
