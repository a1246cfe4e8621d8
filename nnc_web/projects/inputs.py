"""Resolve a training job's `{"run": id}` context into plain data for its plugin."""
from __future__ import annotations

from nnc_web.plugins.context import RunInputs
from nnc_web.projects.models import Run


def run_inputs(run: Run) -> RunInputs:
    return RunInputs(
        run_id=run.pk, folder=run.folder(),
        train_csv=run.train_dataset.csv_path() if run.train_dataset else None,
        valid_csv=run.valid_dataset.csv_path() if run.valid_dataset else None,
        train_dataset_id=run.train_dataset_id, valid_dataset_id=run.valid_dataset_id,
        config=dict(run.config), params=dict(run.params), metrics=dict(run.metrics or {}),
        history=list(run.history or []),
        class_names=list(run.train_dataset.class_names or []) if run.train_dataset else [])


def resolve_run(user, context: dict) -> dict:
    run = Run.objects.select_related("project", "train_dataset", "valid_dataset").get(
        pk=context["run"], project__owner=user)
    return {"_run": run_inputs(run)}
