"""Reads of projects and runs, always scoped to the requesting user, and what a page needs to know
about them (a run's settings, whether it can resume, which projects and runs use a dataset)."""
from __future__ import annotations

import json

from django.db.models import Q, QuerySet

from nnc_web.projects.config import CONFIG_PARAMS
from nnc_web.projects.models import Project, Run
from nnc_web.selectors import get_or_404

ROLES = (("train_dataset", "training"), ("valid_dataset", "validation"))


def projects_of(user) -> QuerySet[Project]:
    return Project.objects.filter(owner=user)


def project_of(user, project_id: int) -> Project:
    return get_or_404(projects_of(user), project_id)


def runs_of(user) -> QuerySet[Run]:
    return Run.objects.filter(project__owner=user).select_related("job", "project")


def run_of(user, run_id: int) -> Run:
    return get_or_404(runs_of(user), run_id)


def run_settings(run: Run) -> dict:
    """What the run was trained with: its plugin's parameters, then the project-config settings that
    plugin reads (a ResNet-50 run has its own epochs and learning rate; PaDiM has neither)."""
    from nnc_web.plugins.registry import PLUGINS

    plugin = PLUGINS.get(run.plugin_id)
    fields = plugin.config_fields if plugin is not None and plugin.config_fields is not None else \
        tuple(p.name for p in CONFIG_PARAMS)
    settings = {name: value for name, value in run.params.items() if not name.startswith("_")}
    settings.update({name: run.config[name] for name in fields if name in run.config})
    return settings


def run_setting_labels(run: Run) -> dict[str, str]:
    """The words the forms show for each of the run's settings (those that have them)."""
    from nnc_web.plugins.registry import PLUGINS

    plugin = PLUGINS.get(run.plugin_id)
    params = (*(plugin.params if plugin is not None else ()), *CONFIG_PARAMS)
    shown = run_settings(run)
    return {p.name: p.label for p in params if p.label and p.name in shown}


def run_exportable(run: Run) -> bool:
    from nnc_web.engine.exports import exportable

    try:
        manifest = json.loads((run.folder() / "model" / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and exportable(manifest.get("architecture"))


def resume_refusal(run: Run) -> str | None:
    """Why the run cannot continue from its checkpoint, or None when it can."""
    if run.job is not None and not run.job.finished:
        return "this run is still queued or running"
    if run.job is not None and run.job.state == "succeeded":
        return "this run has finished: start a new run instead"
    if not (run.folder() / "checkpoint.pt").exists():
        return "this run has no checkpoint yet (it stopped before its first epoch): start a new run"
    if run.train_dataset_id is None or run.valid_dataset_id is None:
        return "a dataset of this run was deleted: it cannot continue"
    return None


def _roles(item: Project | Run, dataset_id: int) -> list[str]:
    return [role for field, role in ROLES if getattr(item, f"{field}_id") == dataset_id]


def dataset_usage(dataset) -> dict:
    """The projects and runs that use a dataset (asked before it is deleted)."""
    uses = Q(train_dataset=dataset) | Q(valid_dataset=dataset)
    projects = Project.objects.filter(uses, owner_id=dataset.owner_id).order_by("name")
    runs = Run.objects.filter(uses, project__owner_id=dataset.owner_id).select_related("project", "job")
    return {
        "projects": [{"id": p.pk, "name": p.name, "as": _roles(p, dataset.pk)} for p in projects],
        "runs": [{"id": r.pk, "name": r.name, "project": {"id": r.project_id, "name": r.project.name},
                  "as": _roles(r, dataset.pk), "state": r.job.state if r.job else "unknown"} for r in runs],
    }
