"""Project rules: NNC-style alphanumeric names, datasets of the same owner, runs that snapshot the
config, and deletions that stop the jobs still writing into what is deleted."""
from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

from django.db import transaction
from django.http import Http404

from nnc_web.datasets.selectors import dataset_of, datasets_of
from nnc_web.engine.training.dataset_fit import (
    ANOMALY,
    DETECTION,
    IMAGE_CLASSIFICATION,
    SEGMENTATION,
    TABULAR,
    DatasetNeeds,
    mismatch,
)
from nnc_web.projects.config import clean_config
from nnc_web.projects.models import Project, Run
from nnc_web.projects.selectors import resume_refusal
from nnc_web.selectors import parse_id

PROJECT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
RUN_NAME = re.compile(r"^[^\x00-\x1f\x7f/\\]{1,64}$")  # words and spaces; no control characters or slashes
DATASET_FIELDS = ("train_dataset", "valid_dataset")
# What each training plugin's datasets must hold: a run on the wrong kind is refused before it starts.
TRAINING_DATA: dict[str, DatasetNeeds] = {
    "transfer_learning": IMAGE_CLASSIFICATION, "resnet50_classification": IMAGE_CLASSIFICATION,
    "tabular_mlp": TABULAR, "padim": ANOMALY, "patchcore": ANOMALY, "object_detection": DETECTION,
    "semantic_segmentation": SEGMENTATION, "detr_resnet50": DETECTION, "segformer_b3": SEGMENTATION}


def _project_name_error(owner, name: str, project: Project | None = None) -> str | None:
    if not PROJECT_NAME.match(name or ""):
        return "use letters, digits, '_' or '-' (at most 64)"
    taken = Project.objects.filter(owner=owner, name=name)
    if project is not None:
        taken = taken.exclude(pk=project.pk)
    return "you already have a project with this name" if taken.exists() else None


def create_project(owner, name: str, description: str = "", train_dataset: int | None = None,
                   valid_dataset: int | None = None) -> tuple[Project | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if message := _project_name_error(owner, name):
        errors["name"] = message
    datasets = {}
    for field, value in (("train_dataset", train_dataset), ("valid_dataset", valid_dataset)):
        if value in (None, ""):
            continue
        try:
            datasets[field] = dataset_of(owner, parse_id(value))
        except (Http404, TypeError, ValueError):
            errors[field] = "no such dataset"
    if errors:
        return None, errors
    config, _ = clean_config({})
    return Project.objects.create(owner=owner, name=name, description=description, config=config, **datasets), {}


def update_project(project: Project, data: dict) -> dict[str, str]:
    """Change the name, config and/or datasets; returns errors by field (nothing is saved when any)."""
    errors: dict[str, str] = {}
    if "name" in data:
        name = str(data["name"] or "").strip()
        if message := _project_name_error(project.owner, name, project):
            errors["name"] = message
        project.name = name
    if "config" in data:
        if not isinstance(data["config"], dict):
            return {"config": "must be an object of settings"}
        config, config_errors = clean_config({**project.config, **data["config"]})
        errors.update(config_errors)
        project.config = config
    for field in DATASET_FIELDS:
        if field in data:
            value = data[field]
            try:
                setattr(project, field, dataset_of(project.owner, parse_id(value)) if value not in (None, "") else None)
            except (Http404, TypeError, ValueError):
                errors[field] = "no such dataset"
            project.deleted_datasets = {k: v for k, v in project.deleted_datasets.items() if k != field}
    if "description" in data:
        project.description = str(data["description"])[:10_000]
    if not errors:
        project.save()
    return errors


def start_run(project: Project, plugin_id: str, raw_params: dict, send: bool = True, config: dict | None = None,
              name: str | None = None) -> tuple[Run | None, dict]:
    """Snapshot the config and datasets into a Run and queue its training job. `config`: the settings
    as the form shows them, saved to the project first (a run never silently uses other values);
    nothing is saved or queued when anything is wrong."""
    from nnc_web.engine.model_store import is_available
    from nnc_web.jobs.events import record_event
    from nnc_web.jobs.services import create_job
    from nnc_web.plugins.registry import PLUGINS

    plugin = PLUGINS.get(plugin_id)
    if plugin is None or plugin.kind != "training":
        return None, {"plugin": f"unknown training plugin {plugin_id!r}"}
    if not isinstance(raw_params, dict):
        return None, {"params": "must be an object of parameter values"}
    errors = {}
    if project.train_dataset_id is None:
        errors["train_dataset"] = "choose the training dataset of the project first"
    if project.valid_dataset_id is None:
        errors["valid_dataset"] = "choose the validation dataset of the project first"
    if not errors:  # both datasets chosen: they must be of the kind the plugin learns from
        errors.update(dataset_kind_errors(project, plugin))
    if config is not None:
        if not isinstance(config, dict):
            return None, {"config": "must be an object of settings"}
        project.config = {**project.config, **config}
    params, param_errors = plugin.validate(project.owner, raw_params or {}, trusted=False)
    errors.update(param_errors)
    needed = plugin.weights(params) if plugin.weights and not errors else None
    if needed and not is_available(needed):
        field = "model" if "model" in params else "pretrained"
        # Only staff can run manage.py on the server: others are told whom to ask (issue 11, item 12).
        remedy = (f"manage.py import_weights {needed} <file>" if project.owner.is_staff
                  else "ask your administrator to import the weights, or choose a model whose weights are here")
        errors[field] = f"the weights of {needed} are not on this machine ({remedy})"
    cleaned, config_errors = clean_config(project.config)
    errors.update(config_errors)
    if name is not None and (message := _run_name_error(project, str(name).strip())):
        errors["name"] = message
    if errors:
        project.refresh_from_db(fields=["config"])
        return None, errors
    with transaction.atomic():
        if config is not None:
            project.config = cleaned
            project.save(update_fields=["config"])
        run = Run.objects.create(project=project, plugin_id=plugin.id, params=params, config=cleaned,
                                 train_dataset_id=project.train_dataset_id, valid_dataset_id=project.valid_dataset_id)
        run.name = str(name).strip() if name is not None else _free_run_name(project, f"run {run.pk}")
        run.job = create_job(project.owner, plugin, params, title=f"{plugin.title}: {project.name} {run.name}",
                             send=send, context={"run": run.pk}, result_dir=str(run.folder()))
        run.save(update_fields=["name", "job"])
        for warning in dataset_warnings(project):  # the job's log keeps them (queued before the job is sent)
            record_event(run.job.pk, "log", {"line": f"warning: {warning}"})
    return run, {}


def dataset_kind_errors(project: Project, plugin) -> dict[str, str]:
    """The project's datasets must be of the kind the plugin learns from; the message says what
    each one is and which of the user's datasets would fit."""
    needs = TRAINING_DATA.get(plugin.id)
    if needs is None:
        return {}
    errors = {}
    for field in DATASET_FIELDS:
        dataset = getattr(project, field)
        reason = mismatch(dataset.columns, needs)
        if reason:
            errors[field] = f"{dataset.name} (#{dataset.pk}) {reason}: {plugin.title} needs {needs.what}. "
    if errors:
        fitting = [f"{d.name} (#{d.pk})" for d in datasets_of(project.owner).order_by("pk")
                   if d.columns and mismatch(d.columns, needs) is None]
        listed = ", ".join(fitting[:10]) + (f" and {len(fitting) - 10} more" if len(fitting) > 10 else "")
        suffix = f"Datasets that fit: {listed}" if fitting else "None of your datasets fits yet: create one first"
        errors = {field: message + suffix for field, message in errors.items()}
    return errors


def dataset_warnings(project: Project) -> list[str]:
    """What is allowed but probably not meant: validating on the training data itself."""
    if project.train_dataset_id is not None and project.train_dataset_id == project.valid_dataset_id:
        return [f"the training and validation datasets are the same ({project.train_dataset.name}): the validation "
                f"error will say how well the model fits its own training images, not how it does on new ones. "
                f"Choose a separate validation dataset (e.g. split the data with ratio1/ratio2 when creating it)"]
    return []


def _run_name_error(project: Project, name: str, run: Run | None = None) -> str | None:
    if not RUN_NAME.match(name):
        return "give a name of 1 to 64 characters, without '/' or '\\'"
    taken = project.runs.filter(name=name)
    if run is not None:
        taken = taken.exclude(pk=run.pk)
    return "this project already has a run with this name" if taken.exists() else None


def _free_run_name(project: Project, base: str) -> str:
    """`base`, or `base (2)`, `(3)`, ... when another run of the project has that name already."""
    taken = set(project.runs.filter(name__startswith=base).values_list("name", flat=True))
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base} ({number})"
    return name


def rename_run(run: Run, name: str) -> dict[str, str]:
    name = str(name or "").strip()
    if message := _run_name_error(run.project, name, run):
        return {"name": message}
    run.name = name
    run.save(update_fields=["name"])
    return {}


def _delete_folder(owner_id: int, folder: Path) -> None:
    """Jobs still writing there are cancelled and remove it again when they end (a running job may
    write once more before it sees the cancel); then the folder goes."""
    from nnc_web.jobs.services import discard_jobs_in

    discard_jobs_in(owner_id, folder)
    shutil.rmtree(folder, ignore_errors=True)


def delete_run(run: Run) -> None:
    """The run, its post-processing outputs and its folder; its training job is cancelled first."""
    folder, owner_id = run.folder(), run.project.owner_id
    run.delete()
    _delete_folder(owner_id, folder)


def delete_project(project: Project) -> None:
    """The project, every run of it and their folders; running jobs are cancelled first."""
    folder, owner_id = project.folder(), project.owner_id
    project.delete()
    _delete_folder(owner_id, folder)


def release_dataset(dataset) -> None:
    """A dataset is about to be deleted: the projects and runs that use it keep its name (their pages
    say it is gone), and jobs that would read it are cancelled (training on it, and, for a run's
    validation dataset, the run's evaluation and post-processing jobs)."""
    from nnc_web.jobs.services import cancel_job, unfinished_jobs

    for field in DATASET_FIELDS:
        for project in Project.objects.filter(**{field: dataset}):
            project.deleted_datasets = {**project.deleted_datasets, field: dataset.name}
            project.save(update_fields=["deleted_datasets"])
        runs = list(Run.objects.filter(**{field: dataset}).select_related("job"))
        for run in runs:
            run.deleted_datasets = {**run.deleted_datasets, field: dataset.name}
            run.save(update_fields=["deleted_datasets"])
            if run.job is not None and not run.job.finished:
                cancel_job(run.job)
        if field == "valid_dataset" and runs:
            for job in unfinished_jobs(dataset.owner_id).filter(context__run__in=[r.pk for r in runs]):
                cancel_job(job)


def resume_run(run: Run, send: bool = True) -> Run:
    """Continue a lost, failed or cancelled run from its last checkpoint, in a new job."""
    from nnc_web.engine.reporting import UserError
    from nnc_web.jobs.services import create_job
    from nnc_web.plugins.registry import PLUGINS

    if refusal := resume_refusal(run):
        raise UserError(refusal)
    plugin = PLUGINS[run.plugin_id]
    run.job = create_job(run.project.owner, plugin, run.params, title=f"{plugin.title}: {run.project.name} "
                         f"{run.name} (resumed)", send=send, context={"run": run.pk, "resume": True},
                         result_dir=str(run.folder()))
    run.save(update_fields=["job"])
    return run


def export_run(run: Run, export_format: str) -> Path:
    """TorchScript or ONNX of the run's model bundle (classifier, detector or segmenter), made once."""
    from nnc_web.engine.exports import export_bundle
    from nnc_web.engine.reporting import UserError

    folder = run.folder() / "model"
    if not (folder / "manifest.json").exists():
        raise UserError("this run has no trained model yet")
    target = folder / ("model.torchscript.pt" if export_format == "torchscript" else "model.onnx")
    if not target.exists():
        # made inside the first download's request: each request writes its own temporary file beside the
        # target and renames it over, so two first downloads at once cannot write into one file (either
        # rename leaves a whole export; a shared temporary name mixed their bytes or lost one's file). A
        # random name rather than mkstemp's: the export keeps the umask's permissions, not 0600.
        partial = folder / f"{target.name}.{uuid.uuid4().hex}.partial"
        try:
            export_bundle(folder, export_format, partial)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target


def record_run_result(job, result: dict) -> None:
    """A training or evaluation job finished: the run keeps its metrics and history."""
    Run.objects.filter(pk=job.context["run"]).update(metrics=result["metrics"], history=result["history"])
