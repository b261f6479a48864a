"""``BlobCheckpointStore`` (async) backed by the ingestion service's checkpoint store.

``BlobCheckpointStore.from_connection_string(conn_str, container_name)`` takes a
Headwater connection string; the container name is accepted and ignored.
"""

from headwater.eventhub.aio._client import ServiceCheckpointStore as BlobCheckpointStore

__all__ = ["BlobCheckpointStore"]
