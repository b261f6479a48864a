"""The book's trips producer (section 1), on Headwater.

Changed from the book: the two imports and the connection string. Set
HEADWATER_CONNECTION_STRING (``headwater connection-string``) and
HEADWATER_EVENTHUB (default ``trips``); TRIPS is how many trips to send
("repeat in a loop as long as you need"; default 100).
"""

import asyncio
import datetime
import json
import os
import random
import uuid

from headwater.eventhub import EventData  # was: azure.eventhub
from headwater.eventhub.aio import EventHubProducerClient  # was: azure.eventhub.aio
from headwater.namespace import local_connection_string  # the namespace connection string

# $HEADWATER_CONNECTION_STRING, else the local stack (endpoints.json of `headwater up`).
CONNECTION_STR = str(local_connection_string())
EVENTHUB_NAME = os.environ.get("HEADWATER_EVENTHUB", "trips")


async def run():
    producer = EventHubProducerClient.from_connection_string(
        conn_str=CONNECTION_STR,
        eventhub_name=EVENTHUB_NAME)
    async with producer:
        for _ in range(int(os.environ.get("TRIPS", "100"))):
            eventDataBatch = await producer.create_batch()
            cityList = ["San Francisco", "San José", "Los Ángeles", "Seattle", "Portland"]
            tripDetail = {'tripId': str(uuid.uuid4()),
                          'timestamp': str(datetime.datetime.utcnow()),  # noqa: DTZ003 - the book's line
                          'startLocation': random.choice(cityList),
                          'endLocation': random.choice(cityList),
                          'distancia': random.randint(10, 1000),
                          'fare': random.randint(100, 1000)}
            eventDataBatch.add(EventData(json.dumps(tripDetail)))
            await producer.send_batch(eventDataBatch)  # the book forgets the await
    print("sent", flush=True)


if __name__ == "__main__":
    asyncio.run(run())
