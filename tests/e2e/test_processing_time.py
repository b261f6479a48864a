"""Arrival-time windows follow the arrival time of the events read, not the wall
clock: a window closes only when every partition has been read past its end.
A lagging reader (an injected read fault on one partition) holds the windows (the
other partitions' events wait in the job); when it catches up, each window comes
out once, whole."""

from __future__ import annotations

import collections
import time

import orjson
import pytest

from tests.integration.processing_support import Pipeline

pytestmark = pytest.mark.slow

PER_PARTITION = 20_000
QUERY = """
SELECT COUNT(*) AS n, System.Timestamp() AS WindowEnd
INTO [Out]
FROM [In]
GROUP BY TumblingWindow(second, 2)
"""


def _publish(pipe: Pipeline, hub: str, partition: str, n: int) -> None:
    from headwater.v1 import event_pb2
    from headwater.v1 import ingestion_pb2 as ipb

    for start in range(0, n, 5000):
        events = [event_pb2.EventData(body=orjson.dumps({"i": i, "p": partition}), content_type="application/json")
                  for i in range(start, min(n, start + 5000))]
        pipe.call("ingestion", "PublishEvents", ipb.PublishEventsRequest(hub=f"hubs/{hub}", partition_id=partition,
                                                                          events=events))


def test_a_lagging_reader_holds_arrival_windows_until_it_catches_up(service_process, root_policy, tmp_path):
    _lagging_reader(service_process, root_policy, tmp_path, PER_PARTITION, QUERY)


@pytest.mark.timeout(900)
def test_three_million_events_in_one_arrival_window_come_out_whole(service_process, root_policy, tmp_path):
    """The issue's case: 3,000,000 events in one arrival-time window, one of the two
    partitions' readers lagging. The window comes out once with every event (the wall clock
    used to close it early in 5 partial rows; an update-mode sink kept 345,000). The window is
    an hour long and its end is set (TumblingWindow's offset) 2 s after the last publish: every
    event is in it whatever the publishing took, and the wall clock passes its end while
    partition 1 is still unread (where the old engine closed it early)."""
    hour = QUERY.replace("TumblingWindow(second, 2)", "TumblingWindow(second, 3600, {offset})")
    rows = _lagging_reader(service_process, root_policy, tmp_path, 1_500_000, hour, timeout=300,
                           one_window=True)
    assert len(rows) == 1 and rows[0]["n"] == 3_000_000, rows


def _lagging_reader(service_process, root_policy, tmp_path, per_partition: int, query: str,
                    timeout: float = 60, one_window: bool = False) -> list:
    """Publish to both partitions, then start the job with partition 1's reads failing.
    With ``one_window`` the query's ``{offset}`` is set after publishing so that its
    hour-long window ends 2 s after the last event arrived."""
    from headwater.v1 import errors_pb2
    from headwater.v1 import ingestion_pb2 as ipb
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.2)
    pipe.create_hub("arrivals", partitions=2)
    pipe.create_sink("out", "memory")
    # Partition 1's reader fails (transiently) on every read: it lags behind partition 0.
    pipe.call("ingestion", "SetFaultRule", ipb.SetFaultRuleRequest(rule=ipb.FaultRule(
        rule_id="lag", hub="arrivals", operation=ipb.FAULT_OPERATION_READ,
        reason=errors_pb2.SERVICE_BUSY,
        probability=1.0, partition_id="1")))
    try:
        _publish(pipe, "arrivals", "0", per_partition)
        _publish(pipe, "arrivals", "1", per_partition)
    except Exception as exc:
        raise AssertionError(f"{exc}; ingestion's log:\n" + "\n".join(list(pipe.ingestion.lines)[-30:])) from None
    if one_window:
        query = query.format(offset=int(time.time() + 2) % 3600)
    pipe.create_job("win", query, {"In": "arrivals"}, {"Out": "out"})
    pipe.start_job("win", ppb.JOB_START_MODE_EARLIEST)

    # Partition 0 is read, and the job checkpoints on for well past the windows' ends
    # (2 s): nothing is fed or comes out while partition 1 is unread (its events wait).
    first = pipe.wait_metrics("win", lambda m: m.last_checkpoint_id >= 1).last_checkpoint_id
    m = pipe.wait_metrics("win", lambda m: m.last_checkpoint_id >= first + 25, timeout=30)
    backlog = {p.partition_id: p.backlog_events for p in m.partitions}
    assert backlog == {"0": per_partition, "1": per_partition}, backlog
    assert m.input_events == 0
    assert pipe.read_table("out") == []

    # The reader catches up: every window comes out once, with every event.
    pipe.call("ingestion", "ClearFaultRules", ipb.ClearFaultRulesRequest(hub="arrivals", rule_id="lag"))
    rows = pipe.wait_rows(lambda: pipe.read_table("out"), lambda rows: sum(r["n"] for r in rows) >= 2 * per_partition,
                          timeout=timeout)
    m = pipe.metrics("win")
    pipe.wait_metrics("win", lambda x: x.last_checkpoint_id >= m.last_checkpoint_id + 5)
    rows = pipe.read_table("out")
    assert sum(r["n"] for r in rows) == 2 * per_partition
    per_window = collections.Counter(r["WindowEnd"] for r in rows)
    assert all(c == 1 for c in per_window.values()), per_window  # no partial rows
    return rows
