"""CLIP's image tower, the zero-shot classifier built on it, and its model bundle.

The bundle is manifest.json + weights.safetensors like every other (no pickle): the image tower's
`visual.*` tensors, the classes' L2-normalised `text_features` (K x D) and `logit_scale`; the manifest
keeps the open_clip config, so a bundle loads without the model store's weights. The runtime is NNC's:
logits = exp(logit_scale) * cos(image, class), y' = softmax over the classes.

`load_clip_bundle(folder, device).predict(images)` is what serving calls: it uses the evaluation's own
transform (`training.trainer.transforms_for`, as `training.evaluation.predict` does), so an endpoint
answers exactly the evaluation's y' for the same image."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from nnc_web.engine.atomic import write_bundle
from nnc_web.engine.errors import UserError

FORMAT = "nnc-web-bundle/1"
ARCHITECTURE = "clip_zero_shot"


class ImageTower(nn.Module):
    """open_clip's `visual` (so a CLIP checkpoint's `visual.*` tensors load as they are): images
    normalised with CLIP's mean and std -> image embeddings. Other sizes are resized to the tower's
    own, since its position embeddings are learnt for one grid (transfer learning may run at 32 px)."""

    def __init__(self, visual: nn.Module, image_size: int) -> None:
        super().__init__()
        self.visual = visual
        self.image_size = image_size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if tuple(images.shape[-2:]) != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=True)
        return self.visual(images)


class ZeroShotClassifier(ImageTower):
    """Normalised images -> class logits against the classes' frozen text features."""

    def __init__(self, visual: nn.Module, image_size: int, text_features: torch.Tensor,
                 logit_scale: torch.Tensor | float) -> None:
        super().__init__(visual, image_size)
        self.register_buffer("text_features", F.normalize(text_features.float(), dim=-1))
        self.register_buffer("logit_scale", torch.as_tensor(logit_scale, dtype=torch.float32).reshape(()))

    @property
    def num_classes(self) -> int:
        return int(self.text_features.shape[0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = F.normalize(super().forward(images), dim=-1)
        return self.logit_scale.exp() * features @ self.text_features.T


def save_clip_bundle(folder: Path, model: ZeroShotClassifier, manifest: dict) -> Path:
    """`manifest`: at least backbone, open_clip_config, class_names, input_size, normalization."""
    full = {"format": FORMAT, "architecture": ARCHITECTURE, "num_classes": model.num_classes, **manifest}
    return write_bundle(folder, model.state_dict(), full)


def read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"not a model bundle: {exc}") from exc
    if manifest.get("format") != FORMAT or manifest.get("architecture") != ARCHITECTURE:
        raise UserError(f"not a CLIP zero-shot bundle ({manifest.get('architecture')!r})")
    return manifest


def load_clip_classifier(folder: Path, device: torch.device | str = "cpu") -> tuple[ZeroShotClassifier, dict]:
    """The bundle's classifier in eval mode (for evaluation, explanation and export) and its manifest."""
    from safetensors.torch import load_file

    from nnc_web.engine.clip.architectures import build_visual

    manifest = read_manifest(folder)
    config = manifest["open_clip_config"]
    model = ZeroShotClassifier(build_visual(config), int(manifest["input_size"]),
                               torch.zeros(int(manifest["num_classes"]), int(config["embed_dim"])), 0.0)
    model.load_state_dict(load_file(str(Path(folder) / "weights.safetensors")), strict=True)
    return model.to(device).eval(), manifest


@dataclass
class ClipBundle:
    """A loaded zero-shot bundle, ready to classify images."""

    model: ZeroShotClassifier
    manifest: dict
    device: torch.device

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def input_size(self) -> int:
        return int(self.manifest["input_size"])

    def transform(self):
        from nnc_web.engine.training.trainer import transforms_for

        return transforms_for(self.manifest["backbone"], self.input_size, [])

    @torch.no_grad()
    def predict(self, images: list[Image.Image], batch_size: int = 64) -> np.ndarray:
        """Class probabilities (len(images) x classes, float32), each image as the evaluation reads it
        (converted to RGB, then its transform)."""
        transform = self.transform()
        scores = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([transform(image.convert("RGB")) for image in images[start:start + batch_size]])
            scores.append(torch.softmax(self.model(batch.to(self.device)), dim=1).cpu().numpy())
        return np.concatenate(scores) if scores else np.zeros((0, len(self.class_names)), dtype=np.float32)


def load_clip_bundle(folder: Path, device: torch.device | str = "cpu") -> ClipBundle:
    model, manifest = load_clip_classifier(folder, device)
    return ClipBundle(model, manifest, torch.device(device))


def _explainable(bundle: Path, manifest: dict, device: torch.device):
    """The explanation methods' view (engine.xai.classifier): a ViT has no convolutional layer for
    Grad-CAM; LIME and SHAP only need the model on normalised images."""
    from nnc_web.engine.xai.classifier import ImageClassifier

    model, manifest = load_clip_classifier(bundle, device)
    return ImageClassifier(model, manifest, device)


def _register() -> None:
    try:
        from nnc_web.engine.xai.classifier import register_loader
    except ImportError:  # an engine.xai without bundle loaders: classifying still works, explaining does not
        return
    register_loader(ARCHITECTURE, _explainable)


_register()
