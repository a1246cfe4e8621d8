"""The predictor registry: a bundle's manifest `architecture` -> how to serve it.

A predictor turns checked instances into answers in three steps, so that the server can batch the
middle one across requests: `prepare` (one instance: decode, the evaluation's exact preprocessing),
`forward` (a batch of prepared instances, one model call) and `answer` (one instance's JSON answer).

Other training plugins join with `register_predictor(architecture, inputs, load)`; an image classifier
only needs `ImageClassifierPredictor(model, transform, class_names, device)` (see `image.py`)."""
from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnc_web.engine.errors import UserError
from nnc_web.engine.serving.instances import Limits, Parameters, RequestError, instances_of, peek_image
from nnc_web.engine.serving.table_rows import check_row

if TYPE_CHECKING:
    import torch

INPUTS = ("image", "table")


class Predictor:
    """What every served model offers; subclasses fill in the three steps."""

    architecture = ""
    inputs = "image"
    runtime = "torch"
    runtime_report: dict = {}

    def prepare(self, instance: dict, name: str, parameters: Parameters, limits: Limits) -> Any:
        raise NotImplementedError

    def forward(self, prepared: list[Any]) -> list[Any]:
        raise NotImplementedError

    def answer(self, output: Any, prepared: Any, parameters: Parameters) -> Any:
        raise NotImplementedError

    def predict(self, instances: list[dict], parameters: Parameters | None = None,
                limits: Limits | None = None) -> list[Any]:
        """Answers for instances in one call (the CLI and tests; the server batches across requests)."""
        parameters, limits = parameters or Parameters(), limits or Limits(max_instances=len(instances) or 1)
        prepared = [self.prepare(item, f"instances[{i}]", parameters, limits) for i, item in enumerate(instances)]
        return [self.answer(out, item, parameters) for out, item in zip(self.forward(prepared), prepared, strict=True)]


Loader = Callable[[Path, dict, "torch.device", str, "Path | None"], Predictor]
Checker = Callable[[dict, dict, str, Limits], None]


def check_image(instance: dict, manifest: dict, name: str, limits: Limits) -> None:
    peek_image(instance, name, limits)


@dataclass(frozen=True)
class PredictorSpec:
    architecture: str
    inputs: str  # image | table
    load: Loader  # (bundle folder, manifest, device, runtime preference, onnx cache dir) -> Predictor
    check: Checker = check_image  # the web process's cheap check of one instance (no model loaded)
    task: str = "classification"  # classification | anomaly | regression (what the answers are)


PREDICTORS: dict[str, PredictorSpec] = {}


def register_predictor(architecture: str, inputs: str, load: Loader, check: Checker | None = None,
                       task: str = "classification") -> PredictorSpec:
    if inputs not in INPUTS:
        raise ValueError(f"inputs must be one of {INPUTS}")
    spec = PredictorSpec(architecture, inputs, load, check or check_image, task)
    PREDICTORS[architecture] = spec
    return spec


# The built-in predictors: architecture -> (inputs, task, the web process's check, the module that loads
# it and registers its real spec when imported). Known here without torch, which the web process that
# checks requests does not load; tests/engine/test_serving.py checks them against the modules' own.
BUILTINS: dict[str, tuple[str, str, Checker, str]] = {
    "transfer_classifier": ("image", "classification", check_image, "image"),
    "clip_zero_shot": ("image", "classification", check_image, "clip"),
    "padim": ("image", "anomaly", check_image, "anomaly"),
    "patchcore": ("image", "anomaly", check_image, "anomaly"),
    "centernet_detector": ("image", "detection", check_image, "detection"),
    "detr_detector": ("image", "detection", check_image, "detection"),
    "lraspp_segmenter": ("image", "segmentation", check_image, "detection"),
    "segformer_segmenter": ("image", "segmentation", check_image, "detection"),
    "tabular_mlp": ("table", "classification", check_row, "tabular"),
}


def builtin_module(architecture: str):
    """Import the module that serves a built-in architecture (it registers its spec)."""
    return importlib.import_module(f"nnc_web.engine.serving.{BUILTINS[architecture][3]}")


def _lazy_load(architecture: str) -> Loader:
    def load(*args: Any) -> Predictor:
        builtin_module(architecture)
        return PREDICTORS[architecture].load(*args)

    return load


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError("this run has no trained model (no readable model/manifest.json)") from exc
    if not isinstance(manifest, dict):
        raise UserError("this run's model manifest is not an object")
    return manifest


def spec_for(manifest: dict) -> PredictorSpec:
    architecture = manifest.get("architecture")
    if architecture not in PREDICTORS and architecture in BUILTINS:
        inputs, task, check, _ = BUILTINS[architecture]
        return PredictorSpec(architecture, inputs, _lazy_load(architecture), check, task)
    if architecture not in PREDICTORS:
        known = ", ".join(sorted({*PREDICTORS, *BUILTINS}))
        raise UserError(f"models of architecture {architecture!r} cannot be served yet (served: {known})")
    return PREDICTORS[architecture]


def task_of(manifest: dict) -> str:
    """classification | anomaly | regression: what the endpoint answers."""
    spec = spec_for(manifest)
    if spec.inputs == "table" and not manifest.get("class_names"):
        return "regression"
    return spec.task


def load_predictor(folder: Path, device: torch.device | str = "cpu", runtime: str = "auto",
                   onnx_dir: Path | None = None) -> Predictor:
    import torch

    manifest = read_manifest(folder)
    return spec_for(manifest).load(Path(folder), manifest, torch.device(device), runtime, onnx_dir)


def check_instances(body: dict, manifest: dict, limits: Limits) -> tuple[list[dict], Parameters]:
    """The web process's checks of a whole body; raises RequestError naming the first bad field."""
    from nnc_web.engine.serving.instances import parse_parameters

    spec = spec_for(manifest)
    instances = instances_of(body, limits)
    parameters = parse_parameters(body.get("parameters"))
    if parameters.heatmap and spec.task != "anomaly":
        raise RequestError.at("parameters.heatmap", "only anomaly-detection models draw heat maps")
    for index, instance in enumerate(instances):
        spec.check(instance, manifest, f"instances[{index}]", limits)
    return instances, parameters
