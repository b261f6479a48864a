"""The seam between jobs and the query engine: compile a job, build its runtime.

The runner hands over raw event bodies with their content types and arrival
(enqueued) times; the input's format picks the serializer plugin (``json`` is
decoded by the engine itself, in batches; ``avro`` and others by their
plugin, bound to the service's schema registry).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from headwater.errors import HeadwaterError, Reason
from headwater.functions import json_text
from headwater.services.processing.exec.watermarks import VerdictLog
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


def _roots(config: Any):
    from headwater.services.processing.refdata import _roots as roots

    return roots(config)


def compile_job(job: pb.Job, config: Any = None):
    """Compile the job's query and check its inputs and outputs against the query's."""
    from headwater.services.processing.engine import compile_query
    from headwater.services.processing.files import PathPattern
    from headwater.services.processing.refdata import check_reference_input, is_refreshed

    refs = [i.alias for i in job.inputs if i.kind == pb.INPUT_KIND_REFERENCE]
    for i in job.inputs:
        if is_refreshed(i):
            check_reference_input(i, config)
        elif i.kind == pb.INPUT_KIND_REFERENCE and i.reference_path and not i.reference_data:
            reference_file(i, config)
        elif i.kind != pb.INPUT_KIND_REFERENCE and i.path_pattern:
            if i.hub:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"input {i.alias}: give hub or path_pattern, not both",
                                     metadata={"field": "path_pattern"})
            PathPattern(i.path_pattern, _roots(config), "path_pattern", i.date_format, i.time_format)
    check_secret_references(job, config)
    compiled = compile_query(job.query, plugin_manager(job, config), references=refs,
                             inputs=[i.alias for i in job.inputs if i.kind != pb.INPUT_KIND_REFERENCE])
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
        from headwater.services.processing.refdata import is_refreshed, reference_source

        self.config = config
        compiled = compile_job(job, config)
        refs = {i.alias: _reference_rows(i, config) for i in job.inputs
                if i.kind == pb.INPUT_KIND_REFERENCE and not is_refreshed(i)}
        self.rt = compiled.runtime(_policy(job), reference_data=refs)
        self.pm = compiled.pm
        #: Refreshed reference inputs (PostgreSQL, file patterns): the runner loads and refreshes them.
        self.reference_sources = {i.alias: reference_source(i, config) for i in job.inputs if is_refreshed(i)}
        # A file stream input's reader turns every file's records into JSON bodies.
        self.formats = {i.alias.lower(): "json" if i.path_pattern and i.kind != pb.INPUT_KIND_REFERENCE
                        else (i.format or "json").lower() for i in job.inputs}
        self.registry_address = registry_address
        #: the deadline of the registry calls (ProcessingConfig.call_timeout_s)
        self.call_timeout_s = float(getattr(config, "call_timeout_s", 10.0))
        self._serializers: dict[str, Any] = {}
        self.runtime_errors = 0
        self._schemas: dict[str, dict[str, pa.DataType]] = {}
        self._pending = False
        self._fed: dict[str, list[int]] = {}  # partition -> [first, last] sequence number fed this epoch
        #: What the ordering policy did with each recent event (ListEventVerdicts).
        self.verdicts = VerdictLog()
        self.verdicts.windows = _aligned_windows(compiled.plan)
        #: With a dead-letter hub: the events that failed since the last take (error samples
        #: with partition, sequence number, reason, and the record when no position is known).
        self.dead: list | None = [] if job.dead_letter_hub else None
        self._attach()

    def _serializer(self, fmt: str):
        if fmt not in self._serializers:
            ser = self.pm.collect().serializers.get(fmt)
            if ser is None:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"no serializer plugin for input format {fmt!r}")
            if ser.uses_registry and self.registry_address:
                from headwater.schemaregistry import SchemaRegistryClient

                ser = ser.configured(SchemaRegistryClient.from_connection_string(
                    self.registry_address, timeout=self.call_timeout_s))
            self._serializers[fmt] = ser
        return self._serializers[fmt]

    def feed(self, alias: str, bodies: list[bytes], content_types: list[str],
             arrivals: list[int], partition_ids: list[str], sequence_numbers: Any = None) -> None:
        """Raw bodies with arrival (enqueued) times in microseconds since the epoch."""
        fmt = self.formats.get(alias.lower(), "json")
        if fmt == "json":  # system columns (PartitionId, ...) are the engine's: the binder adds those the plan reads
            self._guard(lambda: self.rt.feed_bodies(alias, bodies, arrivals, partition_ids=partition_ids,
                                                    sequence_numbers=sequence_numbers), partition_ids,
                        sequence_numbers)
            return
        self._feed_decoded(alias, fmt, bodies, content_types, arrivals, partition_ids, sequence_numbers)

    @property
    def metadata_inputs(self) -> set[str]:
        """Inputs (lower case) whose readers call GetMetadataPropertyValue: the runner reads
        their events' properties and passes them as ``metadata`` to :meth:`feed_packed`."""
        return self.rt.metadata_inputs

    def feed_packed(self, alias: str, partition_id: str, body: bytes, offsets: Any, content_type: str,
                    arrival_us: Any, sequence_numbers: Any, metadata: list[dict] | None = None) -> None:
        """A batch of one partition as ingestion's packed read gives it: the bodies in one
        buffer (body i is ``body[offsets[i]:offsets[i+1]]``), arrival times (us) and sequence
        numbers as int64 arrays. JSON is decoded by batch (Arrow's JSON reader over the
        buffer); Avro/CSV by their serializer plugin. Events that do not decode are counted
        (see :meth:`error_samples`) and the batch goes on. ``metadata`` (one dict per event,
        see :class:`headwater.functions.EventRecord`) is what GetMetadataPropertyValue reads."""
        fmt = self.formats.get(alias.lower(), "json")
        self._pending = True  # the watermark moves once every partition of the epoch is in
        if len(sequence_numbers):
            lo, hi = int(np.min(sequence_numbers)), int(np.max(sequence_numbers))
            span = self._fed.setdefault(str(partition_id), [lo, hi])
            span[0], span[1] = min(span[0], lo), max(span[1], hi)
        if fmt == "json":
            self._guard(lambda: self.rt.feed_buffer(alias, body, offsets, arrival_us, partition_ids=partition_id,
                                                    sequence_numbers=sequence_numbers, advance=False,
                                                    metadata=metadata),
                        partition_id, sequence_numbers)
            return
        offs = np.asarray(offsets, dtype=np.int64).tolist()
        view = memoryview(body)
        bodies = [bytes(view[offs[i]:offs[i + 1]]) for i in range(len(offs) - 1)]
        n = len(bodies)
        self._feed_decoded(alias, fmt, bodies, [content_type] * n, np.asarray(arrival_us).tolist(),
                           [partition_id] * n, sequence_numbers, advance=False, metadata=metadata)

    def _feed_decoded(self, alias, fmt, bodies, content_types, arrivals, partition_ids, sequence_numbers,
                      advance: bool = True, metadata: list[dict] | None = None) -> None:
        ser = self._serializer(fmt)
        counters = self.rt.counters

        def on_error(i: int, exc: Exception) -> None:
            counters.context = (partition_ids, sequence_numbers, None)
            try:
                counters.error(f"InputDeserializationError: input {alias}: event {i}: {exc}", index=i, body=True)
            finally:
                counters.context = None

        rows, index = ser.decode_with_index(bodies, list(content_types), on_error)
        self._guard(lambda: self.rt.feed(alias, rows, [arrivals[i] for i in index],
                                         partition_ids=[partition_ids[i] for i in index], advance=advance,
                                         metadata=None if metadata is None else [metadata[i] for i in index]),
                    partition_ids, sequence_numbers)

    def _settle(self) -> None:
        """After an epoch fed with feed_packed: run the time loop once, all partitions in."""
        if self._pending:
            self._pending = False
            self._guard_epoch(self.rt.advance_watermark)

    def _guard_epoch(self, fn) -> None:
        """The time loop after packed feeds: an error names the partitions and sequence
        numbers fed since the last one."""
        fed, self._fed = self._fed, {}
        try:
            fn()
        except HeadwaterError as exc:
            self.runtime_errors += 1
            where = "; ".join(f"input partition {p}, sequence numbers {lo}..{hi}" for p, (lo, hi) in sorted(fed.items()))
            raise HeadwaterError(Reason.JOB_FAILED, f"runtime error: {exc.message}" +
                                 (f" ({where})" if where else "")) from exc

    def _guard(self, fn, partitions: Any = None, sequences: Any = None) -> None:
        """A runtime error (a failing CAST) stops the job; the message names the batch's
        partition and the sequence numbers it spans."""
        try:
            fn()
        except HeadwaterError as exc:
            self.runtime_errors += 1
            where = ""
            if partitions is not None:
                parts = sorted({str(p) for p in ([partitions] if isinstance(partitions, str) else partitions)})
                where = f" (input partition {', '.join(parts)}"
                if sequences is not None and len(sequences):
                    where += f", sequence numbers {int(np.min(sequences))}..{int(np.max(sequences))}"
                where += ")"
            raise HeadwaterError(Reason.JOB_FAILED, f"runtime error: {exc.message}{where}") from exc

    def advance_arrival(self, arrival_us: int) -> None:
        """Every partition has read up to ``arrival_us`` (the arrival time of the events
        read, not the wall clock): windows of arrival-time queries up to it may close."""
        self._pending = False
        self._guard_epoch(lambda: self.rt.advance_time(int(arrival_us)))

    def take_output_tables(self) -> dict[str, pa.Table]:
        """Output rows since the last take as Arrow tables, typed as Stream Analytics types
        them (bigint int64, float float64, nvarchar string, datetime timestamp[us, UTC], bit
        bool; records and arrays as JSON text). A column keeps the type it was first given."""
        self._settle()
        out = {}
        for name, frame in self.rt.take_frames().items():
            out[name] = frame_table(frame, self._schemas.setdefault(name.lower(), {}),
                                    lambda message, row, name=name: self.rt.counters.error(
                                        f"DataConversionError: output {name}: {message}", record=row))
        return out

    def error_samples(self) -> list[dict]:
        """The first events that could not be decoded or converted: partition, sequence number, reason."""
        return list(self.rt.counters.error_samples)

    def advance(self, now: datetime) -> None:
        self._guard(lambda: self.rt.advance_time(int(now.timestamp() * 1_000_000)))

    def take_outputs(self) -> dict[str, list[dict]]:
        self._settle()
        return self.rt.take()

    def snapshot(self) -> bytes:
        self._settle()
        return self.rt.snapshot()

    def snapshot_begin(self, base=None):
        """A snapshot in two steps (``.finish()`` gives the blob): see Runtime.snapshot_begin."""
        self._settle()
        return self.rt.snapshot_begin(base)

    def restore(self, state: bytes) -> None:
        self.rt.restore(state)
        self._attach()  # the restored counters are new objects

    def _attach(self) -> None:
        self.rt.counters.verdicts = self.verdicts
        self.rt.counters.dead = self.dead

    def take_dead(self) -> list[dict]:
        """The failed events since the last take (for the job's dead-letter hub)."""
        if not self.dead:
            return []
        out, self.dead[:] = list(self.dead), []
        return out

    def counters(self) -> dict[str, Any]:
        c = self.rt.counters.as_dict()
        samples = c.get("samples") or []
        return {**c, "runtime_errors": self.runtime_errors,
                "last_error_sample": samples[-1] if samples else ""}

    def watermark(self) -> datetime | None:
        from headwater.services.processing.exec.base import MIN_TS

        wm = self.rt.watermark
        if not isinstance(wm, int) or wm <= MIN_TS or wm >= 2**61:
            return None
        return datetime.fromtimestamp(wm / 1e6, UTC)

    def stream_inputs(self) -> list[str]:
        return list(self.rt.compiled.inputs)

    def add_reference_version(self, alias: str, valid_from_us: int, rows: list[dict]) -> None:
        """A snapshot of a refreshed reference input (on the engine's thread)."""
        self.rt.add_reference_version(alias, valid_from_us, rows)


def _aligned_windows(plan: Any) -> dict[str, tuple[int, int, int]]:
    """Per input read directly by a tumbling or hopping window: its ``(size, hop, offset)`` in us."""
    from headwater.windows import AlignedShape

    out: dict[str, tuple[int, int, int]] = {}
    for ls in plan.statements:
        src = ls.select.source
        if len(ls.windows) != 1 or src.name.lower() in out:
            continue
        shape = ls.windows[0].config.columnar()
        if isinstance(shape, AlignedShape):
            out[src.name.lower()] = (shape.size, shape.hop, shape.offset)
    return out


def _sa_type(v: Any) -> pa.DataType | None:
    if v is None:
        return None
    if isinstance(v, bool):
        return pa.bool_()
    if isinstance(v, int):
        return pa.int64() if -(2**63) <= v < 2**63 else pa.float64()
    if isinstance(v, float):
        return pa.float64()
    if isinstance(v, datetime):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


def _convert(v: Any, t: pa.DataType) -> Any:
    if v is None:
        return None
    if t == pa.string():
        if isinstance(v, str):
            return v
        if isinstance(v, datetime):
            from headwater.functions import format_datetime

            return format_datetime(v)
        return json_text(v)
    if t == pa.float64():
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if t == pa.int64():
        return v if isinstance(v, int) and not isinstance(v, bool) else None
    if t == pa.bool_():
        return v if isinstance(v, bool) else None
    return v if isinstance(v, datetime) else None


def output_table(rows: list[dict], schema: dict[str, pa.DataType], on_error: Any = None) -> pa.Table:
    """Rows as one typed Arrow table. A column's type is the first one seen (kept in
    ``schema`` across calls: a sink's table keeps one schema); int and float mixed give float;
    anything else mixed, records and arrays give JSON text. A later value that does not fit
    its column's type (text in a column first typed bigint) is a data conversion error, as in
    Stream Analytics: ``on_error(message, row)`` is called and the row is not written (never
    a NULL in its place); without ``on_error`` the value is NULL."""
    names: dict[str, str] = {}
    for r in rows:
        for k in r:
            names.setdefault(k, k)
    for col in names:
        kinds = {_sa_type(r.get(col)) for r in rows} - {None}
        if col in schema:
            t = schema[col]
            if kinds - {t} and not (t == pa.float64() and kinds <= {pa.int64(), pa.float64()}):
                t = pa.string()
        elif not kinds:
            continue
        elif len(kinds) == 1:
            t = next(iter(kinds))
        elif kinds <= {pa.int64(), pa.float64()}:
            t = pa.float64()
        else:
            t = pa.string()
        if any(isinstance(r.get(col), (dict, list)) for r in rows):
            t = pa.string()
        schema.setdefault(col, t)
    fields = [pa.field(c, schema.get(c, pa.string())) for c in names]
    columns = [[_convert(r.get(f.name), f.type) for r in rows] for f in fields]
    if on_error is not None:
        bad: set[int] = set()
        for f, values in zip(fields, columns):
            for i, v in enumerate(values):
                if v is None and i not in bad and rows[i].get(f.name) is not None:
                    bad.add(i)
                    on_error(f"column {f.name}: {json_text(rows[i][f.name])[:200]} is not a {_SA_NAMES.get(f.type, f.type)} "
                             "(the column's type since its first row)", rows[i])
        if bad:
            columns = [[v for i, v in enumerate(values) if i not in bad] for values in columns]
    arrays = [pa.array(values, type=f.type) for f, values in zip(fields, columns)]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


_SA_NAMES = {pa.int64(): "bigint", pa.float64(): "float", pa.string(): "nvarchar(max)", pa.bool_(): "bit",
             pa.timestamp("us", tz="UTC"): "datetime"}


_POLARS_SA = {"Int64": pa.int64(), "Float64": pa.float64(), "String": pa.string(), "Boolean": pa.bool_(),
              "Float32": pa.float64(), **dict.fromkeys(("Int8", "Int16", "Int32", "UInt8", "UInt16", "UInt32"),
                                                        pa.int64())}


def frame_table(df, schema: dict[str, pa.DataType], on_error: Any = None) -> pa.Table:
    """An output batch as an Arrow table with Stream Analytics types; columns of Python
    values, records or arrays go through :func:`output_table` (JSON text where mixed)."""
    import polars as pl

    cols = [c for c in df.columns if c != "__ts"]
    plain = []
    for c in cols:
        dt = df.schema[c]
        t = pa.timestamp("us", tz="UTC") if isinstance(dt, pl.Datetime) else _POLARS_SA.get(str(dt))
        if t is None and dt == pl.Null and schema.get(c) is not None:
            t = schema[c]
        if t is None or (c in schema and schema[c] != t and not (schema[c] == pa.float64() and t == pa.int64())):
            return output_table(df.select(cols).to_dicts(), schema, on_error)
        plain.append((c, schema.setdefault(c, t)))
    arrays = []
    for c, t in plain:
        s = df[c]
        if isinstance(s.dtype, pl.Datetime):
            s = s.dt.convert_time_zone("UTC") if s.dtype.time_zone else s.dt.replace_time_zone("UTC")
        arrays.append(s.to_arrow().cast(t))
    return pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(c, t) for c, t in plain]))


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
