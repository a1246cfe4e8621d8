"""An image-classifier bundle as the explanation methods need it: the model, its evaluation transform
(exactly the one `training.evaluation` uses, so a map explains the score the user saw), its classes and
the layers Grad-CAM may target.

Bundles of other image architectures (later training plugins) join with `register_loader`: a loader
returns an `ImageClassifier` whose `model` maps normalised (N, 3, S, S) images to class logits."""
from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from nnc_web.engine.errors import UserError
from nnc_web.engine.imaging import DEFAULT_MAX_PIXELS, open_checked, to_channels
from nnc_web.engine.reporting import Reporter


@dataclass
class ImageClassifier:
    model: nn.Module
    manifest: dict
    device: torch.device
    layer_names: tuple[str, ...] = ()  # layers Grad-CAM may target, in network order
    default_layer: str | None = None
    layer_prefix: str = ""  # where the names live inside `model` (the backbone of a transfer classifier)
    saved_bytes_per_pixel: int = 4000  # autograd's memory per input pixel and image (memory guard)

    @property
    def backbone_id(self) -> str:
        return self.manifest.get("backbone", "")

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

    def class_label(self, class_index: int) -> str:
        names = self.class_names
        return f"{class_index} ({names[class_index]})" if class_index < len(names) else str(class_index)

    def unit(self, image: Image.Image) -> torch.Tensor:
        """One image as the model sees it before normalisation: (3, size, size) floats in [0, 1], resized
        as the training and evaluation transform resizes (`trainer.transforms_for`)."""
        # transforms_for's ToImage + ToDtype(scale) as NumPy does them (x * float32(1/255), the same
        # rounding, one thread: torch's small parallel ops stall on a busy machine), then its Resize.
        rgb = np.asarray(to_channels(image, 3), dtype=np.uint8)
        unit = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) * np.float32(1 / 255))
        size = [self.input_size, self.input_size]
        if list(unit.shape[-2:]) == size:
            return unit
        from torchvision.transforms.v2 import functional as F

        return F.resize(unit, size, antialias=True)

    def tensor(self, image: Image.Image) -> torch.Tensor:
        """One image as the model's normalised input (1, 3, size, size) on its device."""
        return self.normalise(self.unit(image).unsqueeze(0).to(self.device))

    def pixels(self, image: Image.Image) -> np.ndarray:
        """The image as the model sees it, for pictures: uint8 (size, size, 3)."""
        return to_pixels(self.unit(image))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) floats in [0, 1] -> the model's input (mean/std of the backbone)."""
        norm = self.manifest["normalization"]
        mean = torch.tensor(norm["mean"], device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        std = torch.tensor(norm["std"], device=pixels.device, dtype=pixels.dtype).view(1, 3, 1, 1)
        return (pixels - mean) / std

    def pixel_model(self) -> nn.Module:
        """The model on [0, 1] pixels (perturbation methods hide and blend in pixel space)."""
        return _OnPixels(self)

    def predicted_class(self, inputs: torch.Tensor) -> list[int]:
        with torch.no_grad():
            return self.model(inputs).argmax(dim=1).tolist()

    def layer(self, name: str | None) -> tuple[str, nn.Module]:
        """A target layer by its name in the model store's list (None or `default`: the default)."""
        if not self.layer_names:
            raise UserError("this model has no convolutional layer to explain with Grad-CAM")
        chosen = self.default_layer if name in (None, "", "default") else name
        if chosen not in self.layer_names:
            raise UserError(f"layer {chosen!r} is not a layer of this {self.backbone_id or 'model'}; "
                            f"layers: {', '.join(self.layer_names)}")
        return chosen, self.model.get_submodule(self.layer_prefix + chosen)

    def fit_image(self, image: Image.Image, shown: str, reporter: Reporter | None, quiet: bool = False) -> bool:
        """Whether the image has to be resized to the model's input; logs it (unless `quiet`)."""
        size = self.input_size
        if image.size == (size, size):
            return False
        if reporter is not None and not quiet:
            reporter.log(f"{shown} is {image.width} x {image.height}; the model takes {size} x {size}: resized")
        return True


class _OnPixels(nn.Module):
    def __init__(self, classifier: ImageClassifier) -> None:
        super().__init__()
        self.inner = classifier.model
        self.classifier = classifier

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.inner(self.classifier.normalise(pixels))


def to_pixels(unit: torch.Tensor) -> np.ndarray:
    """(3, H, W) floats in [0, 1] -> contiguous uint8 (H, W, 3): clamp, x 255, round half to even, as
    torch's ops would (the same bytes), in NumPy on one thread: torch's small parallel ops cost a batch
    job's writer thread 3 ms an image and stall the other thread's forward pass. Made (H, W, 3) once,
    in the first copy: a transposed view made every later picture operation 4x slower (Grad-CAM's
    overlay 1.4 ms instead of 0.35)."""
    values = unit.detach().cpu().numpy()
    scaled = np.ascontiguousarray(values.transpose(1, 2, 0))
    np.clip(scaled, 0.0, 1.0, out=scaled)
    scaled *= values.dtype.type(255)
    return np.round(scaled, out=scaled).astype(np.uint8)


Loader = Callable[[Path, dict, torch.device], ImageClassifier]
LOADERS: dict[str, Loader] = {}


def register_loader(architecture: str, loader: Loader) -> None:
    """How bundles of `architecture` (the manifest's) become an ImageClassifier."""
    LOADERS[architecture] = loader


def _transfer_classifier(bundle: Path, manifest: dict, device: torch.device) -> ImageClassifier:
    from nnc_web.engine.model_store import get_backbone
    from nnc_web.engine.training.bundle import load_bundle

    model, manifest = load_bundle(bundle, device="cpu")
    spec = get_backbone(manifest["backbone"])
    return ImageClassifier(model.to(device).eval(), manifest, device, spec.gradcam_layers, spec.gradcam_layer,
                           "features.body.", spec.saved_bytes_per_pixel)


register_loader("transfer_classifier", _transfer_classifier)

# Modules that register the loaders of their own bundles when imported (they import this one, so they
# are imported at the first lookup; a worker imports the engine only when a job needs it).
REGISTRARS = ("nnc_web.engine.anomaly.bundle", "nnc_web.engine.clip.model")


def load_image_classifier(bundle: Path, device: torch.device, method: str = "this explanation") -> ImageClassifier:
    """The bundle's classifier on `device`, in eval mode, its parameters frozen (the methods need
    gradients of the input or of a layer, never of the weights), channels-last on a CPU; a clear
    message for other models."""
    try:
        manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError("this run has no readable model") from exc
    architecture = manifest.get("architecture", "unknown")
    for module in REGISTRARS:
        importlib.import_module(module)
    if architecture not in LOADERS:
        raise UserError(f"{method} needs an image classifier; this run's model is {architecture}")
    classifier = LOADERS[architecture](Path(bundle), manifest, device)
    classifier.model.requires_grad_(False)
    if device.type == "cpu":
        # oneDNN's convolutions run NHWC faster: Grad-CAM's forward + backward on Lite0 at 224 px takes
        # 25 instead of 38 ms an image (batches of 16, 2 cores; benchmarks/xai.py). Not measured on GPUs.
        classifier.model.to(memory_format=torch.channels_last)
    return classifier


def read_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    with open_checked(path, max_pixels) as image:
        image.load()
        return image.copy()
