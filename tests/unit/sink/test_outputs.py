"""The service's output logic with a third-party sink kind registered through the hook:
error policy Retry and Drop, backpressure, permanent errors naming the output, exactly-once,
one attempt per write (the writer retries: docs/errors.md), fault rules."""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pytest

from headwater import hookimpl
from headwater.errors import HeadwaterError, Reason
from headwater.faults import FaultFile
from headwater.pluginmanager import get_plugin_manager
from headwater.retry import RetryPolicy, retry_async
from headwater.services.sink.outputs import DropPolicy, Outputs
from headwater.sinks import (
    Checkpoint,
    ErrorPolicy,
    OutputMode,
    Sink,
    SinkBackpressureError,
    SinkKind,
    SinkRowError,
    SinkSpec,
)


class FlakySink(Sink):
    """Fails as its config scripts: the first ``busy`` writes with backpressure, rows whose
    ``v`` is negative with a row error, any write when ``broken``."""

    def __init__(self, spec: SinkSpec) -> None:
        super().__init__(spec)
        self.busy = int(spec.config.get("busy", 0))
        self.rows: list[dict] = []
        self.flushes = 0

    def write_batch(self, batch: pa.Table, checkpoint: Checkpoint) -> None:
        if self.spec.config.get("broken"):
            raise HeadwaterError(Reason.UNAUTHORIZED, "flaky sink: bad credentials for user 'x'")
        if self.busy:
            self.busy -= 1
            raise SinkBackpressureError(0.01)
        bad = [i for i, v in enumerate(batch.column("v").to_pylist()) if v < 0]
        if bad:
            raise SinkRowError(f"row {bad[0]}: v must be >= 0", rows=bad)
        self.rows += batch.to_pylist()

    async def flush(self) -> None:  # a coroutine: the service awaits it on its loop
        self.flushes += 1


class FlakyKind(SinkKind):
    name = "flaky"
    description = "a sink that fails on purpose"
    output_modes = (OutputMode.APPEND,)

    def create(self, spec: SinkSpec) -> Sink:
        return FlakySink(spec)


class Plugin:
    @hookimpl
    def register_sinks(self, register):
        register(FlakyKind())


@pytest.fixture
def outputs(tmp_path):
    pm = get_plugin_manager([("flaky-plugin", Plugin())], load_entrypoints=False).collect()
    return Outputs(tmp_path, pm.sinks, DropPolicy(attempts=3, seconds=60), faults=FaultFile(tmp_path / "faults.json"))


#: How a writer (the processing service) retries WriteRows: the one retry layer.
WRITER = RetryPolicy(max_attempts=4, max_delay_s=5, initial_backoff_s=0.001)


def table(*values):
    return pa.table({"v": list(values)})


async def test_backpressure_is_answered_at_once_and_the_writers_retry_is_counted(outputs):
    out = await outputs.create("f", "flaky", {"busy": 2}, OutputMode.APPEND, [], ErrorPolicy.RETRY)
    with pytest.raises(HeadwaterError) as info:  # one attempt per call: no retry inside the service
        await outputs.write("f", table(1, 2), Checkpoint(1, 0, "w"), commit=True)
    assert info.value.is_transient and info.value.retry_after == 0.01 and out.sink.busy == 1
    assert "output sinks/f (flaky)" in info.value.message
    res = await retry_async(lambda: outputs.write("f", table(1, 2), Checkpoint(1, 0, "w"), commit=True), WRITER)
    assert res.rows_written == 2 and out.stats.retries == 2 and out.sink.flushes == 1
    assert out.sink.rows == [{"v": 1}, {"v": 2}]


async def test_drop_policy_drops_a_write_that_keeps_failing_after_its_attempts(outputs):
    out = await outputs.create("f", "flaky", {"busy": 99}, OutputMode.APPEND, [], ErrorPolicy.DROP)
    for _ in range(2):
        with pytest.raises(HeadwaterError) as info:
            await outputs.write("f", table(1, 2), Checkpoint(1, 0, "w"))
        assert info.value.is_transient
    res = await outputs.write("f", table(1, 2), Checkpoint(1, 0, "w"))  # the third attempt
    assert (res.rows_written, res.rows_dropped) == (0, 2) and out.stats.rows_dropped == 2


async def test_fault_rules_make_a_sink_fail_or_slow_and_heal(outputs, tmp_path):
    out = await outputs.create("f", "flaky", {}, OutputMode.APPEND, [], ErrorPolicy.RETRY)
    faults = tmp_path / "faults.json"
    faults.write_text(json.dumps([{"id": "down", "operation": "write", "target": "f", "reason": "SERVICE_BUSY",
                                   "count": 2}, {"id": "slow", "operation": "flush", "delay_s": 0.2}]))
    for _ in range(2):
        with pytest.raises(HeadwaterError) as info:
            await outputs.write("f", table(1), Checkpoint(1, 0, "w"))
        assert info.value.reason is Reason.SERVICE_BUSY and "injected fault 'down'" in info.value.message
    t0 = time.monotonic()
    await outputs.write("f", table(1), Checkpoint(1, 0, "w"), commit=True)  # the count is spent
    assert time.monotonic() - t0 >= 0.2 and out.sink.rows == [{"v": 1}]  # the flush was slowed
    faults.write_text("[]")
    assert outputs.faults.firing("flush", "f") is None


async def test_drop_policy_drops_bad_rows_and_keeps_the_rest(outputs):
    out = await outputs.create("f", "flaky", {}, OutputMode.APPEND, [], ErrorPolicy.DROP)
    res = await outputs.write("f", table(1, -2, 3, -4), Checkpoint())
    assert (res.rows_written, res.rows_dropped) == (2, 2) and "row 1: v must be >= 0" in res.drop_reason
    assert out.sink.rows == [{"v": 1}, {"v": 3}] and out.stats.rows_dropped == 2


async def test_retry_policy_fails_on_a_bad_row_naming_output_row_and_cause(outputs):
    await outputs.create("f", "flaky", {}, OutputMode.APPEND, [], ErrorPolicy.RETRY)
    with pytest.raises(HeadwaterError) as info:
        await outputs.write("f", table(1, -2), Checkpoint())
    assert info.value.message == "output sinks/f (flaky): row 1: v must be >= 0"
    assert not info.value.is_transient and info.value.metadata["sink"] == "sinks/f"


async def test_permanent_errors_fail_under_both_policies(outputs):
    for policy in ErrorPolicy:
        await outputs.create(f"b-{policy.value}", "flaky", {"broken": True}, OutputMode.APPEND, [], policy)
        with pytest.raises(HeadwaterError) as info:
            await outputs.write(f"b-{policy.value}", table(1), Checkpoint())
        assert info.value.reason is Reason.UNAUTHORIZED and "bad credentials" in info.value.message


async def test_non_exactly_once_kinds_are_deduplicated_in_memory_for_retried_calls(outputs):
    out = await outputs.create("f", "flaky", {}, OutputMode.APPEND, [], ErrorPolicy.RETRY)
    await outputs.write("f", table(1), Checkpoint(3, 0, "w"))
    again = await outputs.write("f", table(1), Checkpoint(3, 0, "w"))
    assert again.duplicate and out.sink.rows == [{"v": 1}]


async def test_definitions_survive_a_restart(outputs, tmp_path):
    await outputs.create("keep", "memory", {}, OutputMode.UPDATE, ["k"], ErrorPolicy.DROP, "kept")
    await outputs.write("keep", pa.table({"k": ["a"], "n": [1]}), Checkpoint(1, 0, "w"), commit=True)
    await outputs.close()
    again = Outputs(tmp_path, outputs.kinds, outputs.policy)
    await again.open()
    out = again.get("sinks/keep")
    assert (out.spec.output_mode, out.spec.key_columns, out.error_policy, out.description) == (
        OutputMode.UPDATE, ("k",), ErrorPolicy.DROP, "kept")
    assert (await again.read("keep")).to_pylist() == [{"k": "a", "n": 1}]
    assert (await again.write("keep", pa.table({"k": ["a"], "n": [1]}), Checkpoint(1, 0, "w"))).duplicate
