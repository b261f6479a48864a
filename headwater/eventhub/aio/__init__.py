"""The async SDK, shaped like ``azure.eventhub.aio``."""

from __future__ import annotations

from headwater.eventhub._common import EventData, EventDataBatch
from headwater.eventhub.aio._client import (
    CheckpointStore,
    EventHubConsumerClient,
    EventHubProducerClient,
    InMemoryCheckpointStore,
    PartitionContext,
    ServiceCheckpointStore,
)

__all__ = ["CheckpointStore", "EventData", "EventDataBatch", "EventHubConsumerClient", "EventHubProducerClient",
           "InMemoryCheckpointStore", "PartitionContext", "ServiceCheckpointStore"]
