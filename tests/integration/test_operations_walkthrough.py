"""docs/operations.md's walkthrough of a failing job, run as written against real services.

Every ``sh`` block of the walkthrough runs, in order, in one bash session (its variables
and working folder carry over, as in an operator's terminal) with the ``headwater`` CLI
of this checkout; between blocks the test waits on facts (job state, metrics) and checks
what each block printed: the poison events in the dead-letter hub, the late verdict, the
diff of the fixed query, the cut-over, the replay, a starved job and its own consumer group.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from google.protobuf import duration_pb2

from headwater.v1 import event_pb2
from headwater.v1 import ingestion_pb2 as ipb
from headwater.v1 import processing_pb2 as ppb
from tests.integration.processing_support import Pipeline

pytestmark = pytest.mark.timeout(400)  # eleven blocks of CLI calls, each a Python start, on a shared machine

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def blocks() -> dict[str, str]:
    """The runnable blocks of the doc, by the comment on their first line (``# send``)."""
    out = {}
    for body in re.findall(r"^```sh\n(.*?)^```", DOC.read_text(), re.S | re.M):
        first, _, rest = body.partition("\n")
        if first.startswith("# "):
            out[first[2:].strip()] = rest
    return out


class Shell:
    """One bash session; each block is sourced from a file (stdin stays free)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd,
                                     env=env)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.n = 0

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, text: str, timeout: float = 120.0) -> tuple[int, str]:
        self.n += 1
        path = self.cwd / f".block{self.n}.sh"
        path.write_text(text)
        self.proc.stdin.write(f"source {path} </dev/null; echo __done__$?\n")
        self.proc.stdin.flush()
        got = []
        while True:
            line = self.lines.get(timeout=timeout)
            if line.startswith("__done__"):
                out = "".join(got)
                sys.stdout.write(f"--- block {self.n}\n{text}--- printed\n{out}")
                return int(line[len("__done__"):]), out
            got.append(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)


def test_the_walkthrough_runs_as_written(service_process, root_policy, tmp_path):
    pipe = Pipeline(service_process, root_policy, tmp_path,
                    extra_env={"HEADWATER_PROCESSING_STARVATION_AFTER_S": "1"})
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "HEADWATER_INGESTION_ADDRESS": pipe.ingestion.address,
           "HEADWATER_PROCESSING_ADDRESS": pipe.processing.address,
           "HEADWATER_SINK_ADDRESS": pipe.sink.address}
    doc = blocks()
    assert list(doc) == ["setup", "send", "metrics", "dead-letters", "verdicts", "diff", "cut-over", "replay",
                         "after-replay", "starved", "own-group"]
    sh = Shell(work, env)
    try:
        code, out = sh.run(doc["setup"])
        assert code == 0, out
        pipe.wait_job("fares", lambda j: j.state == ppb.JOB_STATE_RUNNING)
        assert pipe.get_job("fares").dead_letter_hub == "hubs/trips-dead"

        code, out = sh.run(doc["send"])
        assert code == 0 and "sent 7 events to trips" in out, out
        m = pipe.wait_metrics("fares", lambda m: m.input_events == 7 and m.dead_letter_events == 3)
        assert (m.input_deserialization_errors, m.data_conversion_errors, m.late_input_events) == (1, 2, 1)

        # 1. The poison events: the metrics, then the dead letters with their provenance.
        code, out = sh.run(doc["metrics"])
        shown = dict(line.split(": ", 1) for line in out.splitlines())
        assert shown["inputEvents"] == "7" and shown["deadLetterEvents"] == "3", out
        assert shown["inputDeserializationErrors"] == "1" and shown["dataConversionErrors"] == "2"
        assert shown["outputErrors"] == "0" and shown["lateInputEvents"] == "1"  # zeros are printed too
        code, out = sh.run(doc["dead-letters"])
        assert code == 0, out
        rows = out.strip().splitlines()
        assert len(rows) == 3, out
        assert all("kind=input" in r and "input=trips" in r and "hub=hubs/trips" in r and "partition=0" in r
                   and "enqueued-time=" in r for r in rows)
        assert "reason=InputDeserializationError" in rows[0] and "sequence-number=5" in rows[0]
        assert '"t6,b,20,' in rows[0]
        assert "reason=ConversionError" in rows[1] and "sequence-number=3" in rows[1] and "7.5" in rows[1]
        assert "reason=ConversionError" in rows[2] and "sequence-number=6" in rows[2] and "14.25" in rows[2]

        # 2. The verdicts: t1 adjusted (late) with both times and its window, the others on time.
        def verdicts():
            return sh.run(doc["verdicts"])[1].strip().splitlines()

        lines = pipe.wait_rows(verdicts, lambda r: len(r) == 5)
        assert lines[-1] == "1 adjusted, 3 on_time", lines
        assert "sequence_number=0" in lines[0] and "verdict=adjusted" in lines[0] and "reason=late" in lines[0]
        assert "counted_at=" in lines[0] and "windows=(" in lines[0]
        assert all("verdict=on_time" in line for line in lines[1:4])

        # 3. The fixed query over the recorded range: zone a and b count the fares with cents.
        code, out = sh.run(doc["diff"])
        assert code == 0 and out.strip().endswith("exit code 1"), out
        assert "trips 6 events" in out and "the outputs differ" in out  # the CSV string is no trip
        assert re.search(r"2 changed", out) and "~ " in out, out

        # 4. Cut over.
        code, out = sh.run(doc["cut-over"])
        assert code == 0 and "state: RUNNING" in out and "state_kept:" in out, out
        assert pipe.get_job("fares").query.startswith("CREATE TABLE trips (tripId nvarchar(max), zone nvarchar(max), "
                                                      "fare float")

        # 5. Replay: the two fares are read again and counted, the CSV string is dead-lettered again.
        code, out = sh.run(doc["replay"])
        assert code == 0 and "replayed 3 dead letters of jobs/fares" in out and \
            "3 to hub hubs/trips partition 0" in out, out
        pipe.wait_metrics("fares", lambda m: m.input_events == 10 and m.dead_letter_events == 4)
        code, out = sh.run(doc["after-replay"])
        assert code == 0, out
        assert "inputEvents: 10" in out and "deadLetterEvents: 4" in out
        again = [line for line in out.splitlines() if line.startswith("dead_lettered=")]
        assert len(again) == 1 and "InputDeserializationError" in again[0], out

        # 6. Another, exclusive reader takes partition 0 of $Default: the job is starved and says so.
        from headwater.channel import sync_channel
        from headwater.v1 import ingestion_pb2_grpc
        from tests.conftest import conn_for

        ch = sync_channel(conn_for(pipe.ingestion.address, root_policy))
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        call = stub.ReadEvents(ipb.ReadEventsRequest(
            hub="hubs/trips", partition_id="0", consumer_group="$Default", owner_level=5,
            event_position=event_pb2.EventPosition(latest=True), max_wait=duration_pb2.Duration(nanos=200_000_000)))
        answered = threading.Event()

        def hold() -> None:
            try:
                for _ in call:
                    answered.set()
            except Exception:  # noqa: BLE001 - cancelled at the end
                pass

        reading = threading.Thread(target=hold, daemon=True)
        reading.start()
        try:
            assert answered.wait(30), "the exclusive reader never answered"
            pipe.call("ingestion", "PublishEvents", ipb.PublishEventsRequest(
                hub="hubs/trips", partition_id="0",
                events=[event_pb2.EventData(body=orjson.dumps({"tripId": f"s{i}", "zone": "a", "fare": 1,
                                                               "pickup": datetime.now(UTC).isoformat()}))
                        for i in range(5)]))
            pipe.wait_metrics("fares", lambda m: m.starved_partitions == 1, timeout=60)
            code, out = sh.run(doc["starved"])
            assert "warning: input trips is starved: partition(s) 0 hold 5 events" in out, out
            assert "headwater job update fares --consumer-group GROUP" in out

            code, out = sh.run(doc["own-group"])
            assert code == 0 and "state: RUNNING" in out and "state_kept: True" in out, out
            assert [i.consumer_group for i in pipe.get_job("fares").inputs] == ["fares"]
            # On its own group, the job reads on past the reader on $Default: the 5 events, once.
            m = pipe.wait_metrics("fares", lambda m: m.input_events == 15 and m.starved_partitions == 0,
                                  timeout=60)
            assert m.dead_letter_events == 4
        finally:
            call.cancel()
            reading.join(10)
            ch.close()
    finally:
        sh.close()
