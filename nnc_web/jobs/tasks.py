"""Dramatiq actors. The worker command imports this module: `dramatiq nnc_web.jobs.tasks`."""
from __future__ import annotations

import os

import django
from django.apps import apps

if not apps.ready and not apps.loading:  # the worker process imports this module first
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nnc_web.settings")
    django.setup()

import dramatiq  # noqa: E402
from django.db import close_old_connections  # noqa: E402

from nnc_web.jobs.broker import configure_broker  # noqa: E402
from nnc_web.jobs.runner import run_job  # noqa: E402

configure_broker()

# Jobs take as long as they take: no silent 10-minute kill, and no automatic retries.
_JOB_OPTIONS = {"max_retries": 0, "time_limit": 30 * 24 * 3600 * 1000}


def _run(job_id: int) -> None:
    close_old_connections()
    try:
        run_job(job_id)
    finally:
        close_old_connections()


@dramatiq.actor(queue_name="cpu", **_JOB_OPTIONS)
def run_job_cpu(job_id: int) -> None:
    _run(job_id)


@dramatiq.actor(queue_name="gpu", **_JOB_OPTIONS)
def run_job_gpu(job_id: int) -> None:
    """The GPU queue: its worker runs one job at a time."""
    _run(job_id)
