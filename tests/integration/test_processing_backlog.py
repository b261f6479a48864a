"""A job catching up on a backlog works through it in bounded epochs (every service a real
process): an epoch takes at most ``max_epoch_bytes`` of input (a read answer that crosses
it is split), each partition's reader holds at most its share of ``read_ahead_bytes``, and
every event comes out exactly once.

Written from docs/processing.md (settings: max_epoch_bytes, read_ahead_bytes).
"""

from __future__ import annotations

import orjson
import pytest

from tests.integration.processing_support import Pipeline

EPOCH_BYTES = 64 * 1024
READ_AHEAD = 2 * 2**20  # 1 MiB per partition (the floor) for 2 partitions
EVENTS = 12_000
PAD = "x" * 2000


def _publish(pipe: Pipeline, hub: str, events: list[dict]) -> int:
    """Publish in batches under the 1 MiB request limit; returns the bodies' total bytes."""
    from headwater.v1 import event_pb2
    from headwater.v1 import ingestion_pb2 as ipb

    total = 0
    for i in range(0, len(events), 200):
        bodies = [orjson.dumps(e) for e in events[i:i + 200]]
        total += sum(map(len, bodies))
        pipe.call("ingestion", "PublishEvents", ipb.PublishEventsRequest(
            hub=f"hubs/{hub}", events=[event_pb2.EventData(body=b, content_type="application/json") for b in bodies]))
    return total


@pytest.mark.slow
def test_a_backlog_runs_in_bounded_epochs_exactly_once(service_process, root_policy, tmp_path):
    from headwater.v1 import processing_pb2 as ppb

    pipe = Pipeline(service_process, root_policy, tmp_path, checkpoint_s=0.3,
                    extra_env={"HEADWATER_PROCESSING_MAX_EPOCH_BYTES": str(EPOCH_BYTES),
                               "HEADWATER_PROCESSING_READ_AHEAD_BYTES": str(READ_AHEAD)})
    pipe.create_hub("big", partitions=2)
    pipe.create_sink("out", "memory")
    total_bytes = _publish(pipe, "big", [{"id": i, "pad": PAD} for i in range(EVENTS)])
    pipe.create_job("backlog", "SELECT id INTO [Out] FROM [In]", {"In": "big"}, {"Out": "out"})
    pipe.start_job("backlog", ppb.JOB_START_MODE_EARLIEST)

    metrics = pipe.wait_metrics("backlog", lambda m: m.input_events >= EVENTS, timeout=120,
                                what=f"{EVENTS} events read")
    metrics = pipe.wait_checkpoints("backlog", 2)
    ids = [r["id"] for r in pipe.read_table("out")]
    assert len(ids) == EVENTS and sorted(ids) == list(range(EVENTS)), (len(ids), len(set(ids)))
    assert metrics.input_events == EVENTS

    # An epoch takes at most EPOCH_BYTES of new input (a read answer that crosses it is
    # split; at least one event): the backlog took at least this many epochs, one
    # checkpoint each. Unbounded, it would go in a handful of 0.3 s epochs.
    least = total_bytes // (EPOCH_BYTES + len(orjson.dumps({"id": EVENTS, "pad": PAD})))
    assert metrics.last_checkpoint_id >= least, (metrics.last_checkpoint_id, least, total_bytes)
