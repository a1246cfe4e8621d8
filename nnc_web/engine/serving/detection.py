"""Detector and segmenter bundles in EasyMaker's answer formats.

Detection (`centernet_detector`, `detr_detector`): per image a list of `{"<label>": {"xmin", "ymin", "xmax", "ymax"},
"score"}` in the request image's pixels, the boxes at or above the bundle's threshold, best first (the
score is beyond EasyMaker). Segmentation (`lraspp_segmenter`, `segformer_segmenter`): per image the label of every pixel as
rows of a 512 x 512 grid, as EasyMaker answers. Both use the evaluation's exact preprocessing (RGB,
bilinear resize to the input size, the backbone's normalisation)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from nnc_web.engine.imaging import to_channels
from nnc_web.engine.serving.instances import Limits, Parameters, decode_image
from nnc_web.engine.serving.predictor import Predictor, register_predictor

MAX_BATCH = 16
MASK_SIDE = 512  # EasyMaker's segmentation answer size


@dataclass
class Prepared:
    tensor: torch.Tensor
    width: int
    height: int


class _BundlePredictor(Predictor):
    inputs = "image"
    runtime = "torch"

    def __init__(self, model, manifest: dict, device: torch.device) -> None:
        self.model, self.manifest, self.device = model, manifest, device
        self.architecture = manifest["architecture"]
        self.size = int(manifest["input_size"])
        self.names = list(manifest["class_names"])
        norm = manifest["normalization"]
        self.mean = torch.tensor(norm["mean"]).view(3, 1, 1)
        self.std = torch.tensor(norm["std"]).view(3, 1, 1)
        self.runtime_report = {"runtime": "torch", "device": str(device)}

    def prepare(self, instance: dict, name: str, parameters: Parameters, limits: Limits) -> Prepared:
        with decode_image(instance, name, limits) as image:
            rgb = to_channels(image, 3).convert("RGB")
        width, height = rgb.size
        pixels = np.asarray(rgb.resize((self.size, self.size), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
        tensor = (torch.from_numpy(pixels).permute(2, 0, 1) - self.mean) / self.std
        return Prepared(tensor, width, height)

    def _batches(self, prepared: list[Prepared]):
        for start in range(0, len(prepared), MAX_BATCH):
            yield torch.stack([p.tensor for p in prepared[start:start + MAX_BATCH]]).to(self.device)


class DetectorPredictor(_BundlePredictor):
    @torch.no_grad()
    def forward(self, prepared: list[Prepared]) -> list[tuple]:
        from nnc_web.engine.detection_training.model import decode

        found = []
        for batch in self._batches(prepared):
            found.extend((b.cpu(), s.cpu(), la.cpu()) for b, s, la in decode(*self.model(batch)))
        return found

    def answer(self, output: tuple, prepared: Prepared, parameters: Parameters) -> list[dict]:
        boxes, scores, labels = output
        threshold = float(self.manifest.get("threshold", 0.5))
        result = []
        for (x0, y0, x1, y1), score, label in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
            if score < threshold:
                continue
            w, h = prepared.width, prepared.height
            result.append({self.names[label]: {"xmin": round(x0 * w, 2), "ymin": round(y0 * h, 2),
                                               "xmax": round(x1 * w, 2), "ymax": round(y1 * h, 2)},
                           "score": round(score, 6)})
        return result


class SegmenterPredictor(_BundlePredictor):
    @torch.no_grad()
    def forward(self, prepared: list[Prepared]) -> list[np.ndarray]:
        masks = []
        for batch in self._batches(prepared):
            logits = F.interpolate(self.model(batch), size=(MASK_SIDE, MASK_SIDE), mode="bilinear",
                                   align_corners=False)
            masks.extend(logits.argmax(1).cpu().numpy())
        return masks

    def answer(self, output: np.ndarray, prepared: Prepared, parameters: Parameters) -> list[list[str]]:
        names = np.asarray(self.names, dtype=object)
        return names[output].tolist()


class DetrPredictor(DetectorPredictor):
    """DETR's queries through its own post-processing, as its evaluation (`predict_detr`) reads them."""

    @torch.no_grad()
    def forward(self, prepared: list[Prepared]) -> list[tuple]:
        from transformers import DetrImageProcessor

        processor = DetrImageProcessor()
        found = []
        for batch in self._batches(prepared):
            for result in processor.post_process_object_detection(self.model(pixel_values=batch), threshold=0.0):
                order = torch.argsort(result["scores"], descending=True)
                found.append((result["boxes"][order].clamp(0, 1).cpu(), result["scores"][order].cpu(),
                              result["labels"][order].cpu()))
        return found


class SegformerPredictor(SegmenterPredictor):
    @torch.no_grad()
    def forward(self, prepared: list[Prepared]) -> list[np.ndarray]:
        masks = []
        for batch in self._batches(prepared):
            logits = F.interpolate(self.model(pixel_values=batch).logits, size=(MASK_SIDE, MASK_SIDE),
                                   mode="bilinear", align_corners=False)
            masks.extend(logits.argmax(1).cpu().numpy())
        return masks


def _detr(folder: Path, manifest: dict, device: torch.device, runtime: str, onnx_dir: Path | None):
    from nnc_web.engine.detection_training.detr import load_detr

    model, manifest = load_detr(folder, str(device))
    return DetrPredictor(model, manifest, device)


def _segformer(folder: Path, manifest: dict, device: torch.device, runtime: str, onnx_dir: Path | None):
    from nnc_web.engine.segmentation_training.segformer import load_segformer

    model, manifest = load_segformer(folder, str(device))
    return SegformerPredictor(model, manifest, device)


def _detector(folder: Path, manifest: dict, device: torch.device, runtime: str, onnx_dir: Path | None):
    from nnc_web.engine.detection_training.bundle import load_detector

    model, manifest = load_detector(folder, str(device))
    return DetectorPredictor(model, manifest, device)


def _segmenter(folder: Path, manifest: dict, device: torch.device, runtime: str, onnx_dir: Path | None):
    from nnc_web.engine.segmentation_training.bundle import load_segmenter

    model, manifest = load_segmenter(folder, str(device))
    return SegmenterPredictor(model, manifest, device)


register_predictor("centernet_detector", "image", _detector, task="detection")
register_predictor("lraspp_segmenter", "image", _segmenter, task="segmentation")
register_predictor("detr_detector", "image", _detr, task="detection")
register_predictor("segformer_segmenter", "image", _segformer, task="segmentation")
