"""Reads of jobs, always scoped to the requesting user."""
from __future__ import annotations

from django.db.models import QuerySet

from nnc_web.jobs.models import Job
from nnc_web.selectors import get_or_404


def jobs_of(user) -> QuerySet[Job]:
    return Job.objects.filter(owner=user)


def job_of(user, job_id: int) -> Job:
    return get_or_404(jobs_of(user), job_id)
