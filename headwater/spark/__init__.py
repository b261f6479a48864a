"""Spark Structured Streaming over Headwater hubs: ``format("headwater")`` source and sink.

A Python data source (pyspark 4's Data Source API, no JVM jar) in the shape of the
azure-event-hubs-spark connector::

    from headwater.spark import register

    register(spark)
    df = (spark.readStream.format("headwater")
          .option("connectionString", conn_str)      # the namespace connection string
          .option("eventHubName", "trips")
          .option("consumerGroup", "$Default")
          .load())

Columns: ``body`` (binary), ``partition``, ``offset`` (strings), ``sequenceNumber``
(long), ``enqueuedTime`` (timestamp), ``publisher``, ``partitionKey`` (strings),
``properties`` (map<string,string>), as the connector has them.

Options of the source: ``startingPosition`` (``latest``, the default as in the connector;
``earliest``; or JSON per partition, ``{"0": {"sequenceNumber": 5}, "1": "earliest"}``),
used only when the query has no checkpoint; ``maxEventsPerTrigger`` (events per
micro-batch over all partitions, shared by backlog); ``maxBatchSize`` (events per
ReadEvents response, default 5000). Offsets are ``{partition: next sequence number}`` in
Spark's checkpoint, so a restarted query reads on without loss or duplicates.

The sink (``writeStream.format("headwater")``) publishes each row to ``eventHubName``: a
``body`` column (string or binary) and optionally ``partitionKey`` (string) and
``properties`` (map<string,string>); rows are sent in batches per partition key. Delivery
is at least once: Spark re-runs a failed micro-batch, whose rows are then sent again.

Workers run Python too: they must import ``headwater`` (set ``PYSPARK_PYTHON`` to the
interpreter that has it when Spark would pick another).
"""

from __future__ import annotations

from headwater.spark.source import (
    SCHEMA,
    HeadwaterDataSource,
    HeadwaterStreamReader,
    HeadwaterStreamWriter,
    register,
)

__all__ = ["SCHEMA", "HeadwaterDataSource", "HeadwaterStreamReader", "HeadwaterStreamWriter", "register"]
