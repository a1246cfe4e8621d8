"""CLIP zero-shot bundles behind an endpoint: the image-classifier predictor over the CLIP classifier
(normalised images -> logits), with the evaluation's preprocessing, so answers equal the evaluation's y'."""
from __future__ import annotations

from nnc_web.engine.clip.model import ARCHITECTURE, load_clip_classifier
from nnc_web.engine.serving.image import ImageClassifierPredictor, bundle_key
from nnc_web.engine.serving.predictor import register_predictor
from nnc_web.engine.training.trainer import transforms_for


def _load(folder, manifest, device, runtime, onnx_dir):
    model, manifest = load_clip_classifier(folder)
    size = int(manifest["input_size"])
    return ImageClassifierPredictor(model, transforms_for(manifest["backbone"], size, []), manifest["class_names"],
                                    device, size, ARCHITECTURE, runtime=runtime, onnx_dir=onnx_dir,
                                    key=bundle_key(folder), normalization=manifest.get("normalization"))


register_predictor(ARCHITECTURE, "image", _load)
