"""The book's replay example (section 7), on Headwater: read partition 0 from the
start ("-1"); offsets and datetimes work too.

Changed from the book: the import and the connection string.
"""

import os

from headwater.eventhub import EventHubConsumerClient  # was: azure.eventhub
from headwater.namespace import local_connection_string  # the namespace connection string

# $HEADWATER_CONNECTION_STRING, else the local stack (endpoints.json of `headwater up`).
CONNECTION_STR = str(local_connection_string())
EVENTHUB_NAME = os.environ.get("HEADWATER_EVENTHUB", "trips")


def on_event(partition_context, event):
    print(f"replayed {event.sequence_number}: {event.body_as_str()}", flush=True)


consumer_client = EventHubConsumerClient.from_connection_string(
    conn_str=CONNECTION_STR, consumer_group='$Default', eventhub_name=EVENTHUB_NAME)
with consumer_client:
    consumer_client.receive(on_event=on_event, partition_id="0",
                            starting_position="-1")  # "-1" is the start of the partition
