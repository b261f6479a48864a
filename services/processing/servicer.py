"""ProcessingService: protobuf in, domain calls, protobuf out.

Job definitions and alert rules are managed here; running jobs comes with the
job runtime (jobs are created STOPPED).
"""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from headwater.errors import HeadwaterError, Reason
from headwater.secrets import redact_job, unmask_job
from headwater.services.processing.alerts import validate_rule
from headwater.services.processing.jobs import JobCatalog, job_id
from headwater.v1 import processing_pb2 as pb
from headwater.v1 import processing_pb2_grpc as pb_grpc

__all__ = ["ProcessingServicer"]


def _now() -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.GetCurrentTime()
    return ts


class ProcessingServicer(pb_grpc.ProcessingServiceServicer):
    def __init__(self, catalog: JobCatalog, manager) -> None:
        self.catalog = catalog
        self.manager = manager  # headwater.services.processing.manager.JobManager

    async def CreateJob(self, request: pb.CreateJobRequest, context) -> pb.CreateJobResponse:
        job = pb.Job()
        job.CopyFrom(request.job)
        job_id(job.name, "job.name")
        if not job.query.strip():
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "job.query is empty", metadata={"field": "job.query"})
        await self.manager.compile(job)  # QUERY_COMPILE_ERROR with line and column
        job.state = pb.JOB_STATE_STOPPED
        job.error = ""
        job.create_time.CopyFrom(_now())
        job.ClearField("start_time")
        return pb.CreateJobResponse(job=redact_job(self.catalog.create(job, request.request_id)))

    async def GetJob(self, request: pb.GetJobRequest, context) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=redact_job(self.catalog.get(request.name)))

    async def ListJobs(self, request: pb.ListJobsRequest, context) -> pb.ListJobsResponse:
        jobs = [self.catalog.jobs[k] for k in sorted(self.catalog.jobs)]
        page, nxt = self.catalog.page(jobs, request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=[redact_job(j) for j in page], next_page_token=nxt)

    async def UpdateJob(self, request: pb.UpdateJobRequest, context) -> pb.UpdateJobResponse:
        old = self.catalog.get(request.job.name)
        if old.state not in (pb.JOB_STATE_STOPPED, pb.JOB_STATE_FAILED):
            raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                 f"job {old.name!r} is {pb.JobState.Name(old.state)}: stop it before updating")
        job = pb.Job()
        job.CopyFrom(request.job)
        unmask_job(job, old)
        await self.manager.compile(job)
        job.state, job.error = old.state, old.error
        job.create_time.CopyFrom(old.create_time)
        return pb.UpdateJobResponse(job=redact_job(self.catalog.put(job)))

    async def DeleteJob(self, request: pb.DeleteJobRequest, context) -> pb.DeleteJobResponse:
        job = self.catalog.get(request.name)
        if job.state in (pb.JOB_STATE_RUNNING, pb.JOB_STATE_STARTING, pb.JOB_STATE_DEGRADED):
            raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                 f"job {job.name!r} is {pb.JobState.Name(job.state)}: stop it before deleting")
        self.catalog.delete(request.name)
        self.manager.forget(request.name)
        return pb.DeleteJobResponse()

    async def StartJob(self, request: pb.StartJobRequest, context) -> pb.StartJobResponse:
        start = request.start_time.ToDatetime(tzinfo=__import__("datetime").timezone.utc) \
            if request.HasField("start_time") else None
        if request.start_mode == pb.JOB_START_MODE_CUSTOM_TIME and start is None:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "start_mode CUSTOM_TIME needs start_time",
                                 metadata={"field": "start_time"})
        job = await self.manager.start(request.name, request.start_mode, start)
        return pb.StartJobResponse(job=redact_job(job))

    async def StopJob(self, request: pb.StopJobRequest, context) -> pb.StopJobResponse:
        return pb.StopJobResponse(job=redact_job(await self.manager.stop(request.name)))

    async def GetJobMetrics(self, request: pb.GetJobMetricsRequest, context) -> pb.GetJobMetricsResponse:
        self.catalog.get(request.name)
        return pb.GetJobMetricsResponse(metrics=self.manager.metrics(request.name) or pb.JobMetrics())

    async def TestQuery(self, request: pb.TestQueryRequest, context) -> pb.TestQueryResponse:
        return await self.manager.test_query(request)

    async def ListAlerts(self, request: pb.ListAlertsRequest, context) -> pb.ListAlertsResponse:
        self.catalog.get(request.parent)
        alerts = [a for a in self.manager.alerts.alerts if a.rule.startswith(request.parent + "/")]
        page, nxt = self.catalog.page(alerts, request.page_size, request.page_token)
        return pb.ListAlertsResponse(alerts=page, next_page_token=nxt)

    async def CreateAlertRule(self, request: pb.CreateAlertRuleRequest, context) -> pb.CreateAlertRuleResponse:
        validate_rule(request.rule)
        return pb.CreateAlertRuleResponse(rule=self.catalog.add_rule(request.parent, request.rule))

    async def ListAlertRules(self, request: pb.ListAlertRulesRequest, context) -> pb.ListAlertRulesResponse:
        self.catalog.get(request.parent)
        rules = [r for k, r in sorted(self.catalog.rules.items()) if k.startswith(request.parent + "/")]
        page, nxt = self.catalog.page(rules, request.page_size, request.page_token)
        return pb.ListAlertRulesResponse(rules=page, next_page_token=nxt)

    async def DeleteAlertRule(self, request: pb.DeleteAlertRuleRequest, context) -> pb.DeleteAlertRuleResponse:
        self.catalog.delete_rule(request.name)
        return pb.DeleteAlertRuleResponse()
