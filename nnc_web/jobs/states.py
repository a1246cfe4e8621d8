"""Final states of a job, reached once: conditional updates, so two writers never both win."""
from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from nnc_web.jobs.events import push_events, store_event
from nnc_web.jobs.models import Job


def finish_job(job_id: int, state: str, message: str = "", expect: str | None = None) -> bool:
    """Move a job to a final state once; with `expect`, only from that state (a queued job that a
    worker has just started is not cancelled under it). False when another writer came first."""
    now = timezone.now()
    rows = Job.objects.filter(pk=job_id).exclude(state__in=Job.FINISHED_STATES)
    if expect is not None:
        rows = rows.filter(state=expect)
    if not rows.update(state=state, message=message, finished_at=now):
        return False
    event = store_event(job_id, "state", {"state": state, "message": message})
    transaction.on_commit(lambda: push_events(job_id, [event]))  # pushed once it is true for readers
    return True
