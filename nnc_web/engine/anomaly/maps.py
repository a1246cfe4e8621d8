"""Anomaly maps: patch scores -> a blurred per-pixel map, heat-map overlays and tiles."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

BLUR_SIGMA = 4.0  # the PaDiM and PatchCore papers' Gaussian filter on the upsampled map


def smooth_map(scores: torch.Tensor, size: int, sigma: float = BLUR_SIGMA) -> torch.Tensor:
    """(B, h, w) patch scores -> (B, size, size): bilinear upsampling, then a Gaussian blur."""
    from torchvision.transforms.v2.functional import gaussian_blur

    maps = F.interpolate(scores[:, None].float(), size=(size, size), mode="bilinear", align_corners=False)
    kernel = 2 * int(4 * sigma + 0.5) + 1
    return gaussian_blur(maps, kernel_size=[kernel, kernel], sigma=[sigma, sigma])[:, 0]


@functools.cache
def _palette() -> np.ndarray:
    from bokeh.palettes import Turbo256

    return np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in Turbo256], dtype=np.float32)


def heatmap_overlay(image: Image.Image, anomaly_map: np.ndarray, low: float, high: float) -> Image.Image:
    """The image (at the map's size) under a Turbo-coloured map; weak scores stay faint."""
    size = anomaly_map.shape[::-1]
    base = np.asarray(image.convert("RGB").resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    scaled = np.clip((anomaly_map.astype(np.float32) - low) / max(high - low, 1e-12), 0.0, 1.0)
    colours = _palette()[(scaled * 255).astype(np.uint8)]
    alpha = (0.15 + 0.55 * scaled)[..., None]
    return Image.fromarray((base * (1 - alpha) + colours * alpha).astype(np.uint8), "RGB")


def tile(paths: list[Path], columns: int = 4, cell: int = 160) -> Image.Image:
    """Images side by side in a grid (the most anomalous heat maps)."""
    rows = max(1, -(-len(paths) // columns))
    canvas = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    for number, path in enumerate(paths):
        with Image.open(path) as image:
            canvas.paste(image.convert("RGB").resize((cell, cell), Image.Resampling.BILINEAR),
                         ((number % columns) * cell, (number // columns) * cell))
    return canvas
