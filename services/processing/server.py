"""The processing service: Stream Analytics jobs over the query engine."""

from __future__ import annotations

from headwater.auth import Right
from headwater.server import GrpcBinding, Service
from headwater.v1 import processing_pb2_grpc as pb_grpc
from headwater.services.processing.jobs import JobCatalog
from headwater.services.processing.servicer import ProcessingServicer

__all__ = ["SERVICE", "ProcessingService"]


class ProcessingService(Service):
    name = "processing"
    rights = {
        "GetJob": Right.LISTEN,
        "ListJobs": Right.LISTEN,
        "GetJobMetrics": Right.LISTEN,
        "ListAlertRules": Right.LISTEN,
        "ListAlerts": Right.LISTEN,
        "TestQuery": Right.LISTEN,
    }

    async def start(self) -> None:
        self.catalog = JobCatalog(self.config.data_path() / "jobs.json")
        self.servicer = ProcessingServicer(self.catalog)

    def bindings(self):
        return [GrpcBinding(pb_grpc.add_ProcessingServiceServicer_to_server, self.servicer,
                            "headwater.v1.ProcessingService")]


SERVICE = ProcessingService
