"""Reads of jobs, always scoped to the requesting user."""
from __future__ import annotations

from collections.abc import Iterable

from django.apps import apps
from django.db.models import QuerySet

from nnc_web.jobs.models import Job
from nnc_web.selectors import get_or_404


def jobs_of(user) -> QuerySet[Job]:
    return Job.objects.filter(owner=user)


def job_of(user, job_id: int) -> Job:
    return get_or_404(jobs_of(user), job_id)


def job_targets(jobs: Iterable[Job]) -> dict[int, dict | None]:
    """What each job worked on, for links from the Jobs page: the run (training, evaluation,
    post-processing on a run) or the dataset (post-processing on a dataset), looked up in one query
    per kind; `deleted` when it is gone. Jobs made by the apps above this one, read by model name so
    that this app imports none of them."""
    jobs = list(jobs)
    run_ids = {j.context["run"] for j in jobs if isinstance(j.context.get("run"), int)}
    dataset_ids = {j.context["dataset"] for j in jobs if isinstance(j.context.get("dataset"), int)}
    runs = {r.pk: r for r in apps.get_model("projects", "Run").objects.filter(
        pk__in=run_ids).select_related("project")} if run_ids else {}
    datasets = {d.pk: d for d in apps.get_model("datasets", "Dataset").objects.filter(
        pk__in=dataset_ids)} if dataset_ids else {}
    targets: dict[int, dict | None] = {}
    for job in jobs:
        run_id, dataset_id = job.context.get("run"), job.context.get("dataset")
        if run_id in run_ids:
            run = runs.get(run_id)
            gone = run is None or run.project.owner_id != job.owner_id
            targets[job.pk] = {"kind": "run", "id": run_id, "deleted": gone, "name": "" if gone else run.name,
                               "project": "" if gone else run.project.name}
        elif dataset_id in dataset_ids:
            dataset = datasets.get(dataset_id)
            gone = dataset is None or dataset.owner_id != job.owner_id
            targets[job.pk] = {"kind": "dataset", "id": dataset_id, "name": "" if gone else dataset.name,
                               "deleted": gone}
        else:
            targets[job.pk] = None
    return targets
