"""Output columns reach a typed sink as Stream Analytics types them (issue 10, item 4):
numbers mixed with text are text, integers mixed with floats are float, records and arrays
are JSON text; plain columns keep their own type. A Parquet file sink (a schema per file)
through the real services, the job's rows written as Arrow (never JSON lines)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from tests.integration.processing_support import Pipeline
from tests.wait import wait_until


def test_mixed_record_and_array_columns_reach_a_parquet_sink_typed(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    root = tmp_path / "sink" / "files"  # under the sink's data dir (its allowed paths)
    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3)
    pipe.create_hub("mixed", partitions=1)  # one partition, one publish: one read, one epoch
    pipe.create_sink("pq", "files", {"path": str(root), "format": "parquet"})
    pipe.create_job("types", "SELECT k, n, x, r, a, b INTO [o] FROM [i]", {"i": "mixed"}, {"o": "pq"})
    pipe.start_job("types", ppb.JOB_START_MODE_EARLIEST)
    pipe.publish("mixed", [
        {"k": 1, "n": 1, "x": 1, "r": {"a": 1}, "a": [1, 2], "b": True},
        {"k": 2, "n": 2.5, "x": "one", "r": {"b": [True, None]}, "a": [], "b": False},
        {"k": 3, "n": -4, "x": 2.5, "r": {}, "a": [{"z": "q"}], "b": True},
    ])

    def rows() -> pa.Table | None:
        files = sorted(root.rglob("*.parquet"))
        return pa.concat_tables([pq.read_table(f) for f in files]) if files else None

    table = wait_until(rows, lambda t: t is not None and t.num_rows >= 3, timeout=60, every=0.3)
    assert table.num_rows == 3
    schema = table.schema
    assert schema.field("k").type == pa.int64()
    assert schema.field("n").type == pa.float64()  # bigint and float mixed: float
    assert schema.field("b").type == pa.bool_()
    for name in ("x", "r", "a"):  # a number and a text, records, arrays: JSON text
        assert schema.field(name).type == pa.string(), name
    got = sorted(table.to_pylist(), key=lambda r: r["k"])
    assert [r["n"] for r in got] == [1.0, 2.5, -4.0]
    assert [r["x"] for r in got] == ["1", "one", "2.5"]
    assert [r["r"] for r in got] == ['{"a":1}', '{"b":[true,null]}', "{}"]
    assert [r["a"] for r in got] == ["[1,2]", "[]", '[{"z":"q"}]']
    m = pipe.wait_metrics("types", lambda m: m.output_events >= 3, what="the rows counted")  # reported after the write
    assert m.output_events == 3 and m.output_errors == 0 and m.data_conversion_errors == 0
