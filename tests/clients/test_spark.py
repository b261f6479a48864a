"""headwater.spark with real pyspark in local mode against a real `headwater up` stack.

- the book's Spark windowed count (section 3) over a hub gives the same counts as the
  Headwater job running the book's query over the same events;
- a query restarted from its Spark checkpoint reads on without loss or duplicates, and
  maxEventsPerTrigger caps each micro-batch;
- the sink publishes a stream's rows to a hub.
One SparkSession for the module.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.wait import wait_until

pyspark = pytest.importorskip("pyspark", reason="pyspark not installed: pip install 'headwater[spark]' "
                                                 "(make setup does)")
# Spark's first micro-batch starts its Python workers: slow on a loaded 2-core machine.
pytestmark = [pytest.mark.xdist_group("clients"), pytest.mark.timeout(600)]

CITIES = ["San Francisco", "San José", "Los Ángeles", "Seattle"]


@pytest.fixture(scope="module")
def spark():
    import shutil

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime: pyspark needs Java 17 (apt-get install openjdk-17-jre-headless)")
    os.environ["PYSPARK_PYTHON"] = sys.executable  # workers import headwater from this venv
    from pyspark.sql import SparkSession

    from headwater.spark import register

    session = (SparkSession.builder.master("local[2]").appName("headwater-spark-test")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.session.timeZone", "UTC")
               # A short-lived JVM: the C1 compiler only (C2's optimising compiles pay off on
               # long runs, not in a test of a few micro-batches).
               .config("spark.driver.extraJavaOptions", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
               # Python workers connect back to the JVM: give them time on a loaded machine.
               .config("spark.python.authenticate.socketTimeout", "180s").getOrCreate())
    register(session)
    yield session
    session.stop()


def _publish(conn: str, hub: str, bodies: list[dict], partition_id: str | None = None) -> None:
    from headwater.channel import sync_channel
    from headwater.v1 import event_pb2, ingestion_pb2_grpc
    from headwater.v1 import ingestion_pb2 as ipb

    with sync_channel(conn) as ch:
        stub = ingestion_pb2_grpc.IngestionServiceStub(ch)
        for i in range(0, len(bodies), 500):
            stub.PublishEvents(ipb.PublishEventsRequest(
                hub=f"hubs/{hub}", partition_id=partition_id or "",
                events=[event_pb2.EventData(body=json.dumps(b).encode()) for b in bodies[i:i + 500]]), timeout=30)


def _trips(n: int, t0: datetime) -> list[dict]:
    # 20 per second, never on a window boundary (Spark's windows end exclusive, ASA's inclusive).
    return [{"tripId": f"t{i}", "createdAt": (t0 + timedelta(seconds=0.0137 + i * 0.05)).isoformat()
             .replace("+00:00", "Z"), "startLocation": CITIES[i % len(CITIES)], "fare": 10 + i % 90}
            for i in range(n)]


def _until_done(start):
    """``start()`` a query and process all available input, then stop it.

    Spark gives a Python worker a fixed 10 s to connect back to the JVM; on a 2-core machine
    shared by a whole test suite that can pass. The query then fails before reading
    anything and is started again from its checkpoint (what a restarted job does anyway).
    """
    from pyspark.errors import StreamingQueryException

    for attempt in range(6):
        q = start()
        try:
            q.processAllAvailable()
            return q
        except StreamingQueryException as exc:
            if "failed to connect back" not in str(exc) or attempt == 5:
                raise
        finally:
            q.stop()
    raise AssertionError("unreachable")


def _stream(spark, stack, hub, **options):
    reader = (spark.readStream.format("headwater").option("connectionString", stack.connection_string)
              .option("eventHubName", hub).option("consumerGroup", "$Default"))
    for key, value in options.items():
        reader = reader.option(key, value)
    return reader.load()


def test_book_spark_window_count_equals_the_headwater_job(spark, client_stack, tmp_path):
    from pyspark.sql.functions import col, from_json, window
    from pyspark.sql.types import IntegerType, StringType, StructType, TimestampType

    run = uuid.uuid4().hex[:8]
    hub, sink, job = f"spark-trips-{run}", f"spark-counts-{run}", f"spark-book-{run}"
    assert client_stack.cli("hub", "create", hub, "--partitions", "1").returncode == 0
    assert client_stack.cli("sink", "create", sink, "--kind", "memory").returncode == 0, \
        client_stack.cli("sink", "create", "--help").stdout
    query = tmp_path / "book.sql"
    query.write_text("SELECT System.Timestamp() AS WindowEnd, startLocation, COUNT(*) AS trips\n"
                     "INTO [Output] FROM [Input] TIMESTAMP BY createdAt\n"
                     "GROUP BY startLocation, TumblingWindow(second, 10)\n")
    made = client_stack.cli("job", "create", job, "--query", str(query), "--input", f"Input={hub}",
                            "--output", f"Output={sink}", "--start")
    assert made.returncode == 0, made.stderr
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now + timedelta(seconds=20 - now.second % 10)
    trips = _trips(600, t0)  # 30 s of event time: three windows
    _publish(client_stack.connection_string, hub, trips)
    # A last event far ahead closes every window for the job (and is left out below).
    closer = dict(trips[-1], tripId="closer", startLocation="Closer",
                  createdAt=(t0 + timedelta(seconds=120)).isoformat().replace("+00:00", "Z"))
    _publish(client_stack.connection_string, hub, [closer])

    # -- the book's Spark code (section 3), reading the hub through headwater.spark ----------
    EHStreamDF = _stream(spark, client_stack, hub, startingPosition="earliest")  # noqa: N806 - the book's names
    JsonSchema = StructType() \
        .add("tripId", StringType()) \
        .add("createdAt", TimestampType()) \
        .add("startLocation", StringType()) \
        .add("endLocation", StringType()) \
        .add("distance", IntegerType()) \
        .add("fare", IntegerType())  # noqa: N806
    stringDF = EHStreamDF.selectExpr("CAST(body AS STRING)")  # noqa: N806
    jsonDF = stringDF.withColumn('tripjson', from_json(col('body'), schema=JsonSchema))  # noqa: N806
    EHStreamJsonDF = jsonDF.select("tripjson.*")  # noqa: N806
    _until_done(lambda: EHStreamJsonDF.groupBy(window('createdAt', '10 seconds'), 'startLocation').count()
                .orderBy('window')
                .writeStream.format("memory")
                .outputMode("complete")
                .option("truncate", "false")
                .option("checkpointLocation", str(tmp_path / "tripsCheckpointLocation"))
                .queryName(f"TripsTumblingQuery_{run}").start())
    spark_counts = {(r["window"]["end"].replace(tzinfo=UTC), r["startLocation"]): r["count"]
                    for r in spark.sql(f"SELECT * FROM TripsTumblingQuery_{run}").collect()
                    if r["startLocation"] != "Closer"}
    assert sum(spark_counts.values()) == len(trips)

    def counts() -> collections.Counter:
        job_counts: collections.Counter = collections.Counter()
        for line in client_stack.cli("table", "show", sink, "--format", "json").stdout.splitlines():
            r = json.loads(line)
            end = datetime.fromisoformat(str(r["WindowEnd"]).replace("Z", "+00:00")).astimezone(UTC)
            if r["startLocation"] != "Closer":
                job_counts[(end.replace(tzinfo=UTC), r["startLocation"])] += r["trips"]
        return job_counts

    job_counts = wait_until(counts, lambda c: sum(c.values()) >= len(trips), timeout=60, every=0.5, fail=False)
    assert dict(job_counts) == spark_counts
    client_stack.cli("job", "stop", job)


def test_restart_from_the_spark_checkpoint_reads_on_without_loss_or_duplicates(spark, client_stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    hub = f"spark-restart-{run}"
    assert client_stack.cli("hub", "create", hub, "--partitions", "2").returncode == 0
    conn = client_stack.connection_string
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    first, second = _trips(300, t0)[:200], _trips(300, t0)[200:]
    _publish(conn, hub, first[:100], "0")
    _publish(conn, hub, first[100:], "1")
    checkpoint = tmp_path / "cp"
    rows: list = []

    def run_query(max_events: int) -> None:
        df = _stream(spark, client_stack, hub, startingPosition="earliest", maxEventsPerTrigger=max_events)
        q = _until_done(lambda: df.selectExpr("CAST(body AS STRING) AS body", "partition", "sequenceNumber")
                        .writeStream.foreachBatch(lambda batch, _id: rows.extend(batch.collect()))
                        .option("checkpointLocation", str(checkpoint)).start())
        progress = [p["numInputRows"] for p in q.recentProgress if p["numInputRows"]]
        assert progress and max(progress) <= max_events, progress

    run_query(max_events=120)  # 200 events: at least two micro-batches of at most 120
    _publish(conn, hub, second[:50], "0")
    _publish(conn, hub, second[50:], "1")
    run_query(max_events=1000)  # restarted from the checkpoint: only the 100 new events
    ids = sorted(json.loads(r["body"])["tripId"] for r in rows)
    assert ids == sorted(t["tripId"] for t in first + second)  # no loss, no duplicates
    seqs = collections.defaultdict(list)
    for r in rows:
        seqs[r["partition"]].append(r["sequenceNumber"])
    assert {p: sorted(s) for p, s in seqs.items()} == {"0": list(range(150)), "1": list(range(150))}


def test_sink_publishes_rows_to_a_hub(spark, client_stack, tmp_path):
    run = uuid.uuid4().hex[:8]
    source, target = f"spark-src-{run}", f"spark-dst-{run}"
    for hub in (source, target):
        assert client_stack.cli("hub", "create", hub, "--partitions", "1").returncode == 0
    _publish(client_stack.connection_string, source, _trips(50, datetime(2026, 1, 1, tzinfo=UTC)))
    df = _stream(spark, client_stack, source, startingPosition="earliest")
    _until_done(lambda: df.selectExpr("CAST(body AS STRING) AS body",
                                      "get_json_object(CAST(body AS STRING), '$.startLocation') AS partitionKey",
                                      "map('copied', 'yes') AS properties")
                .writeStream.format("headwater").option("connectionString", client_stack.connection_string)
                .option("eventHubName", target).option("checkpointLocation", str(tmp_path / "cp")).start())
    read = client_stack.cli("read", target, "--from", "earliest", "--count", "50")
    events = [json.loads(line) for line in read.stdout.splitlines() if line.strip()]
    assert sorted(e["body"]["tripId"] for e in events) == sorted(f"t{i}" for i in range(50))
    assert all(e["properties"] == {"copied": "yes"} for e in events)


def test_bad_options_are_refused_clearly(spark, client_stack):
    with pytest.raises(Exception, match="eventHubName"):
        spark.readStream.format("headwater").option("connectionString", client_stack.connection_string).load() \
            .writeStream.format("memory").queryName("never").start().processAllAvailable()
