"""Helpers for the processing service's job tests: real services, gRPC calls, sink tables."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid

import orjson
import pyarrow as pa
from google.protobuf import struct_pb2

from headwater.channel import sync_channel
from headwater.errors import HeadwaterError
from tests.conftest import conn_for
from tests.wait import wait_until

PG_DSN = "postgresql://postgres@127.0.0.1:5432/test"
#: A role with SELECT only (no superuser, no server-file roles): what a reference input's
#: dsn must connect as. ``pg_reader()`` creates it; tables the tests create as postgres in
#: public are readable by it.
PG_READER = "headwater_reader"
PG_READER_DSN = f"postgresql://{PG_READER}@127.0.0.1:5432/test"


def pg_reader(*tables: str) -> str:
    """PG_READER_DSN, its role created if missing (trust auth on this machine's PostgreSQL),
    with SELECT on ``tables`` (and on tables created after this in public)."""
    import psycopg

    with psycopg.connect(PG_DSN) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(7046)")  # one xdist worker at a time
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (PG_READER,)).fetchone() is None:
            conn.execute(f"CREATE ROLE {PG_READER} LOGIN NOSUPERUSER")
        conn.execute(f"ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public GRANT SELECT ON TABLES TO {PG_READER}")
        for table in tables:
            conn.execute(f'GRANT SELECT ON public."{table}" TO {PG_READER}')
    return PG_READER_DSN


class Pipeline:
    """An ingestion, a sink and a processing service as real processes, and sync stubs to them."""

    def __init__(self, service_process, root_policy, tmp_path, checkpoint_s: float = 0.3,
                 extra_env: dict[str, str] | None = None) -> None:
        self.sp, self.policy, self.tmp = service_process, root_policy, tmp_path
        self.ingestion = service_process("ingestion", "--data-dir", str(tmp_path / "ing"))
        # The sink knows the namespace's ingestion, for `hub` sinks (job chains).
        self.sink_env = {"HEADWATER_SINK_INGESTION_ADDRESS": self.ingestion.address}
        self.sink = service_process("sink", "--data-dir", str(tmp_path / "sink"), env=self.sink_env)
        self.sink_port = self.sink.address.rsplit(":", 1)[1]
        self.env = {"HEADWATER_PROCESSING_INGESTION_ADDRESS": self.ingestion.address,
                    "HEADWATER_PROCESSING_SINK_ADDRESS": self.sink.address,
                    "HEADWATER_PROCESSING_CHECKPOINT_INTERVAL_S": str(checkpoint_s),
                    "HEADWATER_PROCESSING_ALERT_SAMPLE_INTERVAL_S": "0.25", **(extra_env or {})}
        self.processing = None
        self.start_processing()

    # -- processes -----------------------------------------------------------------
    def start_processing(self):
        self.processing = self.sp("processing", "--data-dir", str(self.tmp / "proc"), env=self.env)
        return self.processing

    def restart_ingestion(self):
        """The ingestion service again on the same data dir and port."""
        port = self.ingestion.address.rsplit(":", 1)[1]
        self.ingestion = self.sp("ingestion", "--data-dir", str(self.tmp / "ing"), "--port", port)
        return self.ingestion

    def restart_sink(self):
        """The sink again on the same data dir and the same port (the processing service's address)."""
        self.sink = self.sp("sink", "--data-dir", str(self.tmp / "sink"), "--port", self.sink_port,
                            env=self.sink_env)
        return self.sink

    # -- stubs -----------------------------------------------------------------------
    def _stub(self, address, module, cls):
        ch = sync_channel(conn_for(address, self.policy))
        return ch, getattr(module, cls)(ch)

    def call(self, service: str, method: str, request):
        """One unary call; a failure comes back as the typed HeadwaterError."""
        import grpc

        from headwater.v1 import ingestion_pb2_grpc, processing_pb2_grpc, sink_pb2_grpc

        address, module, cls = {
            "ingestion": (self.ingestion.address, ingestion_pb2_grpc, "IngestionServiceStub"),
            "sink": (self.sink.address, sink_pb2_grpc, "SinkServiceStub"),
            "processing": (self.processing.address, processing_pb2_grpc, "ProcessingServiceStub"),
        }[service]
        ch, stub = self._stub(address, module, cls)
        try:
            return getattr(stub, method)(request, timeout=30)
        except grpc.RpcError as exc:
            raise HeadwaterError.from_rpc_error(exc) from None
        finally:
            ch.close()

    # -- resources -------------------------------------------------------------------
    def create_hub(self, hub: str, partitions: int = 2) -> None:
        from headwater.v1 import ingestion_pb2 as ipb

        self.call("ingestion", "CreateHub", ipb.CreateHubRequest(hub_id=hub, hub=ipb.Hub(partition_count=partitions)))

    def create_sink(self, sink: str, kind: str = "memory", config: dict | None = None, **fields) -> None:
        from headwater.v1 import sink_pb2 as spb

        cfg = struct_pb2.Struct()
        cfg.update(config or {})
        self.call("sink", "CreateSink", spb.CreateSinkRequest(sink_id=sink, sink=spb.Sink(kind=kind, config=cfg,
                                                                                         **fields)))

    def create_job(self, name: str, query: str, inputs: dict[str, str], outputs: dict[str, str], **fields):
        """``inputs`` alias -> hub, ``outputs`` alias -> sink."""
        from headwater.v1 import processing_pb2 as ppb

        job = ppb.Job(name=f"jobs/{name}", query=query,
                      inputs=[ppb.JobInput(alias=a, kind=ppb.INPUT_KIND_STREAM, hub=f"hubs/{h}", format="json")
                              for a, h in inputs.items()],
                      outputs=[ppb.JobOutput(alias=a, sink=f"sinks/{s}") for a, s in outputs.items()], **fields)
        return self.call("processing", "CreateJob", ppb.CreateJobRequest(job=job)).job

    def start_job(self, name: str, mode=None):
        from headwater.v1 import processing_pb2 as ppb

        mode = ppb.JOB_START_MODE_NOW if mode is None else mode
        return self.call("processing", "StartJob", ppb.StartJobRequest(name=f"jobs/{name}", start_mode=mode)).job

    def stop_job(self, name: str):
        from headwater.v1 import processing_pb2 as ppb

        return self.call("processing", "StopJob", ppb.StopJobRequest(name=f"jobs/{name}")).job

    def get_job(self, name: str):
        from headwater.v1 import processing_pb2 as ppb

        return self.call("processing", "GetJob", ppb.GetJobRequest(name=f"jobs/{name}")).job

    def metrics(self, name: str):
        from headwater.v1 import processing_pb2 as ppb

        return self.call("processing", "GetJobMetrics", ppb.GetJobMetricsRequest(name=f"jobs/{name}")).metrics

    def wait_job(self, name: str, predicate, timeout: float = 20.0, what: str = "condition"):
        """Poll GetJob until ``predicate(job)``; the last job otherwise in the failure."""
        return wait_until(lambda: self.get_job(name), predicate, timeout=timeout, every=0.2,
                          what=f"job {name}: {what}")

    def wait_metrics(self, name: str, predicate, timeout: float = 30.0, what: str = "metrics condition"):
        """Poll GetJobMetrics until ``predicate(metrics)``; the last metrics otherwise in the failure."""
        return wait_until(lambda: self.metrics(name), predicate, timeout=timeout, what=f"job {name}: {what}")

    def wait_checkpoints(self, name: str, n: int = 2, timeout: float = 30.0):
        """Wait until the job has taken ``n`` more checkpoints (JobMetrics.last_checkpoint_id).

        An epoch's rows are written before its checkpoint commits, so once two more checkpoints
        are in, everything the job had read by now is in the sinks: a duplicate or a late row
        would show. Returns the metrics."""
        start = wait_until(lambda: self.metrics(name), lambda m: m.last_checkpoint_id > 0, timeout=timeout,
                           what=f"job {name}: a first checkpoint").last_checkpoint_id
        return self.wait_metrics(name, lambda m: m.last_checkpoint_id >= start + n, timeout,
                                 what=f"{n} checkpoints after {start}")

    def wait_held(self, name: str, timeout: float = 30.0):
        """For a job whose sink is down: wait until a write has failed and is being retried
        (JobMetrics.output_retries grew), i.e. the job holds an epoch. Returns the metrics."""
        base = wait_until(lambda: self.metrics(name), timeout=timeout, what=f"job {name}: metrics").output_retries
        return self.wait_metrics(name, lambda m: m.output_retries > base, timeout,
                                 what="an output held (a write retried)")

    def wait_read(self, name: str, more: int, timeout: float = 30.0):
        """Wait until the job has read ``more`` input events beyond what it has read now (a job
        that is mid-stream: reading and checkpointing). Returns the metrics."""
        base = wait_until(lambda: self.metrics(name), timeout=timeout, what=f"job {name}: metrics").input_events
        return self.wait_metrics(name, lambda m: m.input_events >= base + more, timeout,
                                 what=f"{more} input events after {base}")

    def wait_settled(self, name: str, window_s: float = 0.0, timeout: float = 30.0):
        """Wait until what the job has read by now is final in its sinks: every input's absolute
        watermark (JobMetrics.input_watermarks; an idle input's follows the service's clock) is
        past now + ``window_s`` (so the windows open now have closed), then two more checkpoints
        (an epoch's rows are written before it commits). A duplicate or a late row would show
        after this. Returns the metrics."""
        target_us = int((time.time() + window_s) * 1e6)
        self.wait_metrics(name, lambda m: len(m.input_watermarks) > 0 and all(
            w.watermark.ToMicroseconds() >= target_us for w in m.input_watermarks), timeout,
            what=f"every input's watermark past now + {window_s}s")
        return self.wait_checkpoints(name, 2, timeout)

    def publish(self, hub: str, events: list[dict]) -> None:
        from headwater.v1 import event_pb2
        from headwater.v1 import ingestion_pb2 as ipb

        for i in range(0, len(events), 500):
            self.call("ingestion", "PublishEvents", ipb.PublishEventsRequest(
                hub=f"hubs/{hub}", events=[event_pb2.EventData(body=orjson.dumps(e), content_type="application/json")
                                           for e in events[i:i + 500]]))

    def read_table(self, sink: str) -> list[dict]:
        from headwater.v1 import event_pb2
        from headwater.v1 import sink_pb2 as spb

        rows, token = [], ""
        while True:
            resp = self.call("sink", "ReadTable", spb.ReadTableRequest(name=f"sinks/{sink}", page_size=10000,
                                                                        page_token=token))
            if resp.batch.format == event_pb2.RECORD_BATCH_FORMAT_JSON_LINES:
                rows += [json.loads(line) for line in resp.batch.data.splitlines() if line.strip()]
            elif resp.batch.data:
                rows += pa.ipc.open_stream(resp.batch.data).read_all().to_pylist()
            token = resp.next_page_token
            if not token:
                return rows

    def wait_rows(self, read, enough, timeout: float = 20.0):
        """Poll ``read()`` until ``enough(rows)``; returns the last rows either way."""
        return wait_until(read, enough, timeout=timeout, every=0.3, fail=False)


class Publisher:
    """A steady stream of trips with unique tripIds, published from a thread.

    A publish that fails (the service answers an error) is retried with the same
    events: these tests only kill the processing and sink services, so every
    acknowledged event must come out exactly once."""

    def __init__(self, pipe: Pipeline, hub: str, per_batch: int = 20, interval_s: float = 0.05) -> None:
        self.pipe, self.hub, self.per_batch, self.interval = pipe, hub, per_batch, interval_s
        self.sent: list[str] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        try:
            while not self._stop.is_set():
                batch = [{"tripId": f"t{n + i:07d}", "fare": 1.5} for i in range(self.per_batch)]
                for attempt in range(20):
                    try:
                        self.pipe.publish(self.hub, batch)
                        break
                    except HeadwaterError as exc:
                        # Never connected (a loaded machine): nothing was stored, so the same
                        # events go again. Any other failure ends the run (reported by stop()).
                        if "failed to connect" not in exc.message or attempt == 19:
                            raise
                        self._stop.wait(0.2)  # backoff before the same events go again
                n += self.per_batch
                self.sent.extend(e["tripId"] for e in batch)
                self._stop.wait(self.interval)  # the stream's pace (a rate, not a synchronisation)
        except BaseException as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc

    def __enter__(self):
        self._thread.start()
        return self

    def wait_sent(self, more: int, timeout: float = 30.0) -> None:
        """Wait until ``more`` events beyond those sent by now are acknowledged."""
        base = len(self.sent)
        wait_until(lambda: len(self.sent), lambda n: n >= base + more or self.error is not None, timeout=timeout,
                   what=f"{more} more events published")
        if self.error is not None:
            raise AssertionError(f"publishing stopped early: {self.error}")

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(30)
        if self.error is not None:
            raise AssertionError(f"publishing stopped early: {self.error}")
        assert len(self.sent) >= self.per_batch, "nothing was published"
        return list(self.sent)

    def __exit__(self, *exc) -> None:
        self.stop()


def pg_table() -> str:
    return f"proc_{uuid.uuid4().hex[:12]}"


def pg_rows(table: str, column: str = "tripid") -> list:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        try:
            return [r[0] for r in conn.execute(f'SELECT "{column}" FROM public."{table}"').fetchall()]
        except psycopg.errors.UndefinedTable:
            return []


def pg_drop(table: str) -> None:
    import psycopg

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS public."{table}"')


def run(coro):
    return asyncio.run(coro)
