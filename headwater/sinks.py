"""The plugin API of outputs: sink kinds and sinks (Quix Streams' shape).

A plugin registers :class:`SinkKind` objects through the ``register_sinks``
hook. A kind has a ``name`` (the ``kind`` of a sink), validates a sink's
configuration and creates :class:`Sink` objects::

    from headwater import hookimpl
    from headwater.sinks import Sink, SinkKind, SinkSpec

    class PrintSink(Sink):
        def write_batch(self, batch, checkpoint):
            print(batch.to_pylist())

    class PrintKind(SinkKind):
        name = "print"
        description = "prints rows"

        def create(self, spec: SinkSpec) -> Sink:
            return PrintSink(spec)

    @hookimpl
    def register_sinks(register):
        register(PrintKind())

The service calls ``write_batch(batch, checkpoint)`` once per batch (never one
call per row), with a :class:`pyarrow.Table` and the writer's
:class:`Checkpoint`, and ``flush()`` at the writer's checkpoint: after
``flush()`` returns, every row written so far must be durable and visible.
Methods may be plain functions (the service runs them in a worker thread) or
coroutines (awaited on the service's event loop).

Errors a sink raises:

- :class:`SinkBackpressureError` (``retry_after`` seconds): the target is busy;
  the service retries under the output's error policy;
- :class:`SinkTransientError`: a failure worth retrying (connection lost,
  timeout, HTTP 5xx);
- :class:`SinkRowError` (``rows``: indices into the batch): those rows cannot
  be stored (missing id, type conflict); the output's error policy drops them or
  fails the write;
- any other :class:`headwater.errors.HeadwaterError`: a permanent failure of the
  whole write (bad credentials, missing table, bad configuration), reported to
  the writer with the output's name.

Exactly-once: a sink that stores the :class:`Checkpoint` it last applied in the
same transaction as the rows (``last_checkpoint``) sets ``exactly_once = True``;
the service then asks it, rather than its own memory, whether a replayed write
was already applied.
"""

from __future__ import annotations

import abc
import enum
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from headwater.errors import HeadwaterError, Reason

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from headwater.v1 import event_pb2

__all__ = [
    "Checkpoint",
    "ErrorPolicy",
    "OutputMode",
    "ReadableSink",
    "Sink",
    "SinkBackpressureError",
    "SinkConfigError",
    "SinkKind",
    "SinkRowError",
    "SinkSpec",
    "SinkTransientError",
    "as_table",
    "batch_from_proto",
    "batch_to_proto",
    "replace_keys",
]


class OutputMode(enum.StrEnum):
    """How a write changes the result (Spark's output modes)."""

    APPEND = "append"
    UPDATE = "update"
    COMPLETE = "complete"


class ErrorPolicy(enum.StrEnum):
    """What happens to rows that cannot be written (Stream Analytics' output error policy)."""

    RETRY = "retry"
    DROP = "drop"


@dataclass(frozen=True, order=True)
class Checkpoint:
    """The identity of a write: the writer's checkpoint id and the batch's place in it.

    Writes of one writer are ordered by ``(checkpoint_id, batch_id)``; a write not
    after the last applied one is a replay. ``checkpoint_id == 0`` means the
    writer gives no identity: such writes are never deduplicated.
    """

    checkpoint_id: int = 0
    batch_id: int = 0
    writer: str = field(default="", compare=False)

    @property
    def tracked(self) -> bool:
        """True when the write carries an identity the sink can deduplicate on."""
        return self.checkpoint_id > 0

    @property
    def sequence(self) -> int:
        """One increasing integer for targets that keep a single version number
        (Delta's transaction version): ``checkpoint_id * 2**20 + batch_id``."""
        return (self.checkpoint_id << 20) + self.batch_id

    def after(self, last: Checkpoint | None) -> bool:
        """True when this write comes after ``last`` (so it must be applied)."""
        if not self.tracked or last is None:
            return True
        return (self.checkpoint_id, self.batch_id) > (last.checkpoint_id, last.batch_id)


def replace_keys(mode: OutputMode, key_columns: Sequence[str], schema: pa.Schema) -> list[str]:
    """The columns a write's rows replace stored rows by (update and complete modes).

    Update: the sink's ``key_columns``. Complete: ``key_columns`` when set, else every
    column that is not a number: a grouped result's group-by and window columns are
    strings and timestamps, its aggregates numbers (set ``key_columns`` when a group-by
    column is a number). An empty list in complete mode means the result has no key
    (one global aggregate): each trigger's rows replace the whole result. Append: [].
    """
    if mode is OutputMode.APPEND:
        return []
    if key_columns or mode is OutputMode.UPDATE:
        return list(key_columns)
    import pyarrow as pa

    return [f.name for f in schema
            if not (pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_decimal(f.type))]


@dataclass(frozen=True)
class SinkSpec:
    """Everything a kind needs to create a sink."""

    #: The sink's id (the ``{sink}`` of ``sinks/{sink}``).
    name: str
    #: The kind's settings, as validated by :meth:`SinkKind.validate`.
    config: Mapping[str, Any]
    output_mode: OutputMode = OutputMode.APPEND
    key_columns: tuple[str, ...] = ()
    #: A folder the sink may keep files in (state, spooled rows).
    data_dir: Path | None = None
    #: Folders a kind may read and write client-named paths under (the service's
    #: ``allowed_paths``; see :func:`headwater.paths.confine`). Empty only outside a
    #: service (a library user creating sinks directly): paths are then not confined.
    allowed_roots: tuple[Path, ...] = ()
    #: A connection string to the service's own namespace (ingestion), signed with the
    #: service's key, for kinds that publish back to it (``hub``); empty when unknown.
    #: Never part of ``config``, so never returned by Get/List.
    namespace: str = field(default="", repr=False)
    #: A connection string to the namespace's schema registry, likewise.
    registry: str = field(default="", repr=False)


class SinkConfigError(HeadwaterError):
    """A sink's configuration is wrong; the message names the setting."""

    def __init__(self, message: str, *, setting: str = "") -> None:
        super().__init__(Reason.INVALID_ARGUMENT, message, metadata={"field": setting} if setting else {})


class SinkBackpressureError(HeadwaterError):
    """The target is busy: try again after ``retry_after`` seconds (Quix's backpressure)."""

    def __init__(self, retry_after: float, message: str = "") -> None:
        super().__init__(Reason.SERVICE_BUSY, message or f"sink busy, retry after {retry_after:.2f}s",
                         retry_after=retry_after)


class SinkTransientError(HeadwaterError):
    """A failure worth retrying: connection lost, timeout, HTTP 5xx."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(Reason.SERVICE_BUSY, message, retry_after=retry_after)


class SinkRowError(HeadwaterError):
    """Some rows of the batch cannot be stored; ``rows`` are their indices in the batch.

    The message names the cause (``row 3: field 'id' is missing``); the service
    adds the output's name.
    """

    def __init__(self, message: str, rows: Sequence[int], *, reason: Reason = Reason.INVALID_ARGUMENT) -> None:
        super().__init__(reason, message, metadata={"rows": ",".join(str(r) for r in list(rows)[:20])})
        self.rows = list(rows)


class Sink(abc.ABC):
    """One output instance. Subclasses implement :meth:`write_batch`."""

    #: True when replays are detected by the target itself (see the module doc).
    exactly_once: ClassVar[bool] = False

    def __init__(self, spec: SinkSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return self.spec.name

    def open(self) -> Any:
        """Connect, create tables, recover. Called once before the first write."""

    @abc.abstractmethod
    def write_batch(self, batch: pa.Table, checkpoint: Checkpoint) -> Any:
        """Store ``batch`` (a :class:`pyarrow.Table`).

        Never empty (an empty trigger of a complete output changes nothing, so the
        service does not pass it on).
        """

    def flush(self) -> Any:
        """Make everything written so far durable and visible (at the writer's checkpoint)."""

    def poll(self) -> Any:
        """Called about once a second: close files past their roll interval, commit old buffers."""

    def last_checkpoint(self, writer: str) -> Checkpoint | None:
        """The last write of ``writer`` this sink applied (exactly-once sinks)."""
        return None

    def close(self) -> Any:
        """Flush and release connections (service shutdown, sink deleted)."""
        return self.flush()

    def drop(self) -> Any:
        """The sink is deleted: release what it holds (a memory table frees its rows)."""
        return self.close()


class ReadableSink(Sink):
    """A sink whose rows the service can read back (memory tables, dashboard datasets)."""

    @abc.abstractmethod
    def read(self) -> pa.Table:
        """All stored rows, in write order."""


class SinkKind(abc.ABC):
    """A kind of output, registered by a plugin."""

    #: The kind's name, used as ``kind`` of a sink.
    name: ClassVar[str] = ""
    #: One line for ``headwater sink kinds`` and ListSinkKinds.
    description: ClassVar[str] = ""
    #: True when writes with a checkpoint id are not duplicated on replay.
    exactly_once: ClassVar[bool] = False
    #: Output modes the kind supports.
    output_modes: ClassVar[tuple[OutputMode, ...]] = (OutputMode.APPEND,)

    def validate(self, config: Mapping[str, Any], spec: SinkSpec) -> dict[str, Any]:
        """Check ``config`` and return it normalised (defaults filled in).

        Raise :class:`SinkConfigError` naming the setting that is wrong. The
        default accepts any mapping.
        """
        return dict(config)

    @abc.abstractmethod
    def create(self, spec: SinkSpec) -> Sink:
        """A sink for a validated ``spec``."""


# -- helpers for kinds -------------------------------------------------------------


def require(config: Mapping[str, Any], key: str, kind: str, types: type | tuple[type, ...] = str) -> Any:
    """``config[key]``, or :class:`SinkConfigError` naming the missing or mistyped setting."""
    if key not in config or config[key] in (None, ""):
        raise SinkConfigError(f"{kind} sink: setting {key!r} is required", setting=key)
    value = config[key]
    if not isinstance(value, types):
        names = types.__name__ if isinstance(types, type) else " or ".join(t.__name__ for t in types)
        raise SinkConfigError(f"{kind} sink: setting {key!r} must be a {names}, got {value!r}", setting=key)
    return value


def check_keys(config: Mapping[str, Any], allowed: Sequence[str], kind: str) -> None:
    """Refuse settings a kind does not know (a misspelt setting is an error, not a no-op)."""
    unknown = sorted(set(config) - set(allowed))
    if unknown:
        raise SinkConfigError(
            f"{kind} sink: unknown setting {unknown[0]!r} (known: {', '.join(sorted(allowed))})",
            setting=unknown[0])


def as_table(batch: pa.Table | pa.RecordBatch) -> pa.Table:
    """A :class:`pyarrow.Table` for a table or a record batch."""
    import pyarrow as pa

    if isinstance(batch, pa.RecordBatch):
        return pa.Table.from_batches([batch])
    return batch


def batch_to_proto(table: pa.Table | pa.RecordBatch,
                   fmt: event_pb2.RecordBatchFormat | None = None) -> event_pb2.RecordBatch:
    """Encode rows as a ``headwater.v1.RecordBatch`` (Arrow IPC unless ``fmt`` is JSON lines)."""
    import pyarrow as pa

    from headwater.v1 import event_pb2

    table = as_table(table)
    if fmt == event_pb2.RECORD_BATCH_FORMAT_JSON_LINES:
        import orjson

        rows = table.to_pylist()
        data = b"".join(orjson.dumps(r, default=str) + b"\n" for r in rows)
        return event_pb2.RecordBatch(format=event_pb2.RECORD_BATCH_FORMAT_JSON_LINES, data=data,
                                     row_count=table.num_rows)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return event_pb2.RecordBatch(format=event_pb2.RECORD_BATCH_FORMAT_ARROW_IPC,
                                 data=sink.getvalue(), row_count=table.num_rows)


def batch_from_proto(batch: event_pb2.RecordBatch) -> pa.Table:
    """Decode a ``headwater.v1.RecordBatch``; bad data raises INVALID_ARGUMENT naming the problem."""
    import pyarrow as pa

    from headwater.v1 import event_pb2

    if not batch.data:
        return pa.table({})
    if batch.format == event_pb2.RECORD_BATCH_FORMAT_JSON_LINES:
        import orjson

        rows = []
        for n, line in enumerate(batch.data.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"batch line {n} is not valid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                     f"batch line {n} is not a JSON object: {line[:80]!r}")
            rows.append(row)
        try:
            return pa.Table.from_pylist(rows)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"batch rows have conflicting types: {exc}") from None
    if batch.format not in (event_pb2.RECORD_BATCH_FORMAT_UNSPECIFIED, event_pb2.RECORD_BATCH_FORMAT_ARROW_IPC):
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"unknown record batch format {batch.format}")
    try:
        return pa.ipc.open_stream(batch.data).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise HeadwaterError(Reason.INVALID_ARGUMENT,
                             f"batch data is not an Arrow IPC stream: {exc}") from None
