"""``headwater perf registry``: registry calls per second (client cache off and on) and
Avro encode/decode events per second.

Starts its own registry process on a free port with a temporary data folder
unless ``--registry``/``--connection-string`` names a running one. Each
measurement runs ``--seconds`` (default 1). With ``--json`` the last line is one
JSON object: ``events_per_s`` is Avro decode through the serializer plugin (the
query engine's input path), ``peak_rss_mb`` this process's peak RSS, plus one
key per measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["add_perf_commands", "run"]

SCHEMA = json.dumps({
    "type": "record", "name": "Trip", "namespace": "perf",
    "fields": [{"name": "tripId", "type": "string"}, {"name": "startLocation", "type": "string"},
               {"name": "endLocation", "type": "string"}, {"name": "fare", "type": "double"},
               {"name": "passengers", "type": "int"}, {"name": "createdAt", "type": "long"}],
})


def _event(i: int) -> dict[str, Any]:
    return {"tripId": f"trip-{i:08d}", "startLocation": "San Francisco", "endLocation": "Oakland",
            "fare": 10.0 + i % 50, "passengers": 1 + i % 4, "createdAt": 1_700_000_000_000 + i}


def _measure(seconds: float, fn: Callable[[], Any], batch: int = 1) -> dict[str, float]:
    """Call ``fn`` (which does ``batch`` operations) for ``seconds``; ops/s and per-call latency."""
    lat: list[float] = []
    done = 0
    end = time.perf_counter() + seconds
    t_start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        done += batch
        if t1 >= end:
            break
    elapsed = time.perf_counter() - t_start
    lat.sort()
    return {"per_s": done / elapsed, "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, "calls": len(lat)}


@contextlib.contextmanager
def _registry(args: argparse.Namespace) -> Iterator[tuple[Any, Any]]:
    """(client factory, process or None)."""
    from headwater.schemaregistry import DefaultAzureCredential, SchemaRegistryClient

    if args.connection_string:
        yield (lambda cache: SchemaRegistryClient.from_connection_string(args.connection_string, cache=cache)), None
        return
    if args.registry:
        cred = DefaultAzureCredential()
        yield (lambda cache: SchemaRegistryClient(args.registry, cred, cache=cache)), None
        return
    from headwater.auth import PolicyStore
    from headwater.procs import ServiceProcess, headwater_cmd
    from headwater.schemaregistry import SharedAccessKeyCredential

    with tempfile.TemporaryDirectory(prefix="hw-perf-registry-") as tmp:
        home = os.environ.get("HEADWATER_HOME") or os.path.join(tmp, "home")  # this process's env is left alone
        proc = ServiceProcess("registry", [*headwater_cmd(), "serve", "registry", "--port", "0",
                                           "--metrics-port", "-1", "--data-dir", os.path.join(tmp, "data")],
                              env={"HEADWATER_HOME": home, "HEADWATER_LOG_LEVEL": "WARNING"})
        proc.start()
        try:
            root = PolicyStore(os.path.join(home, "auth.json")).ensure().root()
            root_cred = SharedAccessKeyCredential(root.name, root.key)
            yield (lambda cache: SchemaRegistryClient(proc.address, root_cred, cache=cache)), proc
        finally:
            proc.terminate(5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from headwater.errors import HeadwaterError, Reason
    from headwater.pluginmanager import get_plugin_manager
    from headwater.schemaregistry.avroencoder import AvroEncoder

    secs = args.seconds
    result: dict[str, Any] = {}
    with _registry(args) as (make_client, _proc):
        cold, warm = make_client(False), make_client(True)
        group = f"perf-{os.getpid()}"
        props = cold.register_schema(group, "perf.Trip", SCHEMA, "Avro")
        for label, client in (("cache_off", cold), ("cache_on", warm)):
            def register(c: Any = client) -> Any:
                return c.register_schema(group, "perf.Trip", SCHEMA, "Avro")

            def lookup(c: Any = client) -> Any:
                return c.get_schema(props.id)

            r = _measure(secs, register)
            result[f"register_{label}_per_s"], result[f"register_{label}_p50_ms"] = r["per_s"], r["p50_ms"]
            result[f"register_{label}_p99_ms"] = r["p99_ms"]
            r = _measure(secs, lookup)
            result[f"lookup_{label}_per_s"], result[f"lookup_{label}_p50_ms"] = r["per_s"], r["p50_ms"]
            result[f"lookup_{label}_p99_ms"] = r["p99_ms"]
        counter = iter(range(10**9))
        r = _measure(secs, lambda: cold.register_schema(group, f"perf.New{next(counter)}", SCHEMA, "Avro"))
        result["register_new_schema_per_s"] = r["per_s"]

        encoder = AvroEncoder(client=warm, group_name=group, auto_register=True)
        batch = [_event(i) for i in range(args.batch)]
        encoded: list[dict[str, Any]] = []

        def encode() -> None:
            encoded[:] = [encoder.encode(e, schema=SCHEMA) for e in batch]

        r = _measure(secs, encode, batch=len(batch))
        result["avro_encode_events_per_s"] = r["per_s"]
        body_bytes = sum(len(m["content"]) for m in encoded)
        result["avro_encode_mb_per_s"] = r["per_s"] * body_bytes / len(batch) / 1e6
        r = _measure(secs, lambda: [encoder.decode(m) for m in encoded], batch=len(batch))
        result["avro_decode_encoder_events_per_s"] = r["per_s"]

        avro = get_plugin_manager().collect().serializers.get("avro")
        if avro is None:
            raise HeadwaterError(Reason.RESOURCE_NOT_FOUND, "the avro serializer plugin is not installed (headwater[server])")
        serializer = avro.configured(warm)
        bodies = [m["content"] for m in encoded]
        types = [m["content_type"] for m in encoded]
        r = _measure(secs, lambda: serializer.decode(bodies, types), batch=len(batch))
        result["avro_decode_plugin_events_per_s"] = r["per_s"]
        result["events_per_s"] = r["per_s"]
        result["mb_per_s"] = r["per_s"] * body_bytes / len(batch) / 1e6
        result["p50_ms"], result["p99_ms"] = r["p50_ms"], r["p99_ms"]
        result["batch"] = len(batch)
        for c in (cold, warm):
            c.close()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def _main(args: argparse.Namespace) -> int:
    r = run(args)
    print("registry calls/s (client cache off -> on):")
    print(f"  register (known schema)  {r['register_cache_off_per_s']:>10,.0f} -> {r['register_cache_on_per_s']:>12,.0f}"
          f"   p50 {r['register_cache_off_p50_ms']:.2f} ms uncached")
    print(f"  get_schema by id         {r['lookup_cache_off_per_s']:>10,.0f} -> {r['lookup_cache_on_per_s']:>12,.0f}"
          f"   p50 {r['lookup_cache_off_p50_ms']:.2f} ms uncached")
    print(f"  register (new schema)    {r['register_new_schema_per_s']:>10,.0f}")
    print(f"avro events/s (batch {r['batch']}):")
    print(f"  AvroEncoder.encode       {r['avro_encode_events_per_s']:>10,.0f}   ({r['avro_encode_mb_per_s']:.1f} MB/s)")
    print(f"  AvroEncoder.decode       {r['avro_decode_encoder_events_per_s']:>10,.0f}")
    print(f"  serializer plugin decode {r['avro_decode_plugin_events_per_s']:>10,.0f}   ({r['mb_per_s']:.1f} MB/s)")
    print(f"peak RSS {r['peak_rss_mb']:.0f} MB")
    if args.json:
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in r.items()}))
    return 0


def add_perf_commands(perf_subparsers: argparse._SubParsersAction[Any]) -> None:
    p = perf_subparsers.add_parser(
        "registry", help="registry calls/s (cache off and on) and Avro encode/decode events/s",
        description=__doc__.split("\n\n")[0])
    p.add_argument("--registry", metavar="HOST:PORT", help="a running registry (default: start one)")
    p.add_argument("--connection-string", help="a running registry's connection string")
    p.add_argument("--seconds", type=float, default=1.0, help="length of each measurement (default 1)")
    p.add_argument("--batch", type=int, default=2000, help="events per encode/decode batch (default 2000)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.set_defaults(func=_main)
