"""Running a query locally, with no services: ``headwater query test``, the
``TestQuery`` RPC, ``headwater.services.processing.testing.run_query`` and jobs' Python UDFs all use this."""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["decode_events", "load_udf", "run_local", "udf_plugin"]

def decode_events(data: bytes, name: str = "events.json", pm: Any = None) -> list[dict]:
    """Events of a file's bytes: JSON array, JSON lines, CSV, or an Avro container file.

    The format is the registered serializer whose ``magic`` bytes start the file (an Avro
    container), else the one whose ``file_suffixes`` match the file name (``.json``/``.jsonl``
    JSON, ``.csv`` CSV, ``.avro`` Avro), else JSON.
    """
    if pm is None:
        from headwater.pluginmanager import get_plugin_manager

        pm = get_plugin_manager()
    pm.collect()
    p = Path(name)
    suffix = p.suffix.lower() or f".{name.lower()}"
    serializers = pm.serializers.unique()
    ser = next((s for s in serializers if s.magic and data.startswith(s.magic)), None)
    if ser is not None:
        return ser.read_file(data)
    ser = next((s for s in serializers if suffix in s.file_suffixes), None)
    if ser is None:
        if not data.strip():
            return []
        ser = pm.serializers.get("json")
    elif not ser.magic and not data.strip():
        return []
    if ser is None:
        raise ValueError(f"no serializer plugin reads {p.name}")
    return ser.read_file(data)


def load_udf(spec: str) -> Callable[..., Any]:
    """``module:function`` or ``path/to/file.py:function``."""
    mod, _, fn = spec.rpartition(":")
    if not mod or not fn:
        raise ValueError(f"a UDF must be module:function, got {spec!r}")
    if mod.endswith(".py") or "/" in mod:
        s = importlib.util.spec_from_file_location(Path(mod).stem, mod)
        if s is None or s.loader is None:
            raise ValueError(f"cannot load {mod}")
        module = importlib.util.module_from_spec(s)
        s.loader.exec_module(module)
    else:
        module = importlib.import_module(mod)
    return getattr(module, fn)


def udf_plugin(udfs: dict[str, Callable[..., Any]]) -> object:
    """A plugin object registering Python functions as ``UDF.name`` (aggregates as ``UDA.name``)."""
    from headwater.functions import AggregateFunction, udf
    from headwater.hookspecs import hookimpl

    class _Udfs:
        @hookimpl
        def register_functions(self, register):
            for name, fn in udfs.items():
                if isinstance(fn, AggregateFunction):
                    register(fn)
                else:
                    register(udf(name, fn))
    return _Udfs()


def run_local(query: str, inputs: dict[str, list[dict]], references: dict[str, list[dict]] | None = None, *,
              late: float | None = None, ooo: float | None = None, action: str = "adjust",
              arrival_field: str | None = None, udfs: dict[str, Callable[..., Any]] | None = None,
              pm: Any = None, check_inputs: bool = False, stats: dict | None = None) -> dict[str, list[dict]]:
    """The engine side of ``headwater query test``: rows per output alias (Python values).

    ``check_inputs``: the query may read only ``inputs``, ``references`` and its WITH steps
    (a compile error with line/column otherwise). ``stats``, when given, receives the input
    counters (``counters``) and the aliases the query reads (``reads``)."""
    from headwater.functions import to_datetime, to_micros
    from headwater.pluginmanager import get_plugin_manager
    from headwater.services.processing.engine import OrderingPolicy, compile_query
    from headwater.services.processing.exec.base import Env

    references = references or {}
    if pm is None:
        extra = [("headwater-cli-udfs", udf_plugin(udfs))] if udfs else []
        pm = get_plugin_manager(extra)
    compiled = compile_query(query, pm, references=references.keys(),
                             inputs=list(inputs) if check_inputs else None)
    rt = compiled.runtime(OrderingPolicy.from_seconds(late, ooo, action), reference_data=references)
    now = int(time.time() * 1e6)
    merged: list[tuple[int, int, int, str, dict]] = []
    for order, (alias, events) in enumerate(inputs.items()):
        srcs = [s for s in rt.sources.get(alias.lower(), []) if s.ts_fn is not None]
        for i, ev in enumerate(events):
            ev = dict(ev)
            t = None
            if arrival_field is not None:
                raw = None
                for k in list(ev):
                    if k.lower() == arrival_field.lower():
                        raw = ev.pop(k)
                try:
                    t = to_micros(to_datetime(raw)) if raw is not None else None
                except ValueError:
                    t = None
            elif srcs:
                try:
                    t = to_micros(to_datetime(srcs[0].ts_fn(Env({srcs[0].alias: ev}, 0))))
                except Exception:  # noqa: BLE001 - the source counts the conversion error
                    t = None
            merged.append((now if t is None else t, order, i, alias, ev))
    if arrival_field is None:
        merged.sort(key=lambda m: (m[0], m[1], m[2]))
    # consecutive events of one input go in one batch
    batch: list[dict] = []
    arrivals: list[int] = []
    current = ""  # the input of the batch (when it has events)
    # A file is read as one partition, as a hub with one partition would give it: PartitionId 0
    # (a payload field of that name wins, as in a job).
    for t, _, _, alias, ev in merged:
        if alias != current and batch:
            rt.feed(current, batch, arrivals, partition_ids=[0] * len(batch))
            batch, arrivals = [], []
        current = alias
        batch.append(ev)
        arrivals.append(t)
    if batch:
        rt.feed(current, batch, arrivals, partition_ids=[0] * len(batch))
    rt.flush()
    out = rt.take()
    if stats is not None:
        stats["counters"] = rt.counters
        stats["reads"] = {a.lower() for a in compiled.plan.inputs + compiled.plan.references}
    return {name: out.get(name, []) for name in compiled.outputs}

