"""PaDiM and PatchCore bundles: `{"score", "anomalous", "threshold"}` per image and, with
`"parameters": {"heatmap": true}`, the heat map as a base64 PNG.

The score is `AnomalyModel.score_batch` on the evaluation's transform (the run's `y'`); the threshold is
the bundle's (the best-F1 one, or the one the user saved); the heat map is drawn exactly as the
evaluation draws `heatmaps/<row>.png` (the map rounded to float16 as the evaluation stores it, over the
bundle's map range)."""
from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nnc_web.engine.anomaly.maps import heatmap_overlay
from nnc_web.engine.imaging import to_channels
from nnc_web.engine.serving.instances import Limits, Parameters, decode_image
from nnc_web.engine.serving.predictor import Predictor, register_predictor

MAX_BATCH = 16


@dataclass
class Prepared:
    tensor: torch.Tensor
    image: Image.Image | None  # kept only when a heat map is asked for


class AnomalyPredictor(Predictor):
    inputs = "image"
    runtime = "torch"  # forward hooks stop the backbone half-way: not an ONNX graph

    def __init__(self, model, manifest: dict) -> None:
        self.model, self.architecture = model, manifest["architecture"]
        self.threshold = float(manifest["threshold"])
        self.map_range = tuple(manifest.get("map_range") or (0.0, 1.0))
        self.runtime_report = {"runtime": "torch", "why": "forward hooks (not exportable)",
                               "device": str(model.device)}

    def prepare(self, instance: dict, name: str, parameters: Parameters, limits: Limits) -> Prepared:
        with decode_image(instance, name, limits) as image:
            rgb = to_channels(image, 3)
        return Prepared(self.model.transform(rgb), rgb if parameters.heatmap else None)

    @torch.no_grad()
    def forward(self, prepared: list[Prepared]) -> list[tuple[float, np.ndarray]]:
        results = []
        for start in range(0, len(prepared), MAX_BATCH):
            batch = torch.stack([p.tensor for p in prepared[start:start + MAX_BATCH]])
            scores, maps = self.model.score_batch(batch)
            results.extend(zip(scores.float().cpu().numpy().tolist(), maps.float().cpu().numpy(), strict=True))
        return results

    def answer(self, output: tuple[float, np.ndarray], prepared: Prepared, parameters: Parameters) -> dict:
        score, anomaly_map = output
        result = {"score": score, "anomalous": bool(score >= self.threshold), "threshold": self.threshold}
        if parameters.heatmap and prepared.image is not None:
            low, high = self.map_range
            overlay = heatmap_overlay(prepared.image, anomaly_map.astype(np.float16), low, high)
            buffer = io.BytesIO()
            overlay.save(buffer, "PNG")
            result["heatmap"] = base64.b64encode(buffer.getvalue()).decode()
        return result


def _anomaly(folder: Path, manifest: dict, device: torch.device, runtime: str, onnx_dir: Path | None) -> AnomalyPredictor:
    from nnc_web.engine.anomaly.bundle import load_anomaly_bundle

    model, manifest = load_anomaly_bundle(folder, device=str(device))
    return AnomalyPredictor(model, manifest)


for _method in ("padim", "patchcore"):
    register_predictor(_method, "image", _anomaly, task="anomaly")
