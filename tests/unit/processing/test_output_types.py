"""A job's output columns keep one type (a sink's table keeps one schema): a later value that
does not fit is a data conversion error, counted with a sample and not written, never a
NULL in its place (issue 10, item 4)."""

from __future__ import annotations

import orjson
import pyarrow as pa

from tests.unit.processing.test_packed_seam import T0, JobRuntime, feed, job


def test_a_value_that_does_not_fit_its_columns_type_is_a_conversion_error_not_a_null() -> None:
    rt = JobRuntime(job("SELECT k, x, r INTO [o] FROM [i]"))
    feed(rt, [orjson.dumps({"k": 1, "x": 1, "r": "text"})])
    rt.advance_arrival(T0 + 10)
    first = rt.take_output_tables()["o"]
    assert first.schema.field("x").type == pa.int64() and first.to_pylist() == [{"k": 1, "x": 1, "r": "text"}]

    feed(rt, [orjson.dumps({"k": 2, "x": "one", "r": {"a": 1}}), orjson.dumps({"k": 3, "x": 7, "r": [1]})],
         first_seq=200, t0=T0 + 100)
    rt.advance_arrival(T0 + 200)
    later = rt.take_output_tables()["o"]
    assert later.schema == first.schema  # the sink's schema does not change under it
    assert later.to_pylist() == [{"k": 3, "x": 7, "r": "[1]"}]  # records in a text column: JSON text
    c = rt.counters()
    assert c["conversion_errors"] == 1
    assert c["last_error_sample"] == ('DataConversionError: output o: column x: "one" is not a bigint '
                                      "(the column's type since its first row)")


def test_rows_of_an_engine_without_tables_go_as_typed_arrow_never_json_lines() -> None:
    from headwater.services.processing.runtime import _to_record_batch
    from headwater.v1 import event_pb2

    batch = _to_record_batch([{"x": 1, "n": 1, "r": {"a": [1]}}, {"x": "one", "n": 2.5, "r": None}])
    assert batch.format == event_pb2.RECORD_BATCH_FORMAT_ARROW_IPC and batch.row_count == 2
    table = pa.ipc.open_stream(batch.data).read_all()
    assert table.schema == pa.schema([("x", pa.string()), ("n", pa.float64()), ("r", pa.string())])
    assert table.to_pylist() == [{"x": "1", "n": 1.0, "r": '{"a":[1]}'}, {"x": "one", "n": 2.5, "r": None}]
