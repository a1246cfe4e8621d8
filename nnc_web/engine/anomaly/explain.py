"""An anomaly bundle (PaDiM, PatchCore) as the explanation methods see a classifier (engine.xai.classifier):
one output, the image anomaly score, computed by the model's own `score_batch` (PaDiM: Mahalanobis map,
upsampled, blurred, its maximum; PatchCore: the nearest memory-bank distance, re-weighted) with
gradients flowing back to the image and to the backbone's layers. Grad-CAM may target the layers the
features come from; its default is the deepest of them."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nnc_web.engine.anomaly.model import AnomalyModel
from nnc_web.engine.model_store import get_backbone
from nnc_web.engine.xai.classifier import ImageClassifier

SCORE_NAME = "anomaly score"


class AnomalyScore(nn.Module):
    """Normalised images (N, 3, S, S) -> their anomaly scores (N, 1), as the evaluation scores them."""

    def __init__(self, model: AnomalyModel) -> None:
        super().__init__()
        self.extractor = model.extractor  # a submodule: its layers are Grad-CAM's targets
        self.extractor.differentiable = True
        self.anomaly = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        scores, _ = self.anomaly.score_batch(images)
        return scores[:, None]


def explainable(bundle: Path, manifest: dict, device: torch.device) -> ImageClassifier:
    from nnc_web.engine.anomaly.bundle import load_anomaly_bundle

    model, manifest = load_anomaly_bundle(bundle, device=str(device))
    model.extractor.eval()
    view = {**manifest, "num_classes": 1, "class_names": [SCORE_NAME]}
    spec = get_backbone(model.backbone_id)
    layers = tuple(model.layers)
    return ImageClassifier(AnomalyScore(model).eval(), view, device, layers, layers[-1], "extractor.body.",
                           spec.saved_bytes_per_pixel)
