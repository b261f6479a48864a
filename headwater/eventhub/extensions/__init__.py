"""Checkpoint store modules under the azure-eventhub extension names, so that
``from azure.eventhub.extensions.checkpointstoreblobaio import BlobCheckpointStore``
ports by changing only the import: the store lives in the ingestion service."""
