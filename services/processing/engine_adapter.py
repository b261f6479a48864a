"""The seam between jobs and the query engine: compile a job, build its runtime.

The runner hands over raw event bodies with their content types and arrival
(enqueued) times; the input's format picks the serializer plugin (``json`` is
decoded by the engine itself, in batches; ``avro`` and others by their
plugin, bound to the service's schema registry).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from headwater.errors import HeadwaterError, Reason
from headwater.services.processing.job_guards import check_secret_references, plugin_manager, reference_file
from headwater.services.processing.local import decode_events, run_local
from headwater.v1 import event_pb2
from headwater.v1 import processing_pb2 as pb

__all__ = ["compile_job", "runtime_for", "JobRuntime", "test_query"]


def _reference_rows(inp: pb.JobInput, config: Any = None) -> list[dict]:
    data = inp.reference_data
    if not data and inp.reference_path:
        path = reference_file(inp, config)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {inp.alias}: {exc.strerror}",
                                 metadata={"field": "reference_path"}) from None
    text = data.strip()
    if not text:
        return []
    try:
        if text.startswith(b"["):
            return list(orjson.loads(text))
        return [orjson.loads(line) for line in text.splitlines() if line.strip()]
    except orjson.JSONDecodeError as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"reference input {inp.alias} is not JSON: {exc}",
                             metadata={"field": "reference_data"}) from None


def compile_job(job: pb.Job, config: Any = None):
    """Compile the job's query and check its inputs and outputs against the query's."""
    from headwater.services.processing.engine import compile_query

    refs = [i.alias for i in job.inputs if i.kind == pb.INPUT_KIND_REFERENCE]
    for i in job.inputs:
        if i.kind == pb.INPUT_KIND_REFERENCE and i.reference_path and not i.reference_data:
            reference_file(i, config)
    check_secret_references(job, config)
    compiled = compile_query(job.query, plugin_manager(job, config), references=refs)
    have_in = {i.alias.lower() for i in job.inputs}
    missing = [a for a in compiled.inputs if a.lower() not in have_in]
    if missing:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"the query reads {', '.join(f'[{a}]' for a in missing)} but the job has no input "
                             "with that alias", metadata={"field": "job.inputs"})
    have_out = {o.alias.lower() for o in job.outputs}
    missing = [a for a in compiled.outputs if a.lower() not in have_out]
    if missing:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"the query writes {', '.join(f'[{a}]' for a in missing)} but the job has no output "
                             "with that alias", metadata={"field": "job.outputs"})
    return compiled


def _policy(job: pb.Job):
    from headwater.services.processing.engine import OrderingPolicy

    eo = job.event_ordering
    late = eo.late_arrival_tolerance.ToNanoseconds() / 1e9 if eo.HasField("late_arrival_tolerance") else None
    ooo = eo.out_of_order_tolerance.ToNanoseconds() / 1e9 if eo.HasField("out_of_order_tolerance") else None
    action = "drop" if eo.out_of_order_action == pb.OUT_OF_ORDER_ACTION_DROP else "adjust"
    return OrderingPolicy.from_seconds(late, ooo, action)


class JobRuntime:
    """The engine's Runtime behind the runner's QueryRuntime protocol."""

    def __init__(self, job: pb.Job, registry_address: str = "", config: Any = None) -> None:
        """``registry_address`` is the registry's connection string (Avro inputs); ``config`` the
        service's settings (operator UDFs, allowed_paths)."""
        compiled = compile_job(job, config)
        refs = {i.alias: _reference_rows(i, config) for i in job.inputs if i.kind == pb.INPUT_KIND_REFERENCE}
        self.rt = compiled.runtime(_policy(job), reference_data=refs)
        self.pm = compiled.pm
        self.formats = {i.alias.lower(): (i.format or "json").lower() for i in job.inputs}
        self.registry_address = registry_address
        self._serializers: dict[str, Any] = {}
        self.runtime_errors = 0
        # System columns cost a row per event: added only when the query names one.
        text = job.query.lower()
        self.system_fields = "partitionid" in text or "eventenqueuedutctime" in text

    def _serializer(self, fmt: str):
        if fmt not in self._serializers:
            ser = self.pm.collect().serializers.get(fmt)
            if ser is None:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"no serializer plugin for input format {fmt!r}")
            if fmt == "avro" and hasattr(ser, "configured") and self.registry_address:
                from headwater.schemaregistry import SchemaRegistryClient

                ser = ser.configured(SchemaRegistryClient.from_connection_string(self.registry_address))
            self._serializers[fmt] = ser
        return self._serializers[fmt]

    def feed(self, alias: str, bodies: list[bytes], content_types: list[str],
             arrivals: list[int], partition_ids: list[str]) -> None:
        """Raw bodies with arrival (enqueued) times in microseconds since the epoch."""
        fmt = self.formats.get(alias.lower(), "json")
        if fmt == "json" and not self.system_fields:
            self._guard(lambda: self.rt.feed_bodies(alias, bodies, arrivals, partition_ids=partition_ids))
            return
        if fmt == "json":
            from headwater.serializers import decode_json_bodies

            rows, rarr, parts = decode_json_bodies(bodies, arrivals, self.rt.counters, partition_ids)
            self._add_system_fields(rows, rarr or [], parts or [])
            self._guard(lambda: self.rt.feed(alias, rows, rarr, partition_ids=parts))
            return
        ser = self._serializer(fmt)
        counters = self.rt.counters

        def on_error(i: int, exc: Exception) -> None:
            counters.conversion_errors += 1
            if len(counters.samples) < 20:
                counters.samples.append(f"input {alias}: event {i}: {exc}")

        if hasattr(ser, "decode_with_index"):
            rows, index = ser.decode_with_index(bodies, list(content_types) if fmt == "avro" else
                                                (content_types[0] if content_types else ""), on_error)
            if self.system_fields:
                self._add_system_fields(rows, [arrivals[i] for i in index], [partition_ids[i] for i in index])
            self._guard(lambda: self.rt.feed(alias, rows, [arrivals[i] for i in index],
                                             partition_ids=[partition_ids[i] for i in index]))
        else:
            self._guard(lambda: self.rt.feed(alias, ser.decode(bodies, content_types[0] if content_types else "",
                                                               on_error)))

    def _add_system_fields(self, rows: list[dict], arrivals: list[int], parts: list[str]) -> None:
        """Event Hubs inputs' system columns, as Stream Analytics adds them: ``PartitionId``
        (a number) and ``EventEnqueuedUtcTime``; a payload field of the same name wins."""
        for row, arrival, pid in zip(rows, arrivals, parts):
            row.setdefault("PartitionId", int(pid) if str(pid).isdigit() else pid)
            row.setdefault("EventEnqueuedUtcTime", datetime.fromtimestamp(arrival / 1e6, UTC))

    def _guard(self, fn) -> None:
        try:
            fn()
        except HeadwaterError as exc:
            self.runtime_errors += 1
            raise HeadwaterError(Reason.JOB_FAILED, f"runtime error: {exc.message}") from exc

    def advance(self, now: datetime) -> None:
        self._guard(lambda: self.rt.advance_time(int(now.timestamp() * 1_000_000)))

    def take_outputs(self) -> dict[str, list[dict]]:
        return self.rt.take()

    def snapshot(self) -> bytes:
        return self.rt.snapshot()

    def restore(self, state: bytes) -> None:
        self.rt.restore(state)

    def counters(self) -> dict[str, Any]:
        c = self.rt.counters.as_dict()
        samples = c.get("samples") or []
        return {**c, "runtime_errors": self.runtime_errors,
                "last_error_sample": samples[-1] if samples else ""}

    def watermark(self) -> datetime | None:
        from headwater.services.processing.operators.base import MIN_TS

        wm = self.rt.watermark
        if self.rt.mode == "columnar":
            wm = getattr(self.rt.columnar, "watermark", MIN_TS)
        if not isinstance(wm, int) or wm <= MIN_TS or wm >= 2**61:
            return None
        return datetime.fromtimestamp(wm / 1e6, UTC)

    def stream_inputs(self) -> list[str]:
        return list(self.rt.compiled.inputs)


def runtime_for(job: pb.Job, config) -> JobRuntime:
    """The job's runtime; Avro inputs look schemas up in the service's registry with its key."""
    from headwater.auth import ConnectionString, PolicyStore

    conn = ConnectionString(endpoint=f"headwater://{config.registry_address}/")
    if config.auth_enabled:
        root = PolicyStore(config.auth_path()).ensure().root()
        conn.shared_access_key_name, conn.shared_access_key = root.name, root.key
    return JobRuntime(job, str(conn), config)


def test_query(request: pb.TestQueryRequest) -> pb.TestQueryResponse:
    """The portal's "Test query": the query over sample inputs, no hubs or sinks."""
    from headwater.errors import QueryCompileError
    from headwater.pluginmanager import get_plugin_manager
    from headwater.services.processing.engine import format_rows

    pm = get_plugin_manager()
    inputs: dict[str, list[dict]] = {}
    refs: dict[str, list[dict]] = {}
    for inp in request.inputs:
        fmt = (inp.format or "json").lower()
        try:
            rows = decode_events(inp.data, f"input.{fmt}", pm)
        except (ValueError, OSError) as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"input {inp.alias!r} is not valid {fmt}: {exc}",
                                 metadata={"field": "inputs"}) from None
        (refs if inp.reference else inputs)[inp.alias] = rows
    eo = request.event_ordering
    late = eo.late_arrival_tolerance.ToNanoseconds() / 1e9 if eo.HasField("late_arrival_tolerance") else None
    ooo = eo.out_of_order_tolerance.ToNanoseconds() / 1e9 if eo.HasField("out_of_order_tolerance") else None
    action = "drop" if eo.out_of_order_action == pb.OUT_OF_ORDER_ACTION_DROP else "adjust"
    try:
        out = run_local(request.query, inputs, refs, late=late, ooo=ooo, action=action,
                        arrival_field=request.arrival_time_field or None, pm=pm)
    except QueryCompileError:
        raise
    except HeadwaterError as exc:
        raise HeadwaterError(Reason.JOB_FAILED, f"the query failed: {exc.message}") from None
    resp = pb.TestQueryResponse()
    for alias, rows in out.items():
        data = b"\n".join(orjson.dumps(r) for r in format_rows(rows))
        resp.outputs.add(alias=alias, rows=event_pb2.RecordBatch(
            format=event_pb2.RECORD_BATCH_FORMAT_JSON_LINES, data=data, row_count=len(rows)))
    return resp
