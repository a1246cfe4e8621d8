"""Image classifiers: ranked `[{"label", "score"}, ...]` per image, as EasyMaker answers.

Preprocessing is the evaluation's own transform (`training.trainer.transforms_for` with no
augmentation: resize to input_size, normalise with the backbone's mean and std), and scores are the
softmax of the logits, as `training.evaluation.predict` computes `y'`; so an endpoint's answer for a
validation image equals the evaluation's `y'__k` of that row."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from nnc_web.engine.imaging import to_channels
from nnc_web.engine.serving.instances import Limits, Parameters, decode_image
from nnc_web.engine.serving.predictor import Predictor, register_predictor
from nnc_web.engine.serving.runtime import choose_runtime

MAX_BATCH = 32


class ImageClassifierPredictor(Predictor):
    """`model` maps normalised (N, 3, S, S) images to class logits (or probabilities, with
    `outputs="probabilities"`); `transform` maps an RGB PIL image to its (3, S, S) input exactly as
    the run's evaluation did; `normalization` ({"mean", "std"}) when the transform ends with it."""

    inputs = "image"

    def __init__(self, model: nn.Module, transform: Callable[[Image.Image], torch.Tensor], class_names: list[str],
                 device: torch.device, input_size: int, architecture: str = "", outputs: str = "logits",
                 runtime: str = "auto", onnx_dir: Path | None = None, key: str = "",
                 normalization: dict | None = None) -> None:
        self.architecture = architecture
        self.model, self.transform, self.device, self.input_size = model, transform, device, input_size
        self.outputs = outputs
        # {"mean", "std"} when `transform` ends with this normalisation: an exported model repository then
        # takes [0, 1] pixels and normalises inside the graph (see export.py)
        self.normalization = normalization
        example = torch.randn(1, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
        choice = choose_runtime(model.eval(), example, device, runtime, onnx_dir, key)
        self.run, self.runtime, self.runtime_report = choice.runner, choice.name, choice.report
        self.num_classes = int(self.run(example).shape[1])
        self.class_names = [*class_names[:self.num_classes],
                            *(str(i) for i in range(len(class_names), self.num_classes))]

    def prepare(self, instance: dict, name: str, parameters: Parameters, limits: Limits) -> torch.Tensor:
        with decode_image(instance, name, limits) as image:
            return self.tensor(image)

    def tensor(self, image: Image.Image) -> torch.Tensor:
        return self.transform(to_channels(image, 3))

    def forward(self, prepared: list[torch.Tensor]) -> list[np.ndarray]:
        scores = []
        for start in range(0, len(prepared), MAX_BATCH):
            logits = torch.from_numpy(self.run(torch.stack(prepared[start:start + MAX_BATCH])))
            scores.extend((torch.softmax(logits, dim=1) if self.outputs == "logits" else logits).numpy())
        return scores

    def answer(self, output: np.ndarray, prepared, parameters: Parameters) -> list[dict]:
        return ranked(output, self.class_names, parameters.top_k)


def ranked(scores: np.ndarray, names: list[str], top_k: int | None = None) -> list[dict]:
    """`[{"label", "score"}]` from the highest score down (ties keep the class order)."""
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [{"label": names[i], "score": float(scores[i])} for i in order]


def _transfer_classifier(folder: Path, manifest: dict, device: torch.device, runtime: str,
                         onnx_dir: Path | None) -> ImageClassifierPredictor:
    from nnc_web.engine.training.bundle import load_bundle
    from nnc_web.engine.training.trainer import transforms_for

    model, manifest = load_bundle(folder)
    size = int(manifest["input_size"])
    return ImageClassifierPredictor(model, transforms_for(manifest["backbone"], size, []), manifest["class_names"],
                                    device, size, "transfer_classifier", runtime=runtime, onnx_dir=onnx_dir,
                                    key=bundle_key(folder), normalization=manifest["normalization"])


def bundle_key(folder: Path) -> str:
    """Changes whenever the bundle's files do (the ONNX cache's file name)."""
    parts = [str(Path(folder).resolve())]
    for name in ("manifest.json", "weights.safetensors"):
        try:
            stat = (Path(folder) / name).stat()
            parts.append(f"{name}:{stat.st_size}:{stat.st_mtime_ns}")
        except OSError:
            parts.append(f"{name}:missing")
    return "|".join(parts)


register_predictor("transfer_classifier", "image", _transfer_classifier)
