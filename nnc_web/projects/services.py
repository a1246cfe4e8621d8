"""Project rules: NNC-style alphanumeric names, datasets of the same owner."""
from __future__ import annotations

import json
import re
from pathlib import Path

from django.http import Http404

from nnc_web.datasets.selectors import dataset_of
from nnc_web.engine.atomic import replace_atomically
from nnc_web.projects.config import clean_config
from nnc_web.projects.models import Project, Run
from nnc_web.selectors import parse_id

PROJECT_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def create_project(owner, name: str, description: str = "", train_dataset: int | None = None,
                   valid_dataset: int | None = None) -> tuple[Project | None, dict[str, str]]:
    errors: dict[str, str] = {}
    if not PROJECT_NAME.match(name or ""):
        errors["name"] = "use letters, digits, '_' or '-' (at most 64)"
    elif Project.objects.filter(owner=owner, name=name).exists():
        errors["name"] = "you already have a project with this name"
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
    """Change the config and/or datasets; returns errors by field (nothing is saved when any)."""
    errors: dict[str, str] = {}
    if "config" in data:
        if not isinstance(data["config"], dict):
            return {"config": "must be an object of settings"}
        config, config_errors = clean_config({**project.config, **data["config"]})
        errors.update(config_errors)
        project.config = config
    for field in ("train_dataset", "valid_dataset"):
        if field in data:
            value = data[field]
            try:
                setattr(project, field, dataset_of(project.owner, parse_id(value)) if value not in (None, "") else None)
            except (Http404, TypeError, ValueError):
                errors[field] = "no such dataset"
    if "description" in data:
        project.description = str(data["description"])[:10_000]
    if not errors:
        project.save()
    return errors


def start_run(project: Project, plugin_id: str, raw_params: dict, send: bool = True) -> tuple[Run | None, dict]:
    """Snapshot the config and datasets into a Run and queue its training job."""
    from nnc_web.engine.model_store import is_available
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
    params, param_errors = plugin.validate(project.owner, raw_params or {}, trusted=False)
    errors.update(param_errors)
    needed = plugin.weights(params) if plugin.weights and not errors else None
    if needed and not is_available(needed):
        field = "model" if "model" in params else "pretrained"
        errors[field] = f"the weights of {needed} are not on this machine (manage.py import_weights {needed} <file>)"
    config, config_errors = clean_config(project.config)
    errors.update(config_errors)
    if errors:
        return None, errors
    run = Run.objects.create(project=project, plugin_id=plugin.id, params=params, config=config,
                             train_dataset_id=project.train_dataset_id, valid_dataset_id=project.valid_dataset_id)
    run.job = create_job(project.owner, plugin, params, title=f"{plugin.title}: {project.name} run {run.pk}",
                         send=send, context={"run": run.pk}, result_dir=str(run.folder()))
    run.save(update_fields=["job"])
    return run, {}


def resume_run(run: Run, send: bool = True) -> Run:
    """Continue a lost, failed or cancelled run from its last checkpoint, in a new job."""
    from nnc_web.engine.reporting import UserError
    from nnc_web.jobs.services import create_job
    from nnc_web.plugins.registry import PLUGINS

    if run.job is not None and not run.job.finished:
        raise UserError("this run is still queued or running")
    if run.job is not None and run.job.state == "succeeded":
        raise UserError("this run has finished: start a new run instead")
    if not (run.folder() / "checkpoint.pt").exists():
        raise UserError("this run has no checkpoint yet (it stopped before its first epoch): start a new run")
    plugin = PLUGINS[run.plugin_id]
    run.job = create_job(run.project.owner, plugin, run.params, title=f"{plugin.title}: {run.project.name} run "
                         f"{run.pk} (resumed)", send=send, context={"run": run.pk, "resume": True},
                         result_dir=str(run.folder()))
    run.save(update_fields=["job"])
    return run


def export_run(run: Run, export_format: str) -> Path:
    """TorchScript or ONNX of the run's model bundle, made once."""
    from nnc_web.engine.reporting import UserError
    from nnc_web.engine.training.bundle import export_onnx, export_torchscript, load_bundle

    folder = run.folder() / "model"
    if not (folder / "manifest.json").exists():
        raise UserError("this run has no trained model yet")
    target = folder / ("model.torchscript.pt" if export_format == "torchscript" else "model.onnx")
    if not target.exists():
        if json.loads((folder / "manifest.json").read_text()).get("architecture") != "transfer_classifier":
            raise UserError("TorchScript and ONNX export are for image classifiers; download the model bundle")
        model, manifest = load_bundle(folder)
        exporter = export_torchscript if export_format == "torchscript" else export_onnx
        replace_atomically(target, lambda path: exporter(model, manifest["input_size"], path))
    return target


def record_run_result(job, result: dict) -> None:
    """A training or evaluation job finished: the run keeps its metrics and history."""
    Run.objects.filter(pk=job.context["run"]).update(metrics=result["metrics"], history=result["history"])
