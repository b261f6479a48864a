"""Files named by a path pattern, as Stream Analytics reads Blob/ADLS inputs.

A pattern is a path under the service's ``allowed_paths`` with tokens: ``{date}``
and ``{time}`` (written as ``date_format`` / ``time_format`` say), Capture's
``{Year}`` ``{Month}`` ``{Day}`` ``{Hour}`` ``{Minute}`` ``{Second}``, ``{PartitionId}``
(the files' partition), ``{Namespace}`` and ``{EventHub}`` (any one folder name),
``*`` (any name within one folder) and ``**`` (any folders). A file's time is the
one its path names; a pattern without time tokens uses the file's modification time.

Everything a client names stays under the allowed folders: the pattern's fixed
part is confined like every other client path (``..`` is refused outright), and
a file reached through a symlink that leads out is skipped.

Formats, by extension: ``.json``/``.jsonl``/``.ndjson`` (JSON lines or one JSON
array), ``.csv`` (a header row; types inferred by Arrow's CSV reader), ``.avro``
(fastavro; a file in the Event Hubs Capture layout gives its events' bodies, each
with its own ``EnqueuedTimeUtc`` as arrival time), ``.parquet`` (pyarrow). Every
event becomes a JSON body, so the engine decodes files as it decodes a hub's JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson

from headwater.errors import HeadwaterError, Reason
from headwater.paths import confine

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["DATE_FORMATS", "TIME_FORMATS", "FileEntry", "PathPattern", "read_events"]

log = logging.getLogger("headwater.processing.files")

#: ``date_format`` -> (strptime format, regex)
DATE_FORMATS = {
    "YYYY/MM/DD": ("%Y/%m/%d", r"\d{4}/\d{2}/\d{2}"),
    "YYYY-MM-DD": ("%Y-%m-%d", r"\d{4}-\d{2}-\d{2}"),
    "MM/DD/YYYY": ("%m/%d/%Y", r"\d{2}/\d{2}/\d{4}"),
    "DD/MM/YYYY": ("%d/%m/%Y", r"\d{2}/\d{2}/\d{4}"),
    "MM-DD-YYYY": ("%m-%d-%Y", r"\d{2}-\d{2}-\d{4}"),
    "DD-MM-YYYY": ("%d-%m-%Y", r"\d{2}-\d{2}-\d{4}"),
}
#: ``time_format`` -> (strptime format, regex)
TIME_FORMATS = {
    "HH": ("%H", r"\d{2}"),
    "HH-mm": ("%H-%M", r"\d{2}-\d{2}"),
    "HH_mm": ("%H_%M", r"\d{2}_\d{2}"),
    "HH/mm": ("%H/%M", r"\d{2}/\d{2}"),
}
_CAPTURE_PARTS = {"Year": r"\d{4}", "Month": r"\d{2}", "Day": r"\d{2}", "Hour": r"\d{2}", "Minute": r"\d{2}",
                  "Second": r"\d{2}"}
_TOKEN = re.compile(r"\{([^{}]*)\}|\*\*|\*")
_CAPTURE_FIELDS = {"SequenceNumber", "Offset", "EnqueuedTimeUtc", "SystemProperties", "Properties", "Body"}
EXTENSIONS = (".json", ".jsonl", ".ndjson", ".csv", ".avro", ".parquet")


@dataclass(frozen=True)
class FileEntry:
    path: Path
    #: The file's time in us: the one its path names, else its modification time.
    time_us: int
    partition: str
    size: int


class PathPattern:
    """A compiled path pattern: the folder it lies under, and a regex over the rest."""

    def __init__(self, pattern: str, roots: list[Path], field: str = "path_pattern",
                 date_format: str = "", time_format: str = "") -> None:
        if not pattern or "\x00" in pattern:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field} is empty", metadata={"field": field})
        if ".." in Path(pattern).parts:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field} {pattern!r} contains '..': a pattern names "
                                 "files under the allowed folders only", metadata={"field": field})
        self.text = pattern
        segs = pattern.split("/")
        n = next((i for i, seg in enumerate(segs) if _TOKEN.search(seg)), len(segs) - 1)
        n = min(n, len(segs) - 1)  # the last segment names files: never part of the folder
        base_text = "/".join(segs[:n]) or ("/" if pattern.startswith("/") else ".")
        try:
            self.base = confine(base_text, roots, field)
        except HeadwaterError as exc:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, exc.message.replace(repr(base_text), repr(pattern)),
                                 metadata={"field": field}) from None
        self.roots = roots
        rest = "/".join(segs[n:])
        self.date_fmt = date_format or "YYYY/MM/DD"
        self.time_fmt = time_format or "HH"
        if self.date_fmt not in DATE_FORMATS:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"date_format {date_format!r}: use one of "
                                 f"{', '.join(DATE_FORMATS)}", metadata={"field": "date_format"})
        if self.time_fmt not in TIME_FORMATS:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"time_format {time_format!r}: use one of "
                                 f"{', '.join(TIME_FORMATS)}", metadata={"field": "time_format"})
        regex, pos, names = [], 0, set()
        for m in _TOKEN.finditer(rest):
            regex.append(re.escape(rest[pos:m.start()]))
            pos = m.end()
            tok = m.group(0)
            name = m.group(1)
            if tok == "**":
                regex.append(r"(?:.*)")
            elif tok == "*":
                regex.append(r"[^/]*")
            elif name == "date":
                regex.append(f"(?P<date>{DATE_FORMATS[self.date_fmt][1]})")
            elif name == "time":
                regex.append(f"(?P<time>{TIME_FORMATS[self.time_fmt][1]})")
            elif name in _CAPTURE_PARTS:
                regex.append(f"(?P<{name}>{_CAPTURE_PARTS[name]})" if name not in names else _CAPTURE_PARTS[name])
            elif name == "PartitionId":
                regex.append(r"(?P<PartitionId>[^/]+)" if name not in names else r"[^/]+")
            elif name in ("Namespace", "EventHub"):
                regex.append(r"[^/]+")
            else:
                raise HeadwaterError(Reason.INVALID_ARGUMENT, f"{field} {pattern!r}: unknown token {tok} (use "
                                     "{date} {time} {PartitionId} {Year} {Month} {Day} {Hour} {Minute} {Second} "
                                     "{Namespace} {EventHub} * **)", metadata={"field": field})
            if name:
                names.add(name)
        regex.append(re.escape(rest[pos:]))
        self.regex = re.compile("".join(regex) + "$")
        self.names = names
        #: Whether file times come from the path (else from modification times).
        self.timed = bool(names & ({"date", "time"} | set(_CAPTURE_PARTS)))
        self.partitioned = "PartitionId" in names

    def _time_us(self, m: re.Match, path: Path) -> int | None:
        g = m.groupdict()
        try:
            if g.get("date") is not None or g.get("time") is not None:
                day = dt.datetime.strptime(g["date"], DATE_FORMATS[self.date_fmt][0]) if g.get("date") else \
                    dt.datetime(1970, 1, 1)
                if g.get("time"):
                    t = dt.datetime.strptime(g["time"], TIME_FORMATS[self.time_fmt][0])
                    day = day.replace(hour=t.hour, minute=t.minute)
                return int(day.replace(tzinfo=dt.UTC).timestamp() * 1_000_000)
            if g.get("Year"):
                y, mo, d, h, mi, sec = (int(g.get(k) or default) for k, default in (
                    ("Year", 1970), ("Month", 1), ("Day", 1), ("Hour", 0), ("Minute", 0), ("Second", 0)))
                return int(dt.datetime(y, mo, d, h, mi, sec, tzinfo=dt.UTC).timestamp() * 1_000_000)
        except ValueError:
            return None  # a name that looks like a date but is none: not a file of the pattern
        return int(path.stat().st_mtime * 1_000_000)

    def files(self) -> list[FileEntry]:
        """Every file the pattern names, in time order (then path order)."""
        out: list[FileEntry] = []
        if not self.base.is_dir():
            return out
        for dirpath, dirnames, filenames in os.walk(self.base, followlinks=False):
            dirnames.sort()
            for name in filenames:
                p = Path(dirpath) / name
                rel = p.relative_to(self.base).as_posix()
                m = self.regex.match(rel)
                if m is None or name.startswith("."):
                    continue
                real = p.resolve()
                if not any(real == r or real.is_relative_to(r) for r in self.roots):
                    log.warning("file input %s: %s leads outside the allowed folders; skipped", self.text, p)
                    continue
                try:
                    t = self._time_us(m, p)
                    size = p.stat().st_size
                except OSError:
                    continue
                if t is None:
                    continue
                out.append(FileEntry(p, t, m.groupdict().get("PartitionId") or "0", size))
        out.sort(key=lambda f: (f.time_us, str(f.path)))
        return out


def _json_default(v: Any) -> Any:
    if isinstance(v, bytes | bytearray | memoryview):
        b = bytes(v)
        try:
            return b.decode()
        except UnicodeDecodeError:
            return base64.b64encode(b).decode()
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=dt.UTC)).isoformat()
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    return str(v)


def _enqueued_us(text: object, default: int) -> int:
    """Capture's ``EnqueuedTimeUtc`` (``12/05/2026 10:00:01 AM``, or ISO) in us; ``default``
    when it is missing or no time."""
    if not isinstance(text, str):
        return default
    try:
        t = dt.datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p")
    except ValueError:
        try:
            t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return default
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(t.timestamp() * 1_000_000)


def read_events(entry: FileEntry, max_bytes: int) -> tuple[list[bytes], list[int]]:  # noqa: C901
    """One file's events as JSON bodies, with their arrival times (us): the file's time,
    or each Capture record's ``EnqueuedTimeUtc``. A file over ``max_bytes`` is refused
    with its name and the limit; one that does not parse with its name and the reason."""
    path = entry.path
    if entry.size > max_bytes:
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"file {path} is {entry.size} bytes, over the limit of "
                             f"{max_bytes} (setting max_input_file_bytes)")
    suffix = path.suffix.lower()
    t = entry.time_us
    try:
        if suffix in (".json", ".jsonl", ".ndjson"):
            data = path.read_bytes()
            stripped = data.lstrip()
            if stripped.startswith(b"["):
                rows = orjson.loads(data)
                return [orjson.dumps(r) for r in rows], [t] * len(rows)
            bodies = [line for line in data.splitlines() if line.strip()]
            return bodies, [t] * len(bodies)
        if suffix == ".csv":
            from pyarrow import csv as pacsv

            rows = pacsv.read_csv(path)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            rows = pq.read_table(path)
        elif suffix == ".avro":
            import fastavro

            with path.open("rb") as fh:
                reader = fastavro.reader(fh)
                fields = {f["name"] for f in reader.writer_schema.get("fields", [])} \
                    if isinstance(reader.writer_schema, dict) else set()
                if _CAPTURE_FIELDS <= fields:  # Event Hubs Capture: the events themselves
                    bodies, times = [], []
                    # a record schema (the Capture fields): every datum is a dict
                    for rec in cast("Iterator[dict[str, Any]]", reader):
                        if rec.get("Body") is None:
                            continue
                        bodies.append(bytes(rec["Body"]))
                        props = rec.get("SystemProperties") or {}
                        us, ms = props.get("x-opt-enqueued-time-us"), props.get("x-opt-enqueued-time")
                        times.append(us if isinstance(us, int) else int(ms) * 1000 if isinstance(ms, int) else
                                     _enqueued_us(rec.get("EnqueuedTimeUtc"), t))
                    return bodies, times
                rows = list(reader)
        else:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, f"file {path}: unknown format (use "
                                 f"{', '.join(EXTENSIONS)})")
    except HeadwaterError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parser's error names the file
        raise HeadwaterError(Reason.INVALID_ARGUMENT, f"file {path} does not parse as {suffix[1:]}: {exc}") from None
    if not isinstance(rows, list):  # an Arrow table: JSON lines by batch
        table_bodies = _table_bodies(rows)
        if table_bodies is not None:
            return table_bodies, [t] * len(table_bodies)
        rows = rows.to_pylist()
    return [orjson.dumps(r, default=_json_default) for r in rows], [t] * len(rows)


def _table_bodies(table: Any) -> list[bytes] | None:
    """An Arrow table's rows as JSON bodies, converted by column (Polars writes the JSON
    lines); None for a table with columns that need the row path (binary, nested)."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc

    cols = []
    for col in table.columns:
        t = col.type
        if pa.types.is_timestamp(t):
            col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%SZ" if t.tz else "%Y-%m-%dT%H:%M:%S")
        elif pa.types.is_date(t) or pa.types.is_time(t):
            col = col.cast(pa.string())
        elif pa.types.is_decimal(t):
            col = col.cast(pa.float64())
        elif not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                  or pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)):
            return None
        cols.append(col)
    if not table.num_rows:
        return []
    frame = cast(pl.DataFrame, pl.from_arrow(pa.table(cols, names=table.column_names)))  # a Table: a DataFrame
    text = frame.write_ndjson()
    return text.encode().splitlines()


class FileStream:
    """A file stream input's files per partition, each given an index once, in
    path-time order (the manifest, kept in the job's folder so that sequence numbers,
    ``index << 32 | event``, mean the same files after a restart). A file that
    appears with a time before files already taken is skipped with a log line, as
    Stream Analytics takes blobs only at the end of the sequence."""

    def __init__(self, alias: str, pattern: PathPattern, manifest: Path, fresh: bool) -> None:
        self.alias, self.pattern, self.manifest_path = alias, pattern, manifest
        if fresh:
            manifest.unlink(missing_ok=True)
        self.manifest: dict[str, list[list]] = orjson.loads(manifest.read_bytes()) if manifest.exists() else {}
        #: partition -> index of the next file to read.
        self.next: dict[str, int] = {}
        self.skipped: set[str] = set()

    def partitions(self) -> list[str]:
        return sorted(self.manifest)

    def assign(self, entries: list[FileEntry], now_us: int) -> bool:
        """Give new files their index; True if the manifest changed (save it before reading)."""
        changed = False
        known = {p for files in self.manifest.values() for p, _ in files}
        for e in entries:
            key = str(e.path)
            if key in known or key in self.skipped:
                continue
            if self.pattern.timed and e.time_us > now_us:
                continue  # a file for a later period is taken at its time
            files = self.manifest.setdefault(e.partition, [])
            if files and (e.time_us, key) < (files[-1][1], files[-1][0]):
                self.skipped.add(key)
                log.warning("file input %s: %s is older than files already taken; skipped", self.alias, key)
                continue
            files.append([key, e.time_us])
            changed = True
        return changed

    def save(self) -> None:
        from headwater.storage import write_atomic

        write_atomic(self.manifest_path, orjson.dumps(self.manifest))

    def entry(self, pid: str, idx: int) -> FileEntry | None:
        path, t = self.manifest[pid][idx]
        p = Path(path)
        try:
            return FileEntry(p, int(t), pid, p.stat().st_size)
        except OSError:
            log.warning("file input %s: %s is gone; skipped", self.alias, path)
            return None

    def events(self, pid: str, idx: int, max_bytes: int, after_seq: int, start_us: int | None):
        """(bodies, arrivals, sequence numbers) of file ``idx`` past ``after_seq`` (and,
        with no position yet, arrived at or after ``start_us``)."""
        entry = self.entry(pid, idx)
        if entry is None:
            return [], [], []
        bodies, arrivals = read_events(entry, max_bytes)
        base = idx << 32
        first = max(0, after_seq - base + 1)
        seqs = list(range(base + first, base + len(bodies)))
        if first:
            bodies, arrivals = bodies[first:], arrivals[first:]
        if start_us is not None and after_seq < 0 and arrivals and arrivals[0] < start_us:
            keep = [i for i, t in enumerate(arrivals) if t >= start_us]  # only a file that straddles the start
            return [bodies[i] for i in keep], [arrivals[i] for i in keep], [seqs[i] for i in keep]
        return bodies, arrivals, seqs
