"""ReadTable's filter and order_by never reach a SQL engine: no server file is read through them.

Before the grammar of headwater.services.sink.table_filter, a filter went to Polars SQL, whose
``read_csv()`` opened any file on the sink host: the error message quoted auth.json's keys.
"""

from __future__ import annotations

import pyarrow as pa
import pytest

from headwater.channel import aio_channel
from headwater.errors import HeadwaterError, Reason
from headwater.v1 import sink_pb2_grpc
from tests.conftest import conn_for
from tests.integration.test_sink_service import create, read_all, start_sink, write


async def test_filter_and_order_by_cannot_open_server_files(service_process, root_policy, tmp_path, _isolated_home):
    auth = _isolated_home / "auth.json"
    proc = start_sink(service_process, tmp_path)
    async with aio_channel(conn_for(proc.address, root_policy)) as ch:
        stub = sink_pb2_grpc.SinkServiceStub(ch)
        await create(stub, "trips")
        await write(stub, "trips", pa.table({"city": ["Oslo", "Lima"], "n": [1, 2]}), ckpt=1)
        attacks = [
            ("filter", f"city IN (SELECT * FROM read_csv('{auth}'))"),     # the error quoted the keys
            ("filter", f"n < (SELECT COUNT(*) FROM read_csv('{auth}'))"),  # an oracle on the file
            ("filter", f"read_csv('{auth}') IS NOT NULL"),
            ("order_by", f"(SELECT 1 FROM read_csv('{auth}'))"),
        ]
        for field, text in attacks:
            with pytest.raises(HeadwaterError) as info:
                await read_all(stub, "trips", **{field: text})
            err = info.value
            assert err.reason is Reason.INVALID_ARGUMENT, (text, err)
            assert root_policy.key not in err.message and "policies" not in err.message
            assert err.metadata.get("field") == field and err.metadata.get("position"), err.metadata
        # The grammar still does what a reader needs.
        rows = await read_all(stub, "trips", filter="city LIKE 'O%' OR n >= 2", order_by="n DESC")
        assert [r["n"] for r in rows] == [2, 1]
