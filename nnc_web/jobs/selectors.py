"""Reads of jobs, always scoped to the requesting user."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from nnc_web.jobs.models import Job


def jobs_of(user) -> QuerySet[Job]:
    return Job.objects.filter(owner=user)


def job_of(user, job_id: int) -> Job:
    try:
        return jobs_of(user).get(pk=job_id)
    except Job.DoesNotExist as exc:
        raise Http404 from exc
