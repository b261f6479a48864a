"""``BlobCheckpointStore`` (sync) backed by the ingestion service's checkpoint store."""

from headwater.eventhub._sync import ServiceCheckpointStore as BlobCheckpointStore

__all__ = ["BlobCheckpointStore"]
