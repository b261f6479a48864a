"""ProcessingService: protobuf in, domain calls, protobuf out.

Job definitions and alert rules are managed here; running jobs comes with the
job runtime (jobs are created STOPPED).
"""

from __future__ import annotations

import asyncio
import functools

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



def _shown(job: pb.Job) -> pb.Job:
    """A job as responses show it: connection strings masked, and its hubs and sinks named
    one way, ``hubs/{hub}`` and ``sinks/{sink}`` (a request may give the bare ids)."""
    shown = redact_job(job)
    for inp in shown.inputs:
        if inp.hub and not inp.hub.startswith("hubs/"):
            inp.hub = f"hubs/{inp.hub}"
    for out in shown.outputs:
        if out.sink and not out.sink.startswith("sinks/"):
            out.sink = f"sinks/{out.sink}"
    return shown

_VERDICTS = {"on_time": pb.EVENT_VERDICT_KIND_ON_TIME, "adjusted": pb.EVENT_VERDICT_KIND_ADJUSTED,
             "dropped": pb.EVENT_VERDICT_KIND_DROPPED}


def _jobs_by_id(request) -> None:
    """A bare job id in a request (``name``, ``parent``, ``job.name``) -> ``jobs/{job}``."""
    fields = request.DESCRIPTOR.fields_by_name
    for msg, field in ((request, "name"), (request, "parent"),
                       (request.job if "job" in fields else None, "name")):
        if msg is not None and field in msg.DESCRIPTOR.fields_by_name:
            value = getattr(msg, field)
            if value and "/" not in value:
                setattr(msg, field, f"jobs/{value}")


def _accept_ids(cls: type) -> type:
    """Every RPC of ``cls`` takes a job's bare id where it takes its name."""
    for method in pb.DESCRIPTOR.services_by_name["ProcessingService"].methods:
        impl = getattr(cls, method.name)

        @functools.wraps(impl)
        async def handler(self, request, context, _impl=impl):
            _jobs_by_id(request)
            return await _impl(self, request, context)

        setattr(cls, method.name, handler)
    return cls


@_accept_ids
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
        created = self.catalog.create(job, request.request_id)
        await self.catalog.synced()
        return pb.CreateJobResponse(job=_shown(created))

    async def GetJob(self, request: pb.GetJobRequest, context) -> pb.GetJobResponse:
        return pb.GetJobResponse(job=_shown(self.catalog.get(request.name)))

    async def ListJobs(self, request: pb.ListJobsRequest, context) -> pb.ListJobsResponse:
        jobs = [self.catalog.jobs[k] for k in sorted(self.catalog.jobs)]
        page, nxt = self.catalog.page(jobs, request.page_size, request.page_token)
        return pb.ListJobsResponse(jobs=[_shown(j) for j in page], next_page_token=nxt)

    async def UpdateJob(self, request: pb.UpdateJobRequest, context) -> pb.UpdateJobResponse:
        old = self.catalog.get(request.job.name)
        if old.state not in (pb.JOB_STATE_STOPPED, pb.JOB_STATE_FAILED):
            raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                 f"job {old.name!r} is {pb.JobState.Name(old.state)}: stop it before updating")
        job = pb.Job()
        job.CopyFrom(request.job)
        unmask_job(job, old)
        await self.manager.compile(job)
        kept, note = await self.manager.carry_state(old, job)
        job.state, job.error = old.state, old.error
        job.create_time.CopyFrom(old.create_time)
        updated = self.catalog.put(job)
        await self.catalog.synced()
        return pb.UpdateJobResponse(job=_shown(updated), state_kept=kept, state_note=note)

    async def DeleteJob(self, request: pb.DeleteJobRequest, context) -> pb.DeleteJobResponse:
        job = self.catalog.get(request.name)
        if job.state in (pb.JOB_STATE_RUNNING, pb.JOB_STATE_STARTING, pb.JOB_STATE_DEGRADED):
            raise HeadwaterError(Reason.PRECONDITION_FAILED,
                                 f"job {job.name!r} is {pb.JobState.Name(job.state)}: stop it before deleting")
        self.catalog.delete(request.name)
        self.manager.forget(request.name)
        await self.catalog.synced()
        return pb.DeleteJobResponse()

    async def StartJob(self, request: pb.StartJobRequest, context) -> pb.StartJobResponse:
        start = request.start_time.ToDatetime(tzinfo=__import__("datetime").timezone.utc) \
            if request.HasField("start_time") else None
        if request.start_mode == pb.JOB_START_MODE_CUSTOM_TIME and start is None:
            raise HeadwaterError(Reason.INVALID_ARGUMENT, "start_mode CUSTOM_TIME needs start_time",
                                 metadata={"field": "start_time"})
        job = await self.manager.start(request.name, request.start_mode, start)
        await self.catalog.synced()  # a restart after the answer resumes the job
        return pb.StartJobResponse(job=_shown(job))

    async def StopJob(self, request: pb.StopJobRequest, context) -> pb.StopJobResponse:
        job = await self.manager.stop(request.name)
        await self.catalog.synced()
        return pb.StopJobResponse(job=_shown(job))

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

    async def ListEventVerdicts(self, request: pb.ListEventVerdictsRequest,
                                context) -> pb.ListEventVerdictsResponse:
        job = self.catalog.get(request.name)
        aliases = {i.alias.lower() for i in job.inputs if i.kind != pb.INPUT_KIND_REFERENCE}
        if request.input.lower() not in aliases:
            raise HeadwaterError(Reason.INVALID_ARGUMENT,
                                 f"job {job.name!r} has no stream input {request.input!r} (it has "
                                 f"{', '.join(sorted(aliases)) or 'none'})", metadata={"field": "input"})
        retained, found = await asyncio.to_thread(self.manager.verdicts, request.name, request.input)
        lo = request.from_time.ToMicroseconds() if request.HasField("from_time") else None
        hi = request.to_time.ToMicroseconds() if request.HasField("to_time") else None
        rows = sorted((r for r in found
                       if (lo is None or r[2] >= lo) and (hi is None or r[2] < hi)),
                      key=lambda r: (r[2], r[0], r[1]))
        page, nxt = self.catalog.page(rows, request.page_size or 100, request.page_token)
        out = []
        for pid, seq, enq, ev, adj, verdict, reason, windows in page:
            v = pb.EventVerdict(input=request.input, partition_id=pid, sequence_number=seq,
                                verdict=_VERDICTS[verdict], reason=reason, windows=windows)
            v.enqueued_time.FromMicroseconds(enq)
            v.event_time.FromMicroseconds(ev)
            if adj is not None:
                v.adjusted_time.FromMicroseconds(adj)
            out.append(v)
        return pb.ListEventVerdictsResponse(verdicts=out, next_page_token=nxt, retained=retained)

    async def CreateAlertRule(self, request: pb.CreateAlertRuleRequest, context) -> pb.CreateAlertRuleResponse:
        validate_rule(request.rule)
        rule = self.catalog.add_rule(request.parent, request.rule)
        await self.catalog.synced()
        return pb.CreateAlertRuleResponse(rule=rule)

    async def ListAlertRules(self, request: pb.ListAlertRulesRequest, context) -> pb.ListAlertRulesResponse:
        self.catalog.get(request.parent)
        rules = [r for k, r in sorted(self.catalog.rules.items()) if k.startswith(request.parent + "/")]
        page, nxt = self.catalog.page(rules, request.page_size, request.page_token)
        return pb.ListAlertRulesResponse(rules=page, next_page_token=nxt)

    async def DeleteAlertRule(self, request: pb.DeleteAlertRuleRequest, context) -> pb.DeleteAlertRuleResponse:
        self.catalog.delete_rule(request.name)
        await self.catalog.synced()
        return pb.DeleteAlertRuleResponse()
