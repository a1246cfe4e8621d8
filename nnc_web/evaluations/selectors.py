"""Reads of post-processing runs, always scoped to the requesting user."""
from __future__ import annotations

from django.db.models import QuerySet

from nnc_web.datasets.models import Dataset
from nnc_web.evaluations.models import Postprocess
from nnc_web.projects.models import Run
from nnc_web.selectors import get_or_404


def runs_of(user) -> QuerySet[Run]:
    return Run.objects.filter(project__owner=user).select_related("job", "project", "valid_dataset")


def run_of(user, run_id: int) -> Run:
    return get_or_404(runs_of(user), run_id)


def postprocesses_of(user) -> QuerySet[Postprocess]:
    return Postprocess.objects.filter(owner=user).select_related("job")


def postprocesses_of_run(run: Run) -> QuerySet[Postprocess]:
    return Postprocess.objects.filter(run=run).select_related("job")


def postprocesses_of_dataset(dataset: Dataset) -> QuerySet[Postprocess]:
    return Postprocess.objects.filter(dataset=dataset).select_related("job")
