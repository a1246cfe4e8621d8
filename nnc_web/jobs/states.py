"""Final states of a job, reached once: conditional updates, so two writers never both win."""
from __future__ import annotations

from django.utils import timezone

from nnc_web.jobs.events import record_event
from nnc_web.jobs.models import Job


def finish_job(job_id: int, state: str, message: str = "") -> bool:
    """Move a job to a final state once; returns False when it already was final."""
    now = timezone.now()
    updated = Job.objects.filter(pk=job_id).exclude(state__in=Job.FINISHED_STATES).update(
        state=state, message=message, finished_at=now)
    if updated:
        record_event(job_id, "state", {"state": state, "message": message})
    return bool(updated)
