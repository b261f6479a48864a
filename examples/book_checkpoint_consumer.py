"""The book's checkpointing consumer (section 6), on Headwater.

Changed from the book: the two imports and the connection strings. The
checkpoint store lives in the ingestion service, so STORE_CONN_STRING is the
same Headwater connection string and the container name is ignored. Every
consumer started with this script shares the hub's partitions (load balancing)
and resumes from the checkpoints.
"""

import asyncio
import os

from headwater.eventhub.aio import EventHubConsumerClient  # was: azure.eventhub.aio

# was: from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
from headwater.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore
from headwater.namespace import local_connection_string  # the namespace connection string

# $HEADWATER_CONNECTION_STRING, else the local stack (endpoints.json of `headwater up`).
EVENTHUB_CONN_STRING = str(local_connection_string())
STORE_CONN_STRING = EVENTHUB_CONN_STRING
STORE_CONTAINER_NAME = "checkpoints"
CONSUMER_GROUP_NAME = os.environ.get("HEADWATER_CONSUMER_GROUP", "$Default")
EVENTHUB_NAME = os.environ.get("HEADWATER_EVENTHUB", "trips")


async def on_event(partition_context, event):
    # Process the event
    print(f"partition {partition_context.partition_id}: {event.body_as_str()}", flush=True)
    await partition_context.update_checkpoint(event)


async def main():
    storeChkPoint = BlobCheckpointStore.from_connection_string(STORE_CONN_STRING, STORE_CONTAINER_NAME)
    ehClient = EventHubConsumerClient.from_connection_string(
        EVENTHUB_CONN_STRING, CONSUMER_GROUP_NAME, eventhub_name=EVENTHUB_NAME,
        checkpoint_store=storeChkPoint)  # this balances partitions over consumers
    async with ehClient:
        await ehClient.receive(on_event, starting_position="-1")


if __name__ == "__main__":
    asyncio.run(main())
