"""Job lifecycle: create + enqueue, run (inside a worker), cancel, reap lost workers."""
from __future__ import annotations

import logging
import traceback
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from nnc_web import storage
from nnc_web.engine.reporting import JobCancelled, UserError
from nnc_web.jobs.context import JobContext
from nnc_web.jobs.events import record_event
from nnc_web.jobs.models import Job
from nnc_web.plugins import registry

logger = logging.getLogger(__name__)
State = Job.State


def create_job(owner, plugin: registry.Plugin, params: dict, title: str = "", send: bool = True,
               context: dict | None = None, result_dir: str = "") -> Job:
    """Store a queued job and enqueue it once the transaction commits (`send=False`: run it inline)."""
    job = Job.objects.create(owner=owner, kind=plugin.kind, plugin_id=plugin.id, params=params,
                             title=title or plugin.title, queue=plugin.queue_for(params), context=context or {},
                             result_dir=result_dir)
    record_event(job.pk, "state", {"state": State.QUEUED})
    if send:
        transaction.on_commit(lambda: enqueue(job))
    return job


def enqueue(job: Job) -> None:
    from nnc_web.jobs import tasks

    actor = tasks.run_job_gpu if job.queue == "gpu" else tasks.run_job_cpu
    actor.send(job.pk)


def _finish(job_id: int, state: str, message: str = "") -> bool:
    """Move a job to a final state once; returns False when it already was final."""
    now = timezone.now()
    updated = Job.objects.filter(pk=job_id).exclude(state__in=Job.FINISHED_STATES).update(
        state=state, message=message, finished_at=now)
    if updated:
        record_event(job_id, "state", {"state": state, "message": message})
    return bool(updated)


def cancel_job(job: Job) -> Job:
    """Queued jobs end at once; running ones are asked to stop and end at their next check."""
    if job.state == State.QUEUED:
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        if _finish(job.pk, State.CANCELLED, "cancelled before it started"):
            record_event(job.pk, "log", {"line": "cancelled before it started"})
    elif job.state == State.RUNNING:
        Job.objects.filter(pk=job.pk).update(cancel_requested=True)
        record_event(job.pk, "log", {"line": "cancel requested"})
    job.refresh_from_db()
    return job


def reap_lost_jobs() -> list[int]:
    """Mark running jobs whose heartbeat stopped as failed ('worker lost')."""
    limit = timezone.now() - timedelta(seconds=settings.NNC_HEARTBEAT_GRACE_SECONDS)
    lost = list(Job.objects.filter(state=State.RUNNING, heartbeat_at__lt=limit).values_list("pk", flat=True))
    for job_id in lost:
        if _finish(job_id, State.FAILED, "worker lost"):
            record_event(job_id, "log", {"line": "worker lost: the job stopped sending heartbeats"})
    return lost


def run_job(job_id: int) -> None:
    """The body of the worker actor: run the plugin, record the outcome, never raise."""
    now = timezone.now()
    started = Job.objects.filter(pk=job_id, state=State.QUEUED, cancel_requested=False).update(
        state=State.RUNNING, started_at=now, heartbeat_at=now)
    if not started:
        return  # cancelled while queued, or already run by another delivery
    job = Job.objects.select_related("owner").get(pk=job_id)
    workdir = Path(job.result_dir) if job.result_dir else storage.jobs_dir(job.owner_id) / str(job.pk)
    Job.objects.filter(pk=job_id).update(result_dir=str(workdir))
    record_event(job_id, "state", {"state": State.RUNNING})
    ctx = JobContext(job, workdir)
    ctx.start_heartbeat()
    try:
        plugin = registry.get(job.plugin_id)
        ctx.log(f"{plugin.title}: started")
        params = plugin.resolve(job.owner, job.params)
        result = plugin.run(ctx, params)
        plugin.complete(job, result)
        ctx.close()
        record_event(job_id, "log", {"line": "worker done"})
        _finish(job_id, State.SUCCEEDED)
    except JobCancelled:
        ctx.close()
        record_event(job_id, "log", {"line": "cancelled"})
        _finish(job_id, State.CANCELLED, "cancelled by the user")
    except UserError as exc:
        ctx.close()
        record_event(job_id, "log", {"line": f"error: {exc}"})
        _finish(job_id, State.FAILED, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug must end the job, not the worker
        ctx.close()
        logger.error("job %s crashed:\n%s", job_id, traceback.format_exc())
        record_event(job_id, "log", {"line": f"error: internal error ({type(exc).__name__}); see the worker log"})
        _finish(job_id, State.FAILED, f"internal error: {type(exc).__name__}")
