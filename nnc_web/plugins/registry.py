"""Plugin registry: schemas served at /api/plugins/, validated on the server, driving the CLI.

A plugin declares `params` (the schema of docs/plugins.md) and a thin `run(ctx, params)` that
calls the engine. `complete(job, result)` registers what the run produced (datasets, results).
A plugin module imports the engine inside `run`: the web processes import every plugin for its schema
and must not load torch for that (tests/test_light_web.py).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nnc_web.plugins.context import Workspace

PARAM_TYPES = ("int", "float", "bool", "choice", "text", "file", "csv", "variable", "model", "image",
               "dataset")
KINDS = ("preprocess", "training", "postprocess")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class Param:
    name: str
    type: str
    default: Any = None
    required: bool = False
    help: str = ""
    choices: tuple | None = None
    min: float | None = None
    max: float | None = None
    multiple: bool = False  # variable parameters that take a comma-separated list (NNC's "variables")
    extras: tuple[str, ...] = ()  # variables a plugin computes itself rather than reads (t-SNE's `features`)
    label: str = ""  # what the form shows (words, e.g. "Training data name"); the name is then the hint

    def __post_init__(self) -> None:
        if self.type not in PARAM_TYPES:
            raise ValueError(f"unknown parameter type {self.type}")

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "default": self.default, "required": self.required,
                "help": self.help, "choices": list(self.choices) if self.choices else None,
                "min": self.min, "max": self.max, "multiple": self.multiple,
                "extras": list(self.extras), "label": self.label or humanise(self.name)}

    def clean(self, value: Any, user, trusted: bool, workspace: Workspace | None = None) -> Any:
        """Coerce and check one value; raises ValueError with a user-facing message."""
        if self.type == "csv":
            return _clean_csv(value, trusted, workspace)
        if self.type == "model" and self.choices is None:  # with choices: a backbone of the model store
            return _clean_model(value, trusted, workspace)
        if self.type == "int":
            value = _to_number(value, int)
        elif self.type == "float":
            value = _to_number(value, float)
        elif self.type == "bool":
            value = _to_bool(value)
        elif self.type == "file":
            return _clean_file(value, user, trusted)
        elif self.type == "dataset":
            return _clean_dataset(value, user)
        else:
            if not isinstance(value, str | int | float):
                raise ValueError("must be text")
            value = str(value).strip()
            if len(value) > 500:
                raise ValueError("is too long (500 characters at most)")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"must be one of {', '.join(str(c) for c in self.choices)}")
        if self.min is not None and value < self.min:
            raise ValueError(f"must be at least {_fmt(self.min)}")
        if self.max is not None and value > self.max:
            raise ValueError(f"must be at most {_fmt(self.max)}")
        return value


def humanise(name: str) -> str:
    """`num_column` -> `Num column`: the fallback label of a parameter that declares none."""
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)


INT_LIMIT = 2**53  # whole numbers beyond this lose precision as JSON floats; no parameter needs them


def _to_number(value: Any, kind: type) -> int | float:
    """A finite number (no inf, nan or 1e400); whole numbers for int parameters."""
    if isinstance(value, bool):
        raise ValueError("must be a number")
    try:
        number = float(value.strip()) if isinstance(value, str) else value
        if not isinstance(number, int | float):
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError("must be a number") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    if kind is int:
        if abs(number) > INT_LIMIT:
            raise ValueError(f"must be between -{INT_LIMIT} and {INT_LIMIT}")
        if float(number) != int(number):
            raise ValueError("must be a whole number")
        return int(number)
    return float(number)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("must be true or false")


def _clean_file(value: Any, user, trusted: bool) -> dict:
    """An upload id of the user, `{"import": "<root>/<path>"}` from NNC_IMPORT_DIRS, or any server
    path (trusted callers only: the CLI)."""
    from nnc_web.datasets.models import Upload

    if isinstance(value, dict) and "import" in value:
        from nnc_web.datasets.imports import resolve_import
        from nnc_web.engine.reporting import UserError

        try:
            resolve_import(str(value["import"]))
        except UserError as exc:
            raise ValueError(str(exc)) from exc
        return {"import": str(value["import"])}
    if isinstance(value, dict):
        value = value.get("upload", value.get("path"))
    if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit()):
        upload = Upload.objects.filter(pk=int(value), owner=user).first()
        if upload is None:
            raise ValueError("no such upload")
        if upload.state != Upload.State.READY:
            raise ValueError("this upload is not complete yet")
        return {"upload": int(value)}
    if trusted and isinstance(value, str) and value:
        path = Path(value).expanduser().resolve()
        if not path.exists():
            raise ValueError(f"{path} does not exist")
        return {"path": str(path)}
    raise ValueError("choose an uploaded file")


def _server_path(value: Any) -> Path | None:
    """A path on the server, for trusted callers (the CLI) only."""
    if not isinstance(value, str) or not value.strip():
        return None
    path = Path(value.strip()).expanduser()
    return path.resolve() if path.is_absolute() or path.exists() else None


def _clean_csv(value: Any, trusted: bool, workspace: Workspace | None) -> str | dict:
    """A CSV of the run or dataset (by name, as listed), or, headless, a CSV file on the server."""
    name = str(value or "").strip()
    if workspace is not None and name in workspace.csvs:
        return name
    if trusted:
        path = _server_path(name)
        if path is not None and path.is_file():
            return {"path": str(path)}
        if workspace is None:
            raise ValueError(f"{name} is not a CSV file on this machine")
    available = ", ".join(workspace.csvs) if workspace is not None else ""
    raise ValueError(f"no CSV {name!r} here" + (f"; CSVs: {available}" if available else ""))


def _clean_model(value: Any, trusted: bool, workspace: Workspace | None) -> str | dict:
    """`model` (the run's bundle), or, headless, a bundle folder on the server."""
    name = str(value or "").strip()
    if workspace is not None and workspace.model is not None and name in ("model", "results.nnp", ""):
        return "model"
    if trusted:
        path = _server_path(name)
        if path is not None and (path / "manifest.json").is_file():
            return {"path": str(path)}
    if workspace is not None and workspace.model is None:
        raise ValueError("this has no trained model (post-processing with a model runs on a training run)")
    raise ValueError("give the model as `model` (this run's bundle)" + (
        " or the path of a model bundle folder" if trusted else ""))


def _clean_dataset(value: Any, user) -> int:
    from nnc_web.datasets.models import Dataset
    from nnc_web.selectors import parse_id

    try:
        dataset_id = parse_id(value)
    except ValueError:
        raise ValueError("must be a dataset id") from None
    if not Dataset.objects.filter(pk=dataset_id, owner=user).exists():
        raise ValueError("no such dataset")
    return dataset_id


@dataclass(frozen=True)
class Plugin:
    id: str
    kind: str
    title: str
    description: str
    params: tuple[Param, ...]
    runner: Callable[[Any, dict], Any]
    completer: Callable[[Any, Any], None] | None = None
    cross_check: Callable[[dict], dict[str, str]] | None = None
    weights: Callable[[dict], str | None] | None = None  # the pretrained backbone a run needs, if any
    hidden: bool = False  # internal jobs (re-evaluation) that menus and listings leave out
    tags: tuple[str, ...] = field(default_factory=tuple)
    group: str | None = None  # the Plugins menu's sub-menu (NNC's folders: Utils, Visualization, ...)
    uses_model: Callable[[dict], bool] | None = None  # post-processing that runs a model goes to `gpu`
    # Training: the project-config settings the plugin reads (the form shows only these); None: every one.
    config_fields: tuple[str, ...] | None = None
    # Training: the history keys its epochs record, drawn as learning curves before the first epoch is in
    # (a run's own history names them after); None: a classifier's train loss and errors.
    curves: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown plugin kind {self.kind}")

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": self.kind, "title": self.title, "description": self.description,
                "group": self.group, "params": [p.as_dict() for p in self.params],
                "config_fields": list(self.config_fields) if self.config_fields is not None else None}

    def validate(self, user, raw: dict, trusted: bool, workspace: Workspace | None = None
                 ) -> tuple[dict, dict[str, str]]:
        """Clean every parameter; returns (params, errors by field name). `workspace`: the run or
        dataset a post-processing job works on (csv, model and variable parameters are checked there)."""
        known = {p.name for p in self.params}
        errors = {name: "unknown parameter" for name in raw if name not in known}
        params: dict[str, Any] = {}
        for param in self.params:
            value = raw.get(param.name)
            if value is None or value == "":
                if param.default is not None:
                    value = param.default
                elif param.required:
                    errors[param.name] = "this field is required"
                    continue
                else:
                    params[param.name] = None
                    continue
            try:
                params[param.name] = param.clean(value, user, trusted, workspace)
            except ValueError as exc:
                errors[param.name] = str(exc)
        if not errors:
            errors.update(self._variable_errors(params, workspace))
        if not errors and self.cross_check is not None:
            errors.update(self.cross_check(params))
        return params, errors

    def _csv_path(self, params: dict, workspace: Workspace | None) -> Path | None:
        """The file of the first csv parameter: the table that variable parameters name columns of."""
        for param in self.params:
            value = params.get(param.name)
            if param.type == "csv" and value:
                return Path(value["path"]) if isinstance(value, dict) else workspace.csvs[value]
        return None

    def _variable_errors(self, params: dict, workspace: Workspace | None) -> dict[str, str]:
        """Variable parameters must name columns of the input CSV (the message lists them)."""
        from nnc_web.engine.analysis.table import variable_names
        from nnc_web.engine.nnc_csv import read_header

        variable_params = [p for p in self.params if p.type == "variable" and params.get(p.name)]
        path = self._csv_path(params, workspace) if variable_params else None
        if path is None:
            return {}
        header = read_header(path)
        known = variable_names(header)
        exact = {cell.strip() for cell in header}
        errors = {}
        for param in variable_params:
            if params[param.name] in param.extras and workspace is not None and workspace.model is None:
                errors[param.name] = f"{params[param.name]} comes from a trained model: use it on a training run"
                continue
            names = [n.strip() for n in str(params[param.name]).split(",")] if param.multiple else [params[param.name]]
            missing = [n for n in names if n and n not in known and n not in exact and n not in param.extras]
            if missing:
                errors[param.name] = (f"no variable {missing[0]!r} in {path.name}; variables: {', '.join(known)}"
                                      + (f" (or {', '.join(param.extras)})" if param.extras else ""))
        return errors

    def resolve(self, user, params: dict, context: dict | None = None) -> dict:
        """Turn stored file references into absolute paths for the engine, and the job's context (a
        run, a dataset) into plain data (`_run`, `_workspace`): plugin bodies never query the ORM."""
        from nnc_web.datasets.models import Upload
        from nnc_web.plugins.context import resolve_context

        resolved = {**dict(params), **resolve_context(user, context)}
        for param in self.params:
            value = params.get(param.name)
            if param.type == "file" and isinstance(value, dict):
                if "import" in value:
                    from nnc_web.datasets.imports import resolve_import

                    resolved[param.name] = resolve_import(value["import"])
                elif "upload" in value:
                    upload = Upload.objects.get(pk=value["upload"], owner=user)
                    resolved[param.name] = upload.absolute_path()
                else:
                    resolved[param.name] = Path(value["path"])
            elif (param.type == "csv" or (param.type == "model" and param.choices is None)) and value:
                workspace = resolved.get("_workspace")
                if isinstance(value, dict):
                    resolved[param.name] = Path(value["path"])
                elif param.type == "csv":
                    resolved[param.name] = workspace.csv(value)
                else:
                    resolved[param.name] = workspace.model
        return resolved

    def run(self, ctx, params: dict) -> Any:
        return self.runner(ctx, params)

    def complete(self, job, result: Any) -> None:
        if self.completer is not None:
            self.completer(job, result)

    def queue_for(self, params: dict) -> str:
        """Training, and post-processing that runs a model, go to the `gpu` queue (its worker takes
        one job at a time); table work goes to `cpu`."""
        if self.kind == "training" or (self.uses_model is not None and self.uses_model(params)):
            return "gpu"
        return "cpu"


PLUGINS: dict[str, Plugin] = {}

# The order of the plugin list in docs/plugins.md: menus and listings show plugins in this order.
ORDER = ("image_classification", "object_detection_yolo_v2", "object_detection_centernet",
         "easymaker_classification", "coco_detection", "easymaker_segmentation", "tabular_csv",
         "anomaly_detection_dataset",
         "transfer_learning", "padim", "patchcore", "clip_zero_shot", "resnet50_classification", "tabular_mlp",
         "object_detection", "detr_resnet50", "semantic_segmentation", "segformer_b3",
         "cross_tabulation", "parameter_stats", "tsne", "scatter_plot", "tile_images", "face_evaluation",
         "grad_cam", "grad_cam_batch", "lime_image", "lime_image_batch", "lime_tabular", "lime_tabular_batch",
         "shap_image", "shap_image_batch", "shap_tabular", "shap_tabular_batch", "smoothgrad", "smoothgrad_batch",
         "why_did_it_fail",
         "max_min_activation")


def ordered() -> list[Plugin]:
    """The plugins a person can choose, in the documented order."""
    visible = [p for p in PLUGINS.values() if not p.hidden]
    return sorted(visible, key=lambda p: ORDER.index(p.id) if p.id in ORDER else len(ORDER))


def register(plugin: Plugin) -> Plugin:
    if plugin.id in PLUGINS:
        raise ValueError(f"plugin {plugin.id} registered twice")
    PLUGINS[plugin.id] = plugin
    return plugin


def get(plugin_id: str) -> Plugin:
    try:
        return PLUGINS[plugin_id]
    except KeyError:
        raise KeyError(f"unknown plugin {plugin_id!r}") from None


def dataset_name_errors(params: dict, *names: str) -> dict[str, str]:
    """Output dataset names: simple file-like names, distinct from each other."""
    errors = {}
    for name in names:
        value = str(params.get(name) or "")
        if value.lower().endswith(".csv"):
            value = value[:-4]
            params[name] = value
        if not NAME_PATTERN.match(value):
            errors[name] = "use letters, digits, '.', '_' or '-' (at most 64)"
    return errors
