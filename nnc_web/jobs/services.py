"""Job lifecycle seen from the web side: create + enqueue, cancel, reap lost workers.

Imports go one way: services -> tasks (the actors) -> runner (the worker's body) -> states.
`run_job` is re-exported for callers that run a job inline (the CLI's --inline, tests).
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from nnc_web.jobs import tasks
from nnc_web.jobs.events import record_event
from nnc_web.jobs.models import Job
from nnc_web.jobs.runner import run_job
from nnc_web.jobs.states import finish_job
from nnc_web.plugins import registry

__all__ = ["cancel_job", "create_job", "discard_jobs_in", "enqueue", "reap_lost_jobs", "run_job", "unfinished_jobs"]
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
    actor = tasks.run_job_gpu if job.queue == "gpu" else tasks.run_job_cpu
    actor.send(job.pk)


def cancel_job(job: Job) -> Job:
    """Queued jobs end at once; running ones are asked to stop and end at their next check."""
    if job.state not in (State.QUEUED, State.RUNNING):
        return job
    # The flag first: a worker that starts from now on sees it and does not run the job.
    Job.objects.filter(pk=job.pk).update(cancel_requested=True)
    if finish_job(job.pk, State.CANCELLED, "cancelled before it started", expect=State.QUEUED):
        record_event(job.pk, "log", {"line": "cancelled before it started"})
    else:  # running (perhaps only just started): its worker stops at its next check
        record_event(job.pk, "log", {"line": "cancel requested"})
    job.refresh_from_db()
    return job


def unfinished_jobs(owner_id: int) -> QuerySet[Job]:
    return Job.objects.filter(owner_id=owner_id, state__in=(State.QUEUED, State.RUNNING))


def discard_jobs_in(owner_id: int, folder: Path) -> list[int]:
    """`folder` is being deleted: the user's unfinished jobs that write into it are cancelled, and the
    worker removes their folder when they end (a running job may write once more before it stops)."""
    inside = Q(result_dir=str(folder)) | Q(result_dir__startswith=str(folder).rstrip("/") + "/")
    jobs = list(unfinished_jobs(owner_id).filter(inside))
    for job in jobs:
        Job.objects.filter(pk=job.pk).update(discard_results=True)
        cancel_job(job)
    return [job.pk for job in jobs]


def reap_lost_jobs() -> list[int]:
    """Mark running jobs whose heartbeat stopped as failed ('worker lost')."""
    # Against the database's clock, which also stamped the heartbeats: workers on machines whose
    # clocks differ from this one are judged fairly.
    limit = ExpressionWrapper(Now() - timedelta(seconds=settings.NNC_HEARTBEAT_GRACE_SECONDS),
                              output_field=DateTimeField())
    lost = list(Job.objects.filter(state=State.RUNNING, heartbeat_at__lt=limit).values_list("pk", flat=True))
    for job_id in lost:
        if finish_job(job_id, State.FAILED, "worker lost", expect=State.RUNNING):
            record_event(job_id, "log", {"line": "worker lost: the job stopped sending heartbeats"})
    return lost


def resend_lost_queued(held: set[int], older_than_seconds: float = 10.0, send=None) -> list[int]:
    """Queued jobs the broker does not hold (it restarted empty, a send failed) are sent again. The Job
    row is the truth, and a second delivery of one job is harmless: only one worker moves it from
    queued to running."""
    limit = timezone.now() - timedelta(seconds=older_than_seconds)
    lost = [job for job in Job.objects.filter(state=State.QUEUED, created_at__lt=limit) if job.pk not in held]
    for job in lost:
        (send or enqueue)(job)
    return [job.pk for job in lost]
