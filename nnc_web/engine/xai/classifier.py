"""An image-classifier bundle as the explanation methods need it: the model, its evaluation transform
(exactly the one `training.evaluation` uses, so a map explains the score the user saw) and its classes."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from nnc_web.engine.errors import UserError
from nnc_web.engine.imaging import DEFAULT_MAX_PIXELS, open_checked, to_channels
from nnc_web.engine.training.bundle import load_bundle
from nnc_web.engine.training.trainer import transforms_for

IMAGE_ARCHITECTURES = ("transfer_classifier",)


@dataclass
class ImageClassifier:
    model: torch.nn.Module
    manifest: dict
    device: torch.device

    @property
    def backbone_id(self) -> str:
        return self.manifest["backbone"]

    @property
    def input_size(self) -> int:
        return int(self.manifest["input_size"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest.get("class_names") or [])

    @property
    def num_classes(self) -> int:
        return int(self.manifest["num_classes"])

    def check_class(self, class_index: int) -> int:
        if not 0 <= class_index < self.num_classes:
            raise UserError(f"class_index {class_index} is out of range: this model has {self.num_classes} "
                            f"classes (0-{self.num_classes - 1})")
        return class_index

    def tensor(self, image: Image.Image) -> torch.Tensor:
        """One image as the model's normalised input (1, 3, size, size) on its device."""
        transform = transforms_for(self.backbone_id, self.input_size, [])
        return transform(to_channels(image, 3)).unsqueeze(0).to(self.device)

    def pixels(self, image: Image.Image) -> np.ndarray:
        """The image as the model sees it before normalisation: uint8 (size, size, 3)."""
        resized = to_channels(image, 3).resize((self.input_size, self.input_size), Image.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) floats in [0, 1] -> the model's input (mean/std of the backbone)."""
        norm = self.manifest["normalization"]
        mean = torch.tensor(norm["mean"], device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(norm["std"], device=pixels.device).view(1, 3, 1, 1)
        return (pixels - mean) / std


def load_image_classifier(bundle: Path, device: torch.device) -> ImageClassifier:
    """The bundle's classifier on `device`, in eval mode; a clear message for models that are not one."""
    try:
        manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError("this run has no readable model") from exc
    if manifest.get("architecture") not in IMAGE_ARCHITECTURES:
        raise UserError("this explanation needs an image classifier; this run's model is "
                        f"{manifest.get('architecture', 'unknown')}")
    model, manifest = load_bundle(Path(bundle), device="cpu")
    return ImageClassifier(model.to(device).eval(), manifest, device)


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    with open_checked(path, max_pixels) as image:
        image.load()
        return image.copy()
