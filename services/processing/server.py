"""The processing service: Stream Analytics jobs over the query engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client.registry import REGISTRY

from headwater.auth import Right
from headwater.config import ServiceConfig
from headwater.server import GrpcBinding, Service
from headwater.services.processing.config import ProcessingConfig
from headwater.services.processing.jobs import JobCatalog
from headwater.services.processing.launcher import fork_template
from headwater.services.processing.manager import JobManager
from headwater.services.processing.metrics import register as register_job_metrics
from headwater.services.processing.servicer import ProcessingServicer
from headwater.storage import sweep_temporaries
from headwater.v1 import processing_pb2_grpc as pb_grpc

__all__ = ["SERVICE", "ProcessingService", "catalog_for"]


def catalog_for(config: ProcessingConfig) -> JobCatalog:
    """The replica's own ``<data_dir>/jobs.json``; in scale-out with a shared
    ``checkpoint_dir``, the one ``<checkpoint_dir>/jobs.json`` every replica shares."""
    if config.scale_out and config.checkpoint_dir:
        return JobCatalog(Path(config.checkpoint_dir) / "jobs.json", shared=True)
    return JobCatalog(config.data_path() / "jobs.json")


class ProcessingService(Service):
    name = "processing"
    config_class = ProcessingConfig
    config: ProcessingConfig
    #: Largest request accepted (TestQuery carries sample inputs); setting max_receive_message_bytes overrides it.
    default_max_receive_bytes = 16 * 1024 * 1024
    rights = {
        "GetJob": Right.LISTEN,
        "ListJobs": Right.LISTEN,
        "GetJobMetrics": Right.LISTEN,
        "ListAlertRules": Right.LISTEN,
        "ListAlerts": Right.LISTEN,
        "ListEventVerdicts": Right.LISTEN,
        "TestQuery": Right.LISTEN,
    }

    @classmethod
    def prepare_process(cls, config: ServiceConfig) -> None:
        assert isinstance(config, ProcessingConfig)
        if config.worker_template:  # the query and job workers fork from it (launcher.py)
            fork_template()

    async def start(self) -> None:
        if self.config.checkpoint_dir:  # outside the data folder (swept by the base): its writes' leftovers
            await asyncio.to_thread(sweep_temporaries, self.config.checkpoint_dir)
        self.catalog = catalog_for(self.config)
        self.manager = JobManager(self.config, self.catalog)
        self.servicer = ProcessingServicer(self.catalog, self.manager)
        self._collector = register_job_metrics(self.manager)

    async def started(self, running) -> None:
        # Jobs that were running resume in the background: the port is already serving.
        self._opening = asyncio.create_task(self.manager.open())

    async def stop(self) -> None:
        await asyncio.gather(self._opening, return_exceptions=True)
        await self.manager.close()
        await asyncio.to_thread(self.catalog.close)  # job states written behind reach jobs.json
        REGISTRY.unregister(self._collector)

    def bindings(self):
        return [GrpcBinding(pb_grpc.add_ProcessingServiceServicer_to_server, self.servicer,
                            "headwater.v1.ProcessingService")]


SERVICE = ProcessingService
