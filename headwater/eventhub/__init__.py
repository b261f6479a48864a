"""The Event Hubs SDK for Headwater, shaped like ``azure.eventhub``.

Code written for Azure Event Hubs ports by changing the import and the
connection string::

    from headwater.eventhub import EventHubProducerClient, EventData

    producer = EventHubProducerClient.from_connection_string(
        "Endpoint=headwater://localhost:50051/;SharedAccessKeyName=...;SharedAccessKey=...",
        eventhub_name="trips")
    with producer:
        batch = producer.create_batch()
        batch.add(EventData('{"tripId": "1"}'))
        producer.send_batch(batch)

``headwater.eventhub.aio`` has the same classes for asyncio. Failures raise
:class:`~headwater.errors.HeadwaterError` (also exported as ``EventHubError``)
with ``.reason`` and ``.is_transient``; transient ones are retried first.
"""

from __future__ import annotations

from headwater.errors import HeadwaterError, Reason
from headwater.eventhub._common import EventData, EventDataBatch
from headwater.eventhub._sync import (
    EventHubConsumerClient,
    EventHubProducerClient,
    PartitionContext,
    ServiceCheckpointStore,
)

EventHubError = HeadwaterError

__all__ = ["EventData", "EventDataBatch", "EventHubConsumerClient", "EventHubError", "EventHubProducerClient",
           "PartitionContext", "Reason", "ServiceCheckpointStore"]
