"""Grad-CAM (Selvaraju et al., 2017) through captum's LayerGradCam: weights = the mean gradient of the
class score over each channel of the target layer, map = ReLU of the weighted sum of the channels,
min-max normalised per image (NNC's last step); maps are upsampled bilinearly to the input size."""
from __future__ import annotations

from functools import partial

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from nnc_web.engine.errors import UserError
from nnc_web.engine.xai.batch import Explained, Item
from nnc_web.engine.xai.classifier import ImageClassifier, to_pixels
from nnc_web.engine.xai.memory import memory_errors
from nnc_web.engine.xai.pictures import gradcam_overlay

CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def has_convolution(module: nn.Module) -> bool:
    return any(isinstance(m, CONVOLUTIONS) for m in module.modules())


def check_layer(name: str, layer: nn.Module) -> None:
    """Grad-CAM weighs the channels of a convolutional feature map; other layers have none."""
    if not has_convolution(layer):
        raise UserError(f"Grad-CAM needs a convolutional layer, and {name} has no convolution")


def normalise_maps(maps: torch.Tensor) -> torch.Tensor:
    """Min-max to [0, 1] per map; a flat map (nothing positive) stays all zeros."""
    flat = maps.flatten(1)
    low = flat.min(dim=1).values.view(-1, *([1] * (maps.dim() - 1)))
    span = (flat.max(dim=1).values.view_as(low) - low)
    return torch.where(span > 0, (maps - low) / span.clamp_min(1e-30), torch.zeros_like(maps))


def grad_cam(model: nn.Module, layer: nn.Module, inputs: torch.Tensor, targets: list[int]) -> torch.Tensor:
    """Normalised Grad-CAM maps at the layer's resolution: (N, h, w) in [0, 1], one per input."""
    maps = LayerGradCam(model, layer).attribute(inputs, target=list(targets), relu_attributions=True)
    if maps.dim() != 4:
        raise UserError("Grad-CAM needs a layer with a 2-D feature map")
    return normalise_maps(maps[:, 0].detach().float())


def upsample(maps: torch.Tensor, size: int) -> np.ndarray:
    """(N, h, w) -> (N, size, size) float32, bilinear (values stay in [0, 1])."""
    scaled = LayerAttribution.interpolate(maps.unsqueeze(1), (size, size), interpolate_mode="bilinear")
    return scaled[:, 0].clamp(0, 1).cpu().numpy().astype(np.float32)


def overlays(classifier: ImageClassifier, layer: nn.Module, items: list[Item],
             draw_later: bool = False) -> list[Explained]:
    """The batch form's work for a chunk of rows: one forward/backward pass, a picture and a map each;
    `draw_later` leaves each picture as how to draw it (the batch writer draws it on its thread)."""
    units = [classifier.unit(item.image) for item in items]
    inputs = classifier.normalise(torch.stack(units).to(classifier.device))
    with memory_errors("the images do not fit in memory"):
        maps = upsample(grad_cam(classifier.model, layer, inputs, [item.class_index for item in items]),
                        classifier.input_size)
    return [Explained(partial(_overlay, unit, cam) if draw_later else _overlay(unit, cam), cam)
            for unit, cam in zip(units, maps, strict=True)]


def _overlay(unit: torch.Tensor, cam: np.ndarray) -> np.ndarray:
    return gradcam_overlay(to_pixels(unit), cam)
