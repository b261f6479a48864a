"""The book's single-partition reader (section 10), on Headwater: only partition
"0", only events that arrive after it starts.

Changed from the book: the import and the connection string.
"""

import os

from headwater.eventhub import EventHubConsumerClient  # was: azure.eventhub
from headwater.namespace import local_connection_string  # the namespace connection string

# $HEADWATER_CONNECTION_STRING, else the local stack (endpoints.json of `headwater up`).
CONNECTION_STR = str(local_connection_string())
EVENTHUB_NAME = os.environ.get("HEADWATER_EVENTHUB", "trips")


def on_event(partition_context, event):
    print(f"partition {partition_context.partition_id}: {event.body_as_str()}", flush=True)


def on_partition_initialize(partition_context):
    print(f"reading partition {partition_context.partition_id}", flush=True)


client = EventHubConsumerClient.from_connection_string(
    CONNECTION_STR, consumer_group="$Default", eventhub_name=EVENTHUB_NAME)
with client:
    client.receive(on_event, partition_id='0', on_partition_initialize=on_partition_initialize)
